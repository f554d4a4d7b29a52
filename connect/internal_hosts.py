"""A scraper on an internal address reaches ``/metrics`` and ``/v1/health``, and nothing else.

Prometheus and load balancers call a pod by its own address (``Host: 10.0.0.5:8000``), which is
not one of the public names in ``ALLOWED_HOSTS`` and must not become one: Django builds links
and password-reset mails from the host it allowed. So internal names live apart, in
``CONNECT_INTERNAL_HOSTS`` (same syntax), and are honoured by this middleware alone, for those
two endpoints alone: it answers such a request itself, before any later middleware asks Django
for the host. Every other request with such a host meets ``ALLOWED_HOSTS`` as before (400).
"""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.request import split_domain_port, validate_host
from django.urls import Resolver404, resolve

#: URL names (``config/urls.py``, ``connect/api/urls.py``) internal hosts may call.
INTERNAL_ENDPOINTS = frozenset({"metrics", "health"})


def internal_host(request: HttpRequest) -> bool:
    """The Host is one of ``CONNECT_INTERNAL_HOSTS`` and none of ``ALLOWED_HOSTS``."""
    if not settings.CONNECT_INTERNAL_HOSTS:
        return False
    raw = request.META.get("HTTP_HOST") or request.META.get("SERVER_NAME", "")
    domain, _ = split_domain_port(raw)
    return bool(
        domain
        and validate_host(domain, settings.CONNECT_INTERNAL_HOSTS)
        and not validate_host(domain, settings.ALLOWED_HOSTS)
    )


class InternalHostsMiddleware:
    """After the request id and the API envelope (neither asks for the host), before
    ``SecurityMiddleware`` (which would, to redirect to HTTPS)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not internal_host(request):
            return self.get_response(request)
        try:
            match = resolve(request.path_info)
        except Resolver404:
            match = None
        if match is None or match.url_name not in INTERNAL_ENDPOINTS:
            return self.get_response(request)  # ALLOWED_HOSTS turns it away
        response: HttpResponse = match.func(request, *match.args, **match.kwargs)
        if hasattr(response, "render"):
            response.render()  # DRF's responses render late, in the handler we bypass
        return response
