"""Celery tasks: thin wrappers that call one service with ids."""

from celery import shared_task

from connect import errors
from connect.services import authorizations, deliveries, tokens


@shared_task(acks_late=True)
def authorization_requests_expire() -> int:
    return authorizations.authorization_requests_expire()


@shared_task(acks_late=True)
def grants_refresh_due() -> int:
    """Fan out: one refresh task per grant about to expire."""
    due = tokens.grants_due_for_refresh()
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
    # Idempotent: a grant refreshed meanwhile is fresh again and left alone.
    return tokens.grant_refresh(grant_id=grant_id)


@shared_task(acks_late=True)
def deliveries_send() -> int:
    """The doorbell: claim due deliveries in batches and send them (idempotent by lease)."""
    return deliveries.deliveries_send()


@shared_task
def deliveries_sweep() -> int:
    """Every few seconds: ring for rows that are due or whose worker vanished."""
    due = deliveries.deliveries_due()
    if due:
        deliveries.deliveries_ring()
    return due
