"""Secrets that exist in clear only once: a new deployment credential, a destination's signing
secret.

The request that makes one answers with a redirect (Post/Redirect/Get), so that reloading the
page that shows the secret asks for that page again instead of posting the form again — which
would make a second credential, or rotate the secret once more. Between the POST and the page
the secret waits on the server: sealed with the app's key and bound to a random single-use
reference and to the user, in the cache for five minutes. The page pops it: the first visit by
that user shows it, every later visit (a reload, the back button, another user, after five
minutes) says it is gone. The secret is never in ``messages`` (its cookie is signed, not
encrypted: anyone holding the browser reads it), the session, the URL, or a browser's or
proxy's cache.
"""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from secrets import token_urlsafe
from typing import Any

from django.contrib import admin
from django.core.cache import caches
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.cache import add_never_cache_headers
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from connect import crypto
from connect.admin.scoping import may
from connect.permissions import Action

#: The cache alias that holds them: shared by every web process (see ``CACHES`` in settings).
CACHE_ALIAS = "one_time"
#: Long enough to follow a redirect on a slow connection, short enough not to linger.
STASH_SECONDS = 300


@dataclass(frozen=True)
class OneTimeSecret:
    label: str
    value: str

    def __repr__(self) -> str:
        return f"OneTimeSecret(label={self.label!r})"


@dataclass(frozen=True)
class Stash:
    title: str
    next_url: str
    secrets: list[OneTimeSecret] = field(repr=False)


def keep_for_response(request: HttpRequest, label: str, value: str) -> None:
    """Hold a new secret on this request (in memory only) until its response stashes it."""
    kept = getattr(request, "_connect_one_time_secrets", None)
    if kept is None:
        kept = []
        request._connect_one_time_secrets = kept  # type: ignore[attr-defined]
    kept.append(OneTimeSecret(label=label, value=value))


def kept_secrets(request: HttpRequest) -> list[OneTimeSecret]:
    return list(getattr(request, "_connect_one_time_secrets", []))


def _cache_key(reference: str) -> str:
    # A digest: whoever reads the cache learns no reference, so cannot build the page's URL
    # (nor the binding that opens the value).
    return "one-time:" + hashlib.sha256(reference.encode()).hexdigest()


def _binding(reference: str, user_id: int) -> str:
    return f"one-time:{reference}:user:{user_id}"


@sensitive_variables("secrets", "payload")
def stash_secrets(
    *, user_id: int, title: str, next_url: str, secrets: Sequence[OneTimeSecret]
) -> str:
    """Put secrets aside for one visit of ``user_id`` within five minutes; their reference."""
    reference = token_urlsafe(32)  # 256 bits: not guessed, not enumerated
    payload = json.dumps(
        {
            "title": title,
            "next": next_url,
            "secrets": [[secret.label, secret.value] for secret in secrets],
        }
    )
    sealed = crypto.seal(payload, binding=_binding(reference, user_id))
    caches[CACHE_ALIAS].set(_cache_key(reference), sealed, STASH_SECONDS)
    return reference


@sensitive_variables("payload", "sealed")
def pop_secrets(*, reference: str, user_id: int) -> Stash | None:
    """The secrets stashed under ``reference`` for this user, removed; None when they are gone
    (shown already, expired) or were stashed for someone else (left for them)."""
    cache = caches[CACHE_ALIAS]
    key = _cache_key(reference)
    sealed = cache.get(key)
    if not isinstance(sealed, str):
        return None
    try:
        payload = json.loads(crypto.open_sealed(sealed, binding=_binding(reference, user_id)))
    except crypto.DecryptionError:
        return None
    # Single use even when two requests read it at once: only one of them deletes it.
    if not cache.delete(key):
        return None
    return Stash(
        title=str(payload["title"]),
        next_url=str(payload["next"]),
        secrets=[OneTimeSecret(label=label, value=value) for label, value in payload["secrets"]],
    )


def _user_id(request: HttpRequest) -> int:
    user_id = request.user.pk
    if user_id is None:  # the admin lets nobody anonymous this far
        raise PermissionDenied
    return int(user_id)


class OneTimeSecretsAdmin(admin.ModelAdmin):
    """A model admin some of whose requests make secrets: ``show_once`` answers such a request
    with a redirect to ``one-time/<reference>/``, the page that shows them once."""

    #: Who may make this admin's secrets, and so open the page that shows them.
    one_time_action = Action.ADD
    #: The title of the page that shows the secrets a save kept (``keep_for_response``).
    saved_secrets_title = "New secrets"

    # Its forms post secrets or answer with new ones: an error report shows none of the POST.
    @method_decorator(sensitive_post_parameters())
    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        return super().changeform_view(request, object_id, form_url, extra_context)

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}_one_time"
        return [
            path(
                "one-time/<str:reference>/",
                self.admin_site.admin_view(self.one_time_view),
                name=name,
            ),
            *super().get_urls(),
        ]

    def show_once(
        self,
        request: HttpRequest,
        *,
        secrets: Sequence[OneTimeSecret],
        next_url: str,
        title: str,
    ) -> HttpResponseRedirect:
        reference = stash_secrets(
            user_id=_user_id(request), title=title, next_url=next_url, secrets=secrets
        )
        name = f"admin:{self.opts.app_label}_{self.opts.model_name}_one_time"
        return HttpResponseRedirect(reverse(name, args=[reference]))

    def response_add(
        self, request: HttpRequest, obj: Any, post_url_continue: str | None = None
    ) -> HttpResponse:
        response = super().response_add(request, obj, post_url_continue)
        return self.with_kept_secrets(request, response)

    def response_change(self, request: HttpRequest, obj: Any) -> HttpResponse:
        response = super().response_change(request, obj)
        return self.with_kept_secrets(request, response)

    def with_kept_secrets(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        """The admin's answer to a save, or, when the save made secrets, a redirect to them
        (leading on to where the admin's answer would have)."""
        kept = kept_secrets(request)
        if not kept or not isinstance(response, HttpResponseRedirect):
            return response
        return self.show_once(
            request, secrets=kept, next_url=response["Location"], title=self.saved_secrets_title
        )

    @sensitive_variables("stash")
    def one_time_view(self, request: HttpRequest, reference: str) -> HttpResponse:
        # Only members make secrets; a viewer (or one who has become one meanwhile) sees none.
        if not may(request, self.one_time_action):
            raise PermissionDenied
        stash = pop_secrets(reference=reference, user_id=_user_id(request))
        changelist = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": stash.title if stash else "Secrets no longer shown",
            "secrets": stash.secrets if stash else [],
            "next_url": stash.next_url if stash else changelist,
        }
        # The same page whether it was shown already, expired, or another user's: the
        # reference says nothing about whether it ever existed.
        response = TemplateResponse(
            request, "admin/connect/one_time_secrets.html", context, status=200 if stash else 404
        )
        # Cache-Control: no-store — no back button or shared cache brings the page back.
        add_never_cache_headers(response)
        response["Referrer-Policy"] = "no-referrer"
        return response
