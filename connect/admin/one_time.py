"""Secrets that exist in clear only once: a new deployment credential, a destination's signing
secret. They are shown in the page that answers the request that made them — never through
``messages`` (its cookie is signed, not encrypted: anyone holding the browser reads it), never
in the session, never cached by the browser or a proxy."""

from dataclasses import dataclass

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers


@dataclass(frozen=True)
class OneTimeSecret:
    label: str
    value: str

    def __repr__(self) -> str:
        return f"OneTimeSecret(label={self.label!r})"


def keep_for_response(request: HttpRequest, label: str, value: str) -> None:
    """Hold a new secret on this request (in memory only) until the response shows it."""
    kept = getattr(request, "_connect_one_time_secrets", None)
    if kept is None:
        kept = []
        request._connect_one_time_secrets = kept  # type: ignore[attr-defined]
    kept.append(OneTimeSecret(label=label, value=value))


def kept_secrets(request: HttpRequest) -> list[OneTimeSecret]:
    return list(getattr(request, "_connect_one_time_secrets", []))


def one_time_secrets_page(
    request: HttpRequest,
    model_admin: admin.ModelAdmin,
    *,
    secrets: list[OneTimeSecret],
    next_url: str,
    title: str,
) -> TemplateResponse:
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": title,
        "secrets": secrets,
        "next_url": next_url,
    }
    response = TemplateResponse(request, "admin/connect/one_time_secrets.html", context)
    # Cache-Control: no-store — no back button or shared cache brings the page back.
    add_never_cache_headers(response)
    return response
