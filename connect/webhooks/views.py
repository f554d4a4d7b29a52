"""The public intake for provider webhooks: size limits, then the service."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from connect import errors
from connect.api.envelope import error_body
from connect.services import triggers


def _error(exc: errors.ConnectError) -> JsonResponse:
    return JsonResponse(error_body(exc.code, exc.message), status=exc.status)


@csrf_exempt
@require_POST
def trigger(request: HttpRequest, connector_id: str) -> HttpResponse:
    limit = settings.CONNECT_TRIGGER_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _error(errors.InvalidRequest("Content-Length is not a number."))
    if declared > limit:
        return _error(errors.PayloadTooLarge(f"The body is larger than {limit} bytes."))
    # Read at most one byte past the limit: the declared length may lie.
    body = request.read(limit + 1)
    if len(body) > limit:
        return _error(errors.PayloadTooLarge(f"The body is larger than {limit} bytes."))
    try:
        reply = triggers.trigger_receive(
            connector_id=connector_id,
            headers={name.lower(): value for name, value in request.headers.items()},
            query={name: request.GET.get(name, "") for name in request.GET},
            body=body,
            # The header as sent, parameters included (``request.content_type`` drops charset).
            content_type=request.META.get("CONTENT_TYPE", ""),
        )
    except errors.ConnectError as exc:
        return _error(exc)
    return HttpResponse(reply.body, status=reply.status, content_type=reply.content_type)
