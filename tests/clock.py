"""Time for tests to inject instead of sleeping on: a clock that moves when told, and Django's
local-memory cache expiring its entries by such a clock."""

import time
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache

#: The clocks of the clocked caches, by the cache's LOCATION.
CLOCKS: dict[str, "ManualClock"] = {}


class ManualClock:
    """Epoch seconds that stand still until ``advance``; call it for the time. (An object,
    not a function: as a class attribute it is not bound to instances.)"""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ClockedLocMemCache(LocMemCache):
    """Django's local-memory cache, its timeouts counted on ``CLOCKS[LOCATION]`` rather than
    the wall clock: ``cache.add(key, value, 1)`` then ``clock.advance(1)`` and the key is gone."""

    def __init__(self, name: str, params: dict[str, Any]) -> None:
        super().__init__(name, params)
        self._clock_name = name

    def _now(self) -> float:
        return CLOCKS[self._clock_name]()

    def get_backend_timeout(self, timeout: Any = DEFAULT_TIMEOUT) -> float | None:
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        elif timeout == 0:
            timeout = -1  # as Django's: expire at once
        return None if timeout is None else self._now() + timeout

    def _has_expired(self, key: str) -> bool:
        expires = self._expire_info.get(key, -1)
        return expires is not None and expires <= self._now()
