"""The proxy's view: parse the raw request, call ``services.proxy``, stream the answer back.

A plain Django view, not DRF: the body is read as a stream (DRF would parse it), and the
provider's answer goes back untouched. Connect's own errors carry ``Connect-Error: 1``
(``PROXY_ERROR_HEADER``) so a caller can tell them from the provider's.
"""

import time
from urllib.parse import quote

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_variables

from connect import errors, ratelimits
from connect.api.envelope import error_body
from connect.callers import Caller, caller_from_authorization
from connect.models import ProxyCall
from connect.services import proxy

PROXY_ERROR_HEADER = "Connect-Error"
#: Set on a response that is the provider's answer: the API's error envelope leaves it alone.
PASSTHROUGH = "connect_passthrough"


def error_response(exc: errors.ConnectError) -> HttpResponse:
    """One of Connect's own errors, in the API's envelope, marked as Connect's."""
    # Compact, like every other API answer (DRF's renderer), so the bodies diff alike.
    response = JsonResponse(
        error_body(exc.code, exc.message, exc.vendor),
        status=exc.status,
        json_dumps_params={"separators": (",", ":")},
    )
    response[PROXY_ERROR_HEADER] = "1"
    if exc.retry_after is not None:
        response["Retry-After"] = str(exc.retry_after)
    if exc.status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="connect"'
    return response


def raw_target(request: HttpRequest) -> str:
    """The request target as the client sent it (gunicorn: ``RAW_URI``; uWSGI and others:
    ``REQUEST_URI``). A server that gives neither (Django's runserver) leaves only the decoded
    path, re-encoded here: an encoded slash can no longer be told from a slash there, but dot
    segments, backslashes and the rest are refused all the same."""
    for key in ("RAW_URI", "REQUEST_URI"):
        value = request.META.get(key)
        if value:
            return str(value)
    path = str(request.META.get("PATH_INFO", "")).encode("latin-1", "replace")
    query = request.META.get("QUERY_STRING", "")
    target = str(request.META.get("SCRIPT_NAME", "")) + quote(path, safe="/:@!$&'()*+,;=~")
    return target + (f"?{query}" if query else "")


def _body_length(request: HttpRequest) -> int | None:
    """The body's length; None when the server ends the stream itself (chunked)."""
    value = request.META.get("CONTENT_LENGTH") or ""
    if value.strip():
        try:
            length = int(value)
        except ValueError:
            raise errors.InvalidRequest("Content-Length is not a number.") from None
        if length < 0:
            raise errors.InvalidRequest("Content-Length is not a number.")
        return length
    chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    if not chunked:
        return 0
    if not request.META.get("wsgi.input_terminated"):
        raise errors.LengthRequired("Send Content-Length with the body.")
    return None


def _rate_check(caller: Caller) -> None:
    limit = settings.CONNECT_RATE_LIMIT_PROXY
    verdict = ratelimits.hit(bucket=f"team:{caller.team_id}:proxy", limit=limit)
    if not verdict.allowed:
        raise errors.RateLimited(
            f"More than {limit} proxied calls a minute for this team.",
            retry_after=verdict.retry_after,
        )


@csrf_exempt
@sensitive_variables()  # the caller's credential, the provider token on its way
def proxy_view(request: HttpRequest, rest: str = "") -> HttpResponseBase:
    started = time.monotonic()
    ends_at = started + settings.CONNECT_PROXY_TIMEOUT_SECONDS
    try:
        caller = caller_from_authorization(request.headers.get("Authorization", ""))
    except errors.ConnectError as exc:
        return error_response(exc)  # nobody to record it for
    method = request.method or "GET"
    record = proxy.CallRecord(
        caller=caller, method=method, path=raw_target(request).partition("?")[0], started=started
    )
    body = None
    try:
        _rate_check(caller)
        if method not in proxy.METHODS:
            raise errors.MethodNotAllowed(f"{method} is not proxied.")
        target = proxy.proxy_target(
            raw_target(request), script_name=str(request.META.get("SCRIPT_NAME", ""))
        )
        record.path = target.path
        length = _body_length(request)
        if length != 0:
            stream = request if length is not None else request.META["wsgi.input"]
            body = proxy.body_read(
                stream,
                length=length,
                limit=settings.CONNECT_PROXY_MAX_BODY_BYTES,
                ends_at=ends_at,
            )
            body.seek(0, 2)
            record.request_bytes = body.tell()
            body.seek(0)
        answer = proxy.proxy_call(
            ask=proxy.ProxyAsk(
                caller=caller,
                target=target,
                method=method,
                subject_header=request.headers.get("Connect-Subject", ""),
                installation_header=request.headers.get("Connect-Installation", ""),
                headers=request.headers,
                ends_at=ends_at,
            ),
            body=body,
            record=record,
        )
    except errors.ConnectError as exc:
        if body is not None:
            body.close()
        record.save(
            outcome=(
                ProxyCall.Outcome.FAILED
                if isinstance(exc, errors.ProviderUnavailable | errors.ProviderTimeout)
                else ProxyCall.Outcome.REFUSED
            ),
            status=exc.status,
            error_code=exc.code,
        )
        return error_response(exc)
    response = StreamingHttpResponse(answer, status=answer.status)
    for name, value in answer.headers:
        response[name] = value
    if not any(name.lower() == "content-type" for name, _ in answer.headers):
        del response["Content-Type"]  # none from the provider: none from us either
    if body is not None:
        response._resource_closers.append(body.close)  # type: ignore[attr-defined]
    setattr(response, PASSTHROUGH, True)
    return response
