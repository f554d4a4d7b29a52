import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from connect import errors, ratelimits
from connect.callers import Caller, caller_from_authorization


class RuntimeCallerAuthentication(BaseAuthentication):
    """A deployment credential or an OIDC token; ``request.auth`` becomes the Caller."""

    def authenticate(self, request: Request) -> tuple[None, Caller]:
        header = request.headers.get("Authorization", "")
        if not header:
            raise errors.Unauthorized("Send Authorization: Bearer <credential>.")
        return None, caller_from_authorization(header)

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
