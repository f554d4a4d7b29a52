"""Per-team request counters and calls in flight: shared through Redis when configured,
in-process otherwise.

With Redis, each process counts locally and reconciles in the background (``INCRBY`` of what
it admitted, every ``SYNC_SECONDS``), so a request makes no round trip. A process admits a
request while the team's last known total plus what it admitted since stays under the limit,
and reconciles on the request once it has admitted ``slack(limit)`` unreconciled requests. So
across P processes a team gets at most ``limit + P * slack(limit)`` requests in a window
(``slack`` is 1% of the limit, at least 1), and never fewer than the limit.
"""

import contextlib
import functools
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass

import redis
from django.conf import settings
from django.core.cache import cache

WINDOW_SECONDS = 60
SYNC_SECONDS = 0.1

logger = logging.getLogger(__name__)


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
        count = _local_count(key, limit)
    else:
        cache.add(key, 0, WINDOW_SECONDS * 2)
        count = cache.incr(key)
    retry_after = max(1, int((window + 1) * WINDOW_SECONDS - now))
    return Verdict(allowed=count <= limit, retry_after=retry_after)


def slack(limit: int) -> int:
    """How many requests a process admits before it must reconcile on the request."""
    return max(1, limit // 100)


@dataclass
class _Bucket:
    shared: int = 0  # the total in Redis at the last reconciliation
    unsynced: int = 0  # admitted here since


class _Local:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buckets: dict[str, _Bucket] = {}
        self.pid = 0
        self.syncing = threading.Lock()  # one reconciliation at a time: no delta sent twice


_local = _Local()


def _local_count(key: str, limit: int) -> int:
    """This request's place in the window: over ``limit`` means refused (and not counted)."""
    local = _local
    if local.pid != os.getpid():
        _start()
    with local.lock:
        bucket = local.buckets.setdefault(key, _Bucket())
        if bucket.shared + bucket.unsynced >= limit:
            return limit + 1
        behind = bucket.unsynced >= slack(limit)
    if behind:
        _sync(key)
        with local.lock:
            if bucket.shared + bucket.unsynced >= limit:
                return limit + 1
    with local.lock:
        bucket.unsynced += 1
        return bucket.shared + bucket.unsynced


def _sync(key: str) -> None:
    """Add what this process admitted under ``key`` to Redis; learn the team's total."""
    local = _local
    with local.syncing:
        with local.lock:
            bucket = local.buckets.get(key)
            if bucket is None:
                return
            delta = bucket.unsynced
        pipe = _redis(settings.REDIS_URL).pipeline(transaction=False)
        pipe.incrby(key, delta)
        pipe.expire(key, WINDOW_SECONDS * 2, nx=True)
        total = int(pipe.execute()[0])
        with local.lock:
            bucket.unsynced -= delta
            bucket.shared = max(bucket.shared, total)


def sync_all() -> None:
    """Reconcile every bucket of this process (the background thread; tests)."""
    with _local.lock:
        keys = [k for k, b in _local.buckets.items() if b.unsynced]
        # Past windows' buckets are dropped once reconciled.
        current = int(time.time() // WINDOW_SECONDS)
        for k in [k for k, b in _local.buckets.items() if not b.unsynced]:
            if int(k.rsplit(":", 1)[1]) < current - 1:
                del _local.buckets[k]
    for key in keys:
        _sync(key)


def _start() -> None:
    local = _local
    with local.lock:
        if local.pid == os.getpid():
            return
        local.pid = os.getpid()
        local.buckets = {}  # a forked child starts with none of its parent's counts
    threading.Thread(target=_reconcile, name="rate-limits", daemon=True).start()


def _reconcile() -> None:
    while True:
        time.sleep(SYNC_SECONDS)
        try:
            sync_all()
        except Exception:
            logger.warning("rate limit reconciliation failed; retrying", exc_info=True)


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
