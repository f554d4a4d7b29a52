"""Per-team request counters and calls in flight: atomic in Redis when configured,
in-process otherwise."""

import contextlib
import functools
import threading
import time
import uuid
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


# Calls in flight ------------------------------------------------------------------------------

_local_in_flight: dict[str, int] = {}
_local_guard = threading.Lock()


@dataclass
class InFlight:
    """One call counted in flight in ``bucket`` until ``release`` (idempotent)."""

    bucket: str
    member: str
    released: bool = False

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        if settings.REDIS_URL:
            # If Redis is away, the entry lapses at its deadline.
            with contextlib.suppress(redis.RedisError):
                _redis(settings.REDIS_URL).zrem(_in_flight_key(self.bucket), self.member)
            return
        with _local_guard:
            _local_in_flight[self.bucket] = max(_local_in_flight.get(self.bucket, 1) - 1, 0)


def _in_flight_key(bucket: str) -> str:
    return f"{settings.CONNECT_RATE_LIMIT_PREFIX}:inflight:{bucket}"


def in_flight_acquire(*, bucket: str, limit: int, seconds: float) -> InFlight | None:
    """Count one more call in flight in ``bucket``, or None when ``limit`` are already.

    Across processes in Redis: a sorted set of the calls, each scored with the moment it must
    have ended (``seconds`` from now), so a process that dies mid-call leaks nothing past that.
    Without Redis, in this process only.
    """
    member = uuid.uuid4().hex
    if settings.REDIS_URL:
        key = _in_flight_key(bucket)
        now = time.time()
        pipe = _redis(settings.REDIS_URL).pipeline(transaction=True)
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.zadd(key, {member: now + seconds})
        pipe.zcard(key)
        pipe.expire(key, int(seconds) + 60)
        count = int(pipe.execute()[2])
        held = InFlight(bucket=bucket, member=member)
        if count > limit:
            held.release()
            return None
        return held
    with _local_guard:
        count = _local_in_flight.get(bucket, 0)
        if count >= limit:
            return None
        _local_in_flight[bucket] = count + 1
    return InFlight(bucket=bucket, member=member)
