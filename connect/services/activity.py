"""Per-hour activity counters per (team, connector), for the charts and for health.

What happened is counted in this process's memory first — a dictionary increment under a lock,
no query — and written in batches: a background thread flushes every
``CONNECT_ACTIVITY_FLUSH_SECONDS`` (and once more when the process exits), each row an upsert
that adds with ``F()``, so any number of processes can flush the same hour at once. The token
path only ever calls ``token_request_counted``; everything else (deliveries, installs,
consents) goes through ``activity_count``.

A crash loses at most one interval of counts; the logs (token issues, attempts, audit) still
have every row. With the setting at 0 nothing flushes by itself (the tests flush by hand).
"""

import atexit
import logging
import os
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connections, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from connect.models import ActivityCount, Connector
from connect.models.activity import ActivityKind

logger = logging.getLogger(__name__)

#: Upper bounds of the latency buckets, in milliseconds; slower answers go to "inf".
LATENCY_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
INF = "inf"

#: Answers that say the caller (or the subject) must do something, not that the connector is
#: broken: they count as refused in the charts, never against the connector's health.
REFUSED_OUTCOMES = frozenset(
    {
        "invalid_request",
        "invalid_scope",
        "unauthorized",
        "forbidden",
        "not_found",
        "rate_limited",
        "method_not_allowed",
        "unsupported_media_type",
        "payload_too_large",
        "client_not_linked_to_project",
        "client_not_enabled_for_environment",
        "user_authorization_required",
        "connector_installation_required",
    }
)

#: (team id, connector id — or, from the token path, the reference the caller used —, hour,
#: kind, label)
Key = tuple[int, int | str, datetime, str, str]


