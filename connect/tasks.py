"""Celery tasks: thin wrappers that call one service with ids."""

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from connect import errors
from connect.services import authorizations, credential_checks, deliveries, grants, retention

logger = logging.getLogger(__name__)

#: Doorbells one sweep rings at most; each claims a batch and keeps going while rows are due.
MAX_SWEEP_RINGS = 8


@shared_task(acks_late=True)
def authorization_requests_expire() -> int:
    return authorizations.authorization_requests_expire()


@shared_task(acks_late=True)
def grants_refresh_due() -> int:
    """Fan out: one refresh task per grant about to expire."""
    due = grants.grants_due_for_refresh()
    for grant_id in due:
        grant_refresh.delay(grant_id)
    return len(due)


@shared_task(
    acks_late=True,
    autoretry_for=(errors.ProviderUnavailable,),
    retry_backoff=30,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
)
def grant_refresh(grant_id: int) -> bool:
    # Idempotent: a grant refreshed meanwhile is fresh again and left alone. The same path as a
    # token request, waiting to the end; the time limits (CELERY_TASK_ANNOTATIONS) outlast it.
    return grants.grant_refresh_ahead(grant_id=grant_id)


@shared_task(acks_late=True)
def deliveries_send() -> int:
    """The doorbell: claim due deliveries in batches and send them (idempotent by lease)."""
    try:
        return deliveries.deliveries_send()
    except SoftTimeLimitExceeded:
        # Budget + deadline stay under the soft limit, so only a stalled database or resolver
        # gets here. The rows not yet tried went back; the one in flight waits out its lease.
        logger.warning("deliveries_send reached its soft time limit")
        return 0


@shared_task
def deliveries_sweep() -> int:
    """Every few seconds: ring for rows that are due or whose worker vanished — once per batch
    of them (up to a bound), so a backlog wakes every worker rather than one."""
    due = deliveries.deliveries_due()
    batch = settings.CONNECT_DELIVERY_BATCH
    rings = min(-(-due // batch), MAX_SWEEP_RINGS)
    for _ in range(rings):
        deliveries.deliveries_ring()
    # Every 5 seconds: a line only when it found something to do.
    logger.log(
        logging.INFO if rings else logging.DEBUG,
        "sweep: %d deliveries due, %d doorbells rung",
        due,
        rings,
    )
    return due


@shared_task
def retention_prune() -> dict[str, int]:
    """Every minute: delete what is past its retention, within a time budget."""
    deleted = retention.retention_prune()
    logger.log(
        logging.INFO if any(deleted.values()) else logging.DEBUG,
        "retention: deleted %s",
        ", ".join(f"{count} {name}" for name, count in deleted.items()),
    )
    return deleted


@shared_task
def credentials_check() -> dict[str, int]:
    """Every minute: schedule new credential checks and run the due ones, in bounded batches
    under leases (the schedule lives in the rows, never in countdowns)."""
    counts = credential_checks.credentials_check()
    logger.log(
        logging.INFO if len(counts) > 1 or counts.get("scheduled") else logging.DEBUG,
        "credential checks: %s",
        ", ".join(f"{count} {name}" for name, count in counts.items()),
    )
    return counts
