"""Deep health (``GET /v1/health?deep=1``): can this process reach the database and Redis, and
were a Celery worker and beat seen lately? Each check says what it found; none says more than
an operator's monitor needs (connection errors, with their host names, go to the log)."""

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from connect.heartbeats import SEEN_WITHIN, heartbeats_seen

logger = logging.getLogger(__name__)

#: A health probe answers within a few seconds even when Redis does not.
REDIS_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str = ""
    last_seen: datetime | None = None

    def as_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"ok": self.ok}
        if self.detail:
            wire["detail"] = self.detail
        if self.last_seen is not None:
            wire["lastSeen"] = self.last_seen.isoformat()
        return wire


@dataclass(frozen=True)
class HealthReport:
    checks: dict[str, Check]

    @property
    def failed(self) -> list[str]:
        return [name for name, check in self.checks.items() if not check.ok]

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_wire(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "failed": self.failed,
            "checks": {name: check.as_wire() for name, check in self.checks.items()},
        }


def database_check() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        logger.warning("deep health: the database is unreachable", exc_info=True)
        return Check(False, "unreachable")
    return Check(True)


def redis_check(url: str) -> Check:
    client = redis.Redis.from_url(
        url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
    )
    try:
        client.ping()
    except redis.RedisError:
        logger.warning("deep health: Redis is unreachable", exc_info=True)
        return Check(False, "unreachable")
    finally:
        client.close()
    return Check(True)


def heartbeat_checks(now: datetime) -> dict[str, Check]:
    try:
        seen = heartbeats_seen()
    except DatabaseError:
        logger.warning("deep health: heartbeats unreadable", exc_info=True)
        return {
            process: Check(False, "unknown: the database is unreachable")
            for process in ("worker", "beat")
        }
    checks = {}
    for process, at in seen.items():
        if at is None:
            checks[process] = Check(False, "never seen")
        elif now - at > SEEN_WITHIN:
            ago = int((now - at).total_seconds())
            checks[process] = Check(False, f"not seen for {ago} s", last_seen=at)
        else:
            checks[process] = Check(True, last_seen=at)
    return checks


def deep_health() -> HealthReport:
    checks = {"database": database_check()}
    if settings.REDIS_URL:
        checks["redis"] = redis_check(settings.REDIS_URL)
    checks.update(heartbeat_checks(timezone.now()))
    return HealthReport(checks)
