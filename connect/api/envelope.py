"""Every API error is ``{"error": {"code", "message", "vendor"?}}`` with a request id header.

DRF's exception handler covers errors raised in views; the middleware covers what never reaches
a view (unknown paths, Django's own 404/405/500 pages, with DEBUG on or off).
"""

import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from connect.errors import ConnectError, code_for_status
from connect.request_ids import REQUEST_ID_HEADER, request_id_for

logger = logging.getLogger(__name__)

API_PREFIXES = ("/v1/", "/.well-known/", "/connect/trigger/")
PROXY_PREFIX = "/v1/connect/proxy/"


def error_body(code: str, message: str, vendor: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if vendor:
        error["vendor"] = vendor
    return {"error": error}


def validation_message(detail: Any, path: str = "") -> str:
    """The first problem, named by its field: ``subject.type: This field is required.``"""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = key if key != "non_field_errors" else ""
            return validation_message(value, f"{path}.{name}".strip(".") if name else path)
    if isinstance(detail, list) and detail:
        first = detail[0]
        if isinstance(first, dict | list):
            return validation_message(first, path)
        return f"{path}: {first}" if path else str(first)
    return f"{path}: {detail}" if path else str(detail or "Invalid input.")


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    if isinstance(exc, ConnectError):
        response = Response(error_body(exc.code, exc.message, exc.vendor), status=exc.status)
        if exc.retry_after is not None:
            response["Retry-After"] = str(exc.retry_after)
        if exc.status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="connect"'
        return response
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("payload_too_large", "The request body is too large."), status=413
        )
    if isinstance(exc, drf.APIException):
        handled = drf_exception_handler(exc, context)
        assert handled is not None
        status = handled.status_code
        if isinstance(exc, drf.ParseError):
            message = "The body is not valid JSON."
        elif isinstance(exc, drf.ValidationError):
            message = validation_message(exc.detail)
        else:
            detail = exc.detail
            message = str(detail if not isinstance(detail, dict | list) else exc.default_detail)
        response = Response(error_body(code_for_status(status), message), status=status)
        for header in ("Retry-After", "Allow", "WWW-Authenticate"):
            if header in handled:
                response[header] = handled[header]
        return response
    logger.exception("unexpected error in %s", context.get("view").__class__.__name__)
    return Response(error_body("internal_error", "Something went wrong."), status=500)


class ApiEnvelopeMiddleware:
    """Gives API paths a request id and turns any non-JSON error page into the envelope."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(API_PREFIXES):
            return self.get_response(request)
        request_id = request_id_for(request)
        response = self.get_response(request)
        if getattr(response, "connect_passthrough", False):
            # A provider's answer through the proxy: passed back as the provider gave it.
            response[REQUEST_ID_HEADER] = request_id
            return response
        if request.path.startswith(PROXY_PREFIX):
            # Anything else on the proxy's paths is Connect's own answer, and says so.
            response["Connect-Error"] = "1"
        if response.status_code >= 400 and not response.get("Content-Type", "").startswith(
            "application/json"
        ):
            replacement = JsonResponse(
                error_body(
                    code_for_status(response.status_code),
                    response.reason_phrase or "Error",
                ),
                status=response.status_code,
            )
            for header in ("Allow", "Retry-After", "Connect-Error"):
                if header in response:
                    replacement[header] = response[header]
            response = replacement
        response[REQUEST_ID_HEADER] = request_id
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith(API_PREFIXES):
            return None
        logger.exception("unexpected error on %s", request.path)
        response = JsonResponse(error_body("internal_error", "Something went wrong."), status=500)
        if request.path.startswith(PROXY_PREFIX):
            response["Connect-Error"] = "1"
        return response
