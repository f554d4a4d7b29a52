"""Retention: log rows older than their setting are deleted, a bounded batch at a time.

At 600 token requests a second the token issue log alone grows by 50 million rows a day, so
beat prunes every minute (``connect.tasks.retention_prune``), and no statement may hold locks
for long: each deletes at most ``CONNECT_RETENTION_BATCH`` rows, chosen by an index on their
time column, and commits on its own; a run stops starting batches after
``CONNECT_RETENTION_BUDGET`` seconds, and each kind of row takes its turn, so one with a large
backlog does not starve the others.

Each kind of row is one ``Retained`` entry in ``RETAINED``: the setting that says how many days
it is kept and how to delete one batch older than a moment. The per-hour counters get an entry
of their own, kept ``CONNECT_RETAIN_COUNTERS_DAYS``.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from connect.models import (
    ActivityCount,
    AuditEvent,
    Delivery,
    DeliveryAttempt,
    InboundEvent,
    LifecycleEvent,
    ProxyCall,
    TokenIssue,
)
from connect.models.deliveries import DeliveryStatus

#: Deliveries still to be sent keep their event (and everything of it) however old it is.
UNFINISHED = (DeliveryStatus.PENDING, DeliveryStatus.DELIVERING)


@dataclass(frozen=True)
class Retained:
    name: str
    #: Days to keep, by the name of a setting; 0 keeps them forever.
    setting: str
    #: Delete at most ``batch`` rows older than the moment; how many went.
    prune_batch: Callable[[datetime, int], int]

    def cutoff(self, now: datetime) -> datetime | None:
        days = getattr(settings, self.setting)
        return now - timedelta(days=days) if days > 0 else None


def _older_than(model: type[models.Model], field: str) -> Callable[[datetime, int], int]:
    """A batch of a table no other table points at: one DELETE of the oldest rows by primary
    key (Django's fast delete: nothing to cascade, nothing loaded)."""

    def prune_batch(cutoff: datetime, batch: int) -> int:
        oldest = model._default_manager.filter(**{f"{field}__lt": cutoff}).order_by()
        deleted, _ = model._default_manager.filter(
            pk__in=models.Subquery(oldest.values("pk")[:batch])
        ).delete()
        return deleted

    return prune_batch


def _with_deliveries(
    model: type[models.Model], field: str, link: str
) -> Callable[[datetime, int], int]:
    """A batch of events (inbound or lifecycle, ``link`` names a delivery's foreign key to
    them) older than the cutoff whose deliveries are all over, with those deliveries and their
    attempts: children first, in one short transaction. The deliveries are locked and looked
    at again inside it, so a replay that starts meanwhile either waits for the delete or keeps
    its event."""

    def prune_batch(cutoff: datetime, batch: int) -> int:
        unfinished = Delivery.objects.filter(**{link: OuterRef("pk")}, status__in=UNFINISHED)
        chosen = list(
            model._default_manager.filter(**{f"{field}__lt": cutoff})
            .exclude(Exists(unfinished))
            .order_by()
            .values_list("pk", flat=True)[:batch]
        )
        if not chosen:
            return 0
        with transaction.atomic():
            held = (
                Delivery.objects.select_for_update().filter(**{f"{link}_id__in": chosen}).order_by()
            )
            statuses = held.values_list(f"{link}_id", "status")
            busy = {event for event, status in statuses if status in UNFINISHED}
            gone = [pk for pk in chosen if pk not in busy]
            if not gone:
                return 0
            # Django's delete() would load every delivery and event to cascade by hand; their
            # dependants are deleted just before, so a plain DELETE of each is all it takes.
            DeliveryAttempt.objects.filter(**{f"delivery__{link}_id__in": gone})._raw_delete(
                DeliveryAttempt.objects.db
            )
            Delivery.objects.filter(**{f"{link}_id__in": gone})._raw_delete(Delivery.objects.db)
            return model._default_manager.filter(pk__in=gone)._raw_delete(model._default_manager.db)

    return prune_batch


RETAINED: tuple[Retained, ...] = (
    Retained(
        "token_issues", "CONNECT_RETAIN_TOKEN_ISSUES_DAYS", _older_than(TokenIssue, "created_at")
    ),
    Retained(
        "delivery_attempts",
        "CONNECT_RETAIN_DELIVERY_ATTEMPTS_DAYS",
        _older_than(DeliveryAttempt, "started_at"),
    ),
    Retained(
        "events",
        "CONNECT_RETAIN_EVENTS_DAYS",
        _with_deliveries(InboundEvent, "received_at", "event"),
    ),
    Retained(
        "lifecycle_events",
        "CONNECT_RETAIN_EVENTS_DAYS",
        _with_deliveries(LifecycleEvent, "created_at", "lifecycle_event"),
    ),
    Retained("audit_events", "CONNECT_RETAIN_AUDIT_DAYS", _older_than(AuditEvent, "created_at")),
    Retained(
        "proxy_calls", "CONNECT_RETAIN_PROXY_CALLS_DAYS", _older_than(ProxyCall, "created_at")
    ),
    Retained("counters", "CONNECT_RETAIN_COUNTERS_DAYS", _older_than(ActivityCount, "hour")),
)


def retention_prune(
    *,
    now: datetime | None = None,
    batch: int | None = None,
    budget_seconds: float | None = None,
) -> dict[str, int]:
    """Delete what is past its retention, a batch of each kind in turn, until nothing is left
    or the budget is spent (the batch in progress finishes). Returns the rows deleted by kind;
    what is left waits for the next run."""
    now = now or timezone.now()
    batch = batch or settings.CONNECT_RETENTION_BATCH
    budget = settings.CONNECT_RETENTION_BUDGET if budget_seconds is None else budget_seconds
    stop_at = time.monotonic() + budget
    cutoffs = {kind: cutoff for kind in RETAINED if (cutoff := kind.cutoff(now)) is not None}
    deleted = dict.fromkeys((kind.name for kind in RETAINED), 0)
    while cutoffs and time.monotonic() < stop_at:
        for kind, cutoff in list(cutoffs.items()):
            count = kind.prune_batch(cutoff, batch)
            deleted[kind.name] += count
            if count < batch:
                del cutoffs[kind]  # nothing older is left
            if time.monotonic() >= stop_at:
                break
    return deleted