class _Tally:
    """This process's counts not yet written, and the thread that writes them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[Key] = Counter()
        self.flusher: threading.Thread | None = None
        self.wake = threading.Event()

    def forked(self) -> None:
        # The parent writes what it counted; the child starts empty, with locks nobody holds.
        self.lock = threading.Lock()
        self.counts = Counter()
        self.flusher = None
        self.wake = threading.Event()


_tally = _Tally()
os.register_at_fork(after_in_child=_tally.forked)


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def latency_bucket(seconds: float) -> str:
    ms = seconds * 1000
    return next((str(bound) for bound in LATENCY_BUCKETS_MS if ms <= bound), INF)


def _add(keys: Iterable[Key]) -> None:
    with _tally.lock:
        for key in keys:
            _tally.counts[key] += 1
        start = _tally.flusher is None
    if start:
        _start_flusher()


def token_request_counted(
    *,
    team_id: int,
    connector_ref: str,
    outcome: str,
    seconds: float,
    provider_error: str = "",
    at: datetime | None = None,
) -> None:
    """Count one answered token request (the token view's one hook). No query: the connector
    is named as the caller named it, and resolved when the batch is written."""
    hour = hour_of(at or timezone.now())
    keys: list[Key] = [
        (team_id, connector_ref, hour, ActivityKind.TOKEN, outcome),
        (team_id, connector_ref, hour, ActivityKind.LATENCY, latency_bucket(seconds)),
    ]
    if provider_error:
        keys.append((team_id, connector_ref, hour, ActivityKind.PROVIDER_ERROR, provider_error))
    _add(keys)


def activity_count(
    *, connector: Connector, kind: ActivityKind, label: str, at: datetime | None = None
) -> None:
    """Count one thing that happened on ``connector`` (a delivery attempt, an install, a
    consent…), written with the next batch."""
    hour = hour_of(at or timezone.now())
    _add([(connector.team_id, connector.pk, hour, kind, label)])


def _start_flusher() -> None:
    interval = float(getattr(settings, "CONNECT_ACTIVITY_FLUSH_SECONDS", 0))
    if interval <= 0:
        return
    with _tally.lock:
        if _tally.flusher is not None:
            return
        _tally.flusher = threading.Thread(
            target=_flush_every, args=(interval,), name="connect-activity", daemon=True
        )
        _tally.flusher.start()


def _flush_every(interval: float) -> None:
    wake = _tally.wake
    while True:
        wake.wait(interval)
        wake.clear()
        try:
            activity_flush()
        except Exception:  # the counts stay in memory for the next round
            logger.warning("activity: writing the counters failed", exc_info=True)
        finally:
            # This thread's own connection: not held open between rounds.
            connections.close_all()


@atexit.register
def _flush_at_exit() -> None:
    if not _tally.counts:
        return
    try:
        activity_flush()
    except Exception:
        logger.warning("activity: counters lost at exit", exc_info=True)


def _resolve(refs: set[tuple[int, str]]) -> dict[tuple[int, str], int]:
    """Connector ids for the references callers used (``scl_…`` or the uid), in one query;
    references to no connector (answered ``not_found``) are left out."""
    if not refs:
        return {}
    teams = {team for team, _ in refs}
    names = {ref for _, ref in refs}
    found: dict[tuple[int, str], int] = {}
    rows = Connector.objects.filter(
        Q(uid__in=names) | Q(public_id__in=names), team_id__in=teams
    ).values_list("pk", "team_id", "uid", "public_id")
    for pk, team_id, uid, public_id in rows:
        found[(team_id, uid)] = pk
        found[(team_id, public_id)] = pk
    return found


def _increment(
    team_id: int, connector_id: int, hour: datetime, kind: str, label: str, n: int
) -> None:
    row = ActivityCount.objects.filter(connector_id=connector_id, hour=hour, kind=kind, label=label)
    if row.update(count=F("count") + n):
        return
    try:
        with transaction.atomic():
            ActivityCount.objects.create(
                team_id=team_id,
                connector_id=connector_id,
                hour=hour,
                kind=kind,
                label=label,
                count=n,
            )
    except IntegrityError:
        # Another process inserted the same hour first (or the connector is gone: then the
        # update below finds nothing, and the count goes with the connector).
        row.update(count=F("count") + n)


def activity_flush() -> int:
    """Write this process's counts (an upsert per counter, adding with ``F()``) and return how
    many counters were written. What could not be written is kept for the next flush."""
    with _tally.lock:
        pending = _tally.counts
        _tally.counts = Counter()
    if not pending:
        return 0
    written: set[Key] = set()
    try:
        ids = _resolve({(k[0], k[1]) for k in pending if isinstance(k[1], str)})
        merged: Counter[tuple[int, int, datetime, str, str]] = Counter()
        for key, n in pending.items():
            team_id, connector, hour, kind, label = key
            connector_id = (
                ids.get((team_id, connector)) if isinstance(connector, str) else connector
            )
            if connector_id is None:
                written.add(key)  # no such connector: nothing to count it against
                continue
            merged[(team_id, connector_id, hour, kind, label)] += n
        # One order for every process: two flushes of the same hours never wait on each other
        # in a circle.
        done: set[tuple[int, int, datetime, str, str]] = set()
        for row_key in sorted(merged, key=lambda k: (k[1], k[2], k[3], k[4])):
            _increment(*row_key, merged[row_key])
            done.add(row_key)
        written.update(pending)
        return len(done)
    except DatabaseError:
        with _tally.lock:
            for key, n in pending.items():
                if key not in written:
                    _tally.counts[key] += n
        raise


def activity_discard() -> None:
    """Forget this process's unwritten counts (tests start each from nothing)."""
    with _tally.lock:
        _tally.counts = Counter()


# Reading ---------------------------------------------------------------------------------------


@dataclass
class Hour:
    """One hour's figures, summed over the connectors asked about."""

    start: datetime
    tokens: Counter[str] = field(default_factory=Counter)
    latency: Counter[str] = field(default_factory=Counter)
    deliveries: Counter[str] = field(default_factory=Counter)
    installs: Counter[str] = field(default_factory=Counter)
    consents: Counter[str] = field(default_factory=Counter)
    provider_errors: Counter[str] = field(default_factory=Counter)

    @property
    def token_requests(self) -> int:
        return sum(self.tokens.values())

    @property
    def token_errors(self) -> int:
        return self.token_requests - self.tokens.get("ok", 0)

    @property
    def token_failures(self) -> int:
        """Failed for the connector's reasons (not the caller's: see ``REFUSED_OUTCOMES``)."""
        return sum(n for outcome, n in self.tokens.items() if _is_failure(outcome))

    def latency_percentile(self, share: float) -> float | None:
        return percentile(self.latency, share)


def _is_failure(outcome: str) -> bool:
    return outcome != "ok" and outcome not in REFUSED_OUTCOMES


def percentile(buckets: Counter[str], share: float) -> float | None:
    """The upper bound (ms) of the bucket holding the ``share`` quantile, or None when empty;
    past the last bound, twice the last bound."""
    total = sum(buckets.values())
    if not total:
        return None
    wanted = share * total
    seen = 0
    for bound in LATENCY_BUCKETS_MS:
        seen += buckets.get(str(bound), 0)
        if seen >= wanted:
            return float(bound)
    return float(LATENCY_BUCKETS_MS[-1] * 2)


_HOUR_FIELD = {
    ActivityKind.TOKEN: "tokens",
    ActivityKind.LATENCY: "latency",
    ActivityKind.DELIVERY: "deliveries",
    ActivityKind.INSTALL: "installs",
    ActivityKind.CONSENT: "consents",
    ActivityKind.PROVIDER_ERROR: "provider_errors",
}


def activity_hours(
    *,
    team_ids: Iterable[int],
    connector_id: int | None = None,
    hours: int,
    now: datetime | None = None,
) -> list[Hour]:
    """The last ``hours`` hours (the current one last), oldest first, with no gaps: one query
    over the counters, by the (team, hour) index."""
    end = hour_of(now or timezone.now())
    start = end - timedelta(hours=hours - 1)
    series = {start + timedelta(hours=i): Hour(start + timedelta(hours=i)) for i in range(hours)}
    rows = ActivityCount.objects.filter(team_id__in=list(team_ids), hour__gte=start)
    if connector_id is not None:
        rows = rows.filter(connector_id=connector_id)
    summed = rows.order_by().values_list("hour", "kind", "label").annotate(n=Sum("count"))
    for hour, kind, label, n in summed:
        slot = series.get(hour)
        if slot is not None and kind in _HOUR_FIELD:
            getattr(slot, _HOUR_FIELD[ActivityKind(kind)])[label] += n
    return list(series.values())


def recent_by_connector(
    *, connector_ids: Iterable[int], since: datetime, kinds: Iterable[ActivityKind] = ()
) -> dict[int, Hour]:
    """Each connector's counts since ``since`` (from the start of its hour), summed, of every
    kind or of ``kinds``: one query, for health."""
    totals: dict[int, Hour] = {}
    chosen = ActivityCount.objects.filter(
        connector_id__in=list(connector_ids), hour__gte=hour_of(since)
    )
    if kinds:
        chosen = chosen.filter(kind__in=list(kinds))
    rows = chosen.order_by().values_list("connector_id", "kind", "label").annotate(n=Sum("count"))
    for connector_id, kind, label, n in rows:
        slot = totals.setdefault(connector_id, Hour(hour_of(since)))
        if kind in _HOUR_FIELD:
            getattr(slot, _HOUR_FIELD[ActivityKind(kind)])[label] += n
    return totals
