"""Calls in flight per team: counted across processes in Redis, where a process that dies
mid-call leaks nothing past the call's deadline; in the process itself without Redis."""

import time
import uuid
from typing import Any

import pytest

from connect import ratelimits


@pytest.mark.parametrize("redis", [True, False], ids=["redis", "in-process"])
def test_the_cap_holds_and_a_release_frees_a_place(settings: Any, redis: bool) -> None:
    if not redis:
        settings.REDIS_URL = ""
    bucket = f"proxy:team:{uuid.uuid4().hex}"
    first = ratelimits.in_flight_acquire(bucket=bucket, limit=2, seconds=30)
    second = ratelimits.in_flight_acquire(bucket=bucket, limit=2, seconds=30)
    assert first is not None
    assert second is not None
    assert ratelimits.in_flight_acquire(bucket=bucket, limit=2, seconds=30) is None
    first.release()
    first.release()  # once only
    third = ratelimits.in_flight_acquire(bucket=bucket, limit=2, seconds=30)
    assert third is not None
    assert ratelimits.in_flight_acquire(bucket=bucket, limit=2, seconds=30) is None
    second.release()
    third.release()


def test_a_call_never_released_lapses_at_its_deadline() -> None:
    bucket = f"proxy:team:{uuid.uuid4().hex}"
    assert ratelimits.in_flight_acquire(bucket=bucket, limit=1, seconds=0.2) is not None
    assert ratelimits.in_flight_acquire(bucket=bucket, limit=1, seconds=0.2) is None
    deadline = time.monotonic() + 3
    while ratelimits.in_flight_acquire(bucket=bucket, limit=1, seconds=0.2) is None:
        assert time.monotonic() < deadline, "the dead call's place was never freed"
        time.sleep(0.05)
