"""Bounded process-local caches for the token path, kept honest by generations.

An entry holds a value, the generation scopes it depends on with their values when it was
filled, and an expiry (wall clock). It is served only while none of those generations moved
(``connect.generations``) and it has not expired; the least recently used entry goes first when
the cache is full. Filling: take ``generations.epoch()`` before reading the database and pass it
to ``put``, which drops the entry if any generation moved meanwhile.
"""

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.conf import settings

from connect import generations

V = TypeVar("V")


@dataclass(frozen=True)
class _Entry(Generic[V]):
    value: V
    scopes: tuple[str, ...]
    seen: tuple[int, ...]
    expires_at: float


class LocalCache(Generic[V]):
    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self._entries: OrderedDict[Any, _Entry[V]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Any, now: float | None = None) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        now = time.time() if now is None else now
        if entry.expires_at <= now or not generations.still(entry.scopes, entry.seen):
            with self._lock:
                if self._entries.get(key) is entry:
                    del self._entries[key]
            self.misses += 1
            return None
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
        self.hits += 1
        return entry.value

    def put(
        self, key: Any, value: V, *, scopes: tuple[str, ...], epoch: int, expires_at: float
    ) -> None:
        """Keep ``value`` (read after ``epoch`` was taken) unless a generation moved since."""
        seen, tracked = generations.values(scopes)
        if not tracked or generations.epoch() != epoch:
            return  # a new scope, or something moved while the value was read
        entry = _Entry(value=value, scopes=scopes, seen=seen, expires_at=expires_at)
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def drop(self, key: Any) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


_caches: dict[str, LocalCache[Any]] = {}


def cache(name: str) -> LocalCache[Any]:
    """The process's cache called ``name``, of ``CONNECT_LOCAL_CACHE_ENTRIES`` entries."""
    found = _caches.get(name)
    if found is None:
        found = _caches.setdefault(name, LocalCache(name, settings.CONNECT_LOCAL_CACHE_ENTRIES))
    return found


def enabled() -> bool:
    return bool(settings.CONNECT_LOCAL_CACHES)


def clear_all() -> None:
    for found in _caches.values():
        found.clear()
