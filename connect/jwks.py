"""Published JSON Web Key sets (RFC 7517), as trusted issuers and providers publish them:
kept in the cache, fetched again when a token names a key the kept set lacks (the publisher
rotated), at most once per ``refetch_after`` seconds."""

import time
from collections.abc import Callable
from typing import Any

from django.core.cache import cache


def published_key(
    cache_key: str,
    kid: str,
    fetch: Callable[[], list[dict[str, Any]]],
    *,
    ttl: float,
    refetch_after: float,
) -> dict[str, Any] | None:
    """The JWK ``kid`` of the set ``fetch`` reads (kept under ``cache_key`` for ``ttl``
    seconds), or None when the set has no such key; ``fetch``'s errors pass through."""
    entry = cache.get(cache_key)
    if entry is None or (
        kid not in {k.get("kid") for k in entry["keys"]}
        and time.time() - entry["fetched_at"] >= refetch_after
    ):
        entry = {"keys": fetch(), "fetched_at": time.time()}
        cache.set(cache_key, entry, ttl)
    return next((k for k in entry["keys"] if k.get("kid") == kid), None)
