import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from connect import errors, ratelimits
from connect.callers import Caller, caller_from_authorization
from connect.models.api_tokens import API_TOKEN_PREFIX
from connect.services.api_tokens import TeamActor, api_token_authenticate


def _bearer(request: Request) -> str:
    """The bearer token of the request, "" when there is none."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def is_team_token(token: str) -> bool:
    return token.startswith(f"{API_TOKEN_PREFIX}_")


class RuntimeCallerAuthentication(BaseAuthentication):
    """A deployment credential or an OIDC token; ``request.auth`` becomes the Caller."""

    def authenticate(self, request: Request) -> tuple[None, Caller]:
        header = request.headers.get("Authorization", "")
        if not header:
            raise errors.Unauthorized("Send Authorization: Bearer <credential>.")
        if is_team_token(_bearer(request)):
            raise errors.Forbidden(
                "Team API tokens manage a team; runtime calls (tokens, flows) take a "
                "deployment credential or an OIDC token."
            )
        return None, caller_from_authorization(header)

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="connect"'


class TeamTokenAuthentication(BaseAuthentication):
    """A team API token (``cat_…``); ``request.auth`` becomes its TeamActor.

    A deployment credential or an OIDC token that is valid is refused with 403 (they use the
    runtime API only); anything else is 401.
    """

    def authenticate(self, request: Request) -> tuple[None, TeamActor]:
        token = _bearer(request)
        if not token:
            raise errors.Unauthorized("Send Authorization: Bearer <team API token>.")
        if is_team_token(token):
            return None, api_token_authenticate(token=token)
        caller_from_authorization(request.headers.get("Authorization", ""))  # 401 if invalid
        raise errors.Forbidden(
            "Deployment credentials and OIDC tokens use the runtime API only; the management "
            "API takes a team API token (cat_…)."
        )

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="connect"'


class TeamTokenOrRuntimeAuthentication(BaseAuthentication):
    """Where one path serves both (``GET /v1/connect/connectors/{c}``): a team API token
    becomes a TeamActor, anything else a runtime Caller."""

    def authenticate(self, request: Request) -> tuple[None, TeamActor | Caller]:
        if is_team_token(_bearer(request)):
            return TeamTokenAuthentication().authenticate(request)
        return RuntimeCallerAuthentication().authenticate(request)

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="connect"'


class TeamRateThrottle(BaseThrottle):
    """Reads and writes counted per team, per minute (SPEC section 9)."""

    #: Where the time comes from (DRF's own throttles call it ``timer`` too): tests give it a
    #: clock of their own instead of waiting for a minute to begin.
    timer: Callable[[], float] = time.time

    def allow_request(self, request: Request, view: Any) -> bool:
        caller = request.auth
        if not isinstance(caller, Caller):
            return True
        kind = getattr(view, "rate_kind", None) or (
            "read" if request.method in ("GET", "HEAD") else "write"
        )
        team_rate_check(caller, kind, now=self.timer())
        return True


class ManagementRateThrottle(BaseThrottle):
    """Management calls counted per team in a bucket of their own: a script busy with the
    management API never makes deployments' token requests 429, nor they its calls."""

    timer: Callable[[], float] = time.time

    def allow_request(self, request: Request, view: Any) -> bool:
        actor = request.auth
        if not isinstance(actor, TeamActor):
            return True
        limit = settings.CONNECT_RATE_LIMIT_MANAGEMENT
        verdict = ratelimits.hit(
            bucket=f"team:{actor.team_id}:management", limit=limit, now=self.timer()
        )
        if not verdict.allowed:
            raise errors.RateLimited(
                f"More than {limit} management calls a minute for this team.",
                retry_after=verdict.retry_after,
            )
        return True


def team_rate_check(caller: Caller, kind: str, *, now: float) -> None:
    """Count one ``kind`` ("read" or "write") of the caller's team; ``rate_limited`` when over
    the team's limit for the minute."""
    limits = {"read": settings.CONNECT_RATE_LIMIT_READS}
    limit = limits.get(kind, settings.CONNECT_RATE_LIMIT_WRITES)
    verdict = ratelimits.hit(bucket=f"team:{caller.team_id}:{kind}", limit=limit, now=now)
    if not verdict.allowed:
        raise errors.RateLimited(
            f"More than {limit} {kind}s a minute for this team.",
            retry_after=verdict.retry_after,
        )
