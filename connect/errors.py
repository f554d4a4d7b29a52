"""The documented error codes, raised by services and rendered by the API as its envelope."""

from typing import Any


class ConnectError(Exception):
    """An outcome a client can act on: a code from SPEC section 3, an HTTP status, a message."""

    code = "internal_error"
    status = 500

    def __init__(
        self,
        message: str = "",
        *,
        vendor: dict[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message or self.code.replace("_", " "))
        self.message = message or self.code.replace("_", " ")
        self.vendor = vendor
        self.retry_after = retry_after


def _error(code: str, status: int) -> type[ConnectError]:
    name = "".join(part.title() for part in code.split("_"))
    return type(name, (ConnectError,), {"code": code, "status": status})


NotFound = _error("not_found", 404)
ClientNotLinkedToProject = _error("client_not_linked_to_project", 403)
ClientNotEnabledForEnvironment = _error("client_not_enabled_for_environment", 403)
ConnectorInstallationRequired = _error("connector_installation_required", 422)
UserAuthorizationRequired = _error("user_authorization_required", 422)
NoToken = _error("no_token", 422)
InvalidGrant = _error("invalid_grant", 422)
ProviderUnavailable = _error("provider_unavailable", 502)
AuthorizationPending = _error("authorization_pending", 400)
SlowDown = _error("slow_down", 400)
AccessDenied = _error("access_denied", 400)
ExpiredToken = _error("expired_token", 400)
InvalidRequest = _error("invalid_request", 400)
InvalidScope = _error("invalid_scope", 400)
Unauthorized = _error("unauthorized", 401)
Forbidden = _error("forbidden", 403)
RateLimited = _error("rate_limited", 429)
MethodNotAllowed = _error("method_not_allowed", 405)
UnsupportedMediaType = _error("unsupported_media_type", 415)
PayloadTooLarge = _error("payload_too_large", 413)
InternalError = _error("internal_error", 500)
#: The uid (or another unique name) is taken in the team.
Conflict = _error("conflict", 409)
#: The proxy: the provider did not finish answering within the proxy's time limit.
ProviderTimeout = _error("provider_timeout", 504)
#: The proxy: a body sent without a length, by a server that cannot tell where it ends.
LengthRequired = _error("length_required", 411)

CODE_FOR_STATUS = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    411: "length_required",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def code_for_status(status: int) -> str:
    return CODE_FOR_STATUS.get(status, "internal_error" if status >= 500 else "invalid_request")
