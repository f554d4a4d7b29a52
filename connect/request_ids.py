"""Every request gets an id: the client's ``X-Request-Id`` when it is a plain token, else a new
one. It is answered in the same header and put on every log line written while the request is
handled (``connect.logs.request_id``, read by ``connect.logs.RequestIdFilter``)."""

import re
import secrets
from collections.abc import Callable

from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponse

from connect import logs

REQUEST_ID_HEADER = "X-Request-Id"
# What a client may choose: its id lands in our log lines, so nothing that could pass for
# another field, line or format there (no spaces, quotes or brackets).
CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,64}")


def request_id_for(request: HttpRequest) -> str:
    """The request's id, chosen on first use: the middleware's, or (without it) a new one."""
    chosen: str | None = getattr(request, "request_id", None)
    if chosen is None:
        given = request.headers.get(REQUEST_ID_HEADER, "")
        chosen = given if CLIENT_REQUEST_ID.fullmatch(given) else secrets.token_hex(12)
        request.request_id = chosen  # type: ignore[attr-defined]
    return chosen


def _forget_request_id(**kwargs: object) -> None:
    logs.request_id.set("-")


class RequestIdMiddleware:
    """First in ``MIDDLEWARE``: everything after it logs with the id.

    The id stays set until the response is closed (Django's ``request_finished``), not only
    while the middleware runs: Django logs a 4xx or 5xx answer ("Bad Request: …") after the
    middleware has returned, and gunicorn writes its access line after that.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        request_finished.connect(_forget_request_id, dispatch_uid="connect.request_ids")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        chosen = request_id_for(request)
        logs.request_id.set(chosen)
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = chosen
        return response
