"""Per-team request counters: atomic in Redis when configured, in-process otherwise."""

import functools
import time
from dataclasses import dataclass

import redis
from django.conf import settings
from django.core.cache import cache

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int


@functools.lru_cache(maxsize=2)
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)


def hit(*, bucket: str, limit: int, now: float | None = None) -> Verdict:
    """Count one request in the current fixed one-minute window of ``bucket``."""
    now = time.time() if now is None else now
    window = int(now // WINDOW_SECONDS)
    key = f"{settings.CONNECT_RATE_LIMIT_PREFIX}:{bucket}:{window}"
    if settings.REDIS_URL:
        # One round trip: INCR and set the expiry only when the key is new.
        pipe = _redis(settings.REDIS_URL).pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, WINDOW_SECONDS * 2, nx=True)
        count = int(pipe.execute()[0])
    else:
        cache.add(key, 0, WINDOW_SECONDS * 2)
        count = cache.incr(key)
    retry_after = max(1, int((window + 1) * WINDOW_SECONDS - now))
    return Verdict(allowed=count <= limit, retry_after=retry_after)
