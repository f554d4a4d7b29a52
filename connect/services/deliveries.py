"""Forwarding: claim due deliveries under a lease, send them signed, schedule what failed.

Timing lives in the rows (``next_attempt_at``, ``lease_until``), never in broker countdowns, so a
dead worker or an emptied Redis loses nothing: the sweeper finds due and abandoned rows again.
"""

import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote, urlsplit

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from kombu.exceptions import KombuError

from connect import http, tasks
from connect.models import Delivery, DeliveryAttempt, InboundEvent, TriggerDestination
from connect.models.deliveries import DeliveryStatus
from connect.services import oidc
from connect.services.audit import Actor, audit_record
from connect.webhooks import signatures

logger = logging.getLogger(__name__)

RETRY_AFTER_CAP = timedelta(days=1)
DELIVERY_TOKEN_TTL = timedelta(minutes=5)


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str
    latency_ms: int
    retry_after: timedelta | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        # Network errors, 429 and 5xx may pass; other answers will not change by retrying.
        code = self.status_code
        return code is None or code == 429 or code >= 500


def destination_url(destination: TriggerDestination) -> str:
    base = destination.environment.base_url.rstrip("/")
    if not base:
        raise ValueError(f"environment {destination.environment} has no base URL")
    return base + destination.path


def deliveries_claim(*, now: datetime, limit: int) -> list[Delivery]:
    """Take due rows (and rows whose worker vanished) under a lease; skip rows others hold.

    A row whose worker vanished comes alone, so one that kills every worker sending it cannot
    take a batch down with it each time; if the vanished attempt was its last, it fails.
    """
    lease = timedelta(seconds=settings.CONNECT_DELIVERY_LEASE_SECONDS)
    with transaction.atomic():
        claimed = list(
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(
                Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
                | Q(status=DeliveryStatus.DELIVERING, lease_until__lte=now)
            )
            .select_related("event__connector__team", "destination__environment__project__team")
            .order_by("next_attempt_at")[:limit]
        )
        abandoned = [d for d in claimed if d.status == DeliveryStatus.DELIVERING]
        spent = [d for d in abandoned if d.attempts >= len(settings.CONNECT_DELIVERY_SCHEDULE)]
        if spent:
            Delivery.objects.filter(pk__in=[d.pk for d in spent]).update(
                status=DeliveryStatus.FAILED, lease_until=None, updated_at=now
            )
        retried = [d for d in abandoned if d not in spent]
        claimed = retried[:1] if retried else [d for d in claimed if d not in abandoned]
        for delivery in claimed:
            delivery.status = DeliveryStatus.DELIVERING
            delivery.attempts += 1
            delivery.lease_until = now + lease
            delivery.updated_at = now
        # One plain UPDATE: the rows are locked, and bulk_update's CASE per row costs more.
        Delivery.objects.filter(pk__in=[d.pk for d in claimed]).update(
            status=DeliveryStatus.DELIVERING,
            attempts=F("attempts") + 1,
            lease_until=now + lease,
            updated_at=now,
        )
    return claimed


def delivery_headers(delivery: Delivery, url: str, *, now: datetime) -> dict[str, str]:
    event, destination = delivery.event, delivery.destination
    project = destination.environment.project
    parts = urlsplit(url)
    token = oidc.oidc_token_mint(
        project=project,
        environment=destination.environment.slug,
        ttl=DELIVERY_TOKEN_TTL,
        audience=f"{parts.scheme}://{parts.netloc}",
        extra_claims={"connector_id": event.connector.public_id, "jti": delivery.webhook_id},
        now=now,
    )
    timestamp = int(now.timestamp())
    secrets = [destination.reveal("signing_secret")]
    expires = destination.previous_secret_expires_at
    if destination.has_secret("previous_signing_secret") and expires and expires > now:
        secrets.append(destination.reveal("previous_signing_secret"))
    return {
        "Content-Type": event.content_type or "application/octet-stream",
        "Authorization": f"Bearer {token}",
        "webhook-id": delivery.webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures.standard_signature_header(
            secrets=secrets,
            message_id=delivery.webhook_id,
            timestamp=timestamp,
            body=bytes(event.body),
        ),
        "x-connect-trigger-id": event.public_id,
        # The provider's own text: a header carries only visible Latin-1, so escape the rest.
        "x-connect-event-type": quote(event.event_type, safe="._-:/@"),
    }


def _retry_after(response: requests.Response, now: datetime) -> timedelta | None:
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return min(timedelta(seconds=int(value)), RETRY_AFTER_CAP)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:  # "-0000": no zone given; HTTP dates are in UTC
        moment = moment.replace(tzinfo=UTC)
    return min(max(moment - now, timedelta(0)), RETRY_AFTER_CAP)


def _post(delivery: Delivery, *, now: datetime) -> Outcome:
    started = time.monotonic()
    try:
        url = destination_url(delivery.destination)
        response = http.session().post(
            url,
            data=bytes(delivery.event.body),
            headers=delivery_headers(delivery, url, now=now),
            timeout=(3.05, settings.CONNECT_DELIVERY_TIMEOUT),
        )
        retry_after = _retry_after(response, now)
    except Exception as exc:
        # Whatever went wrong is this attempt's failure, recorded and retried on the schedule;
        # raising would leave the row (and the rest of its batch) to a lapsed lease instead.
        if not isinstance(exc, requests.RequestException | ValueError):
            logger.exception("delivery %s: unexpected error", delivery.webhook_id)
        latency = int((time.monotonic() - started) * 1000)
        return Outcome(None, f"{type(exc).__name__}: {exc}"[:500], latency)
    latency = int((time.monotonic() - started) * 1000)
    return Outcome(response.status_code, "", latency, retry_after)


def next_delay(attempts: int, outcome: Outcome) -> timedelta | None:
    """The wait before the next attempt, or None when the schedule is spent."""
    schedule = settings.CONNECT_DELIVERY_SCHEDULE
    if attempts >= len(schedule):
        return None
    delay = timedelta(seconds=schedule[attempts] * random.uniform(0.9, 1.1))  # noqa: S311
    if outcome.retry_after is not None:
        delay = max(delay, outcome.retry_after)
    return delay


def delivery_attempt(*, delivery: Delivery, now: datetime | None = None) -> Outcome:
    """Send one claimed delivery and record the attempt and the delivery's next state."""
    now = now or timezone.now()
    outcome = _post(delivery, now=now)
    finished = timezone.now()
    if outcome.succeeded:
        status, next_at = DeliveryStatus.SUCCEEDED, delivery.next_attempt_at
    elif outcome.retryable and (delay := next_delay(delivery.attempts, outcome)) is not None:
        status, next_at = DeliveryStatus.PENDING, finished + delay
    else:
        status, next_at = DeliveryStatus.FAILED, delivery.next_attempt_at
    # One commit for the log and the state: a commit waits for the disk.
    with transaction.atomic():
        DeliveryAttempt.objects.create(
            delivery=delivery,
            started_at=now,
            status_code=outcome.status_code,
            latency_ms=outcome.latency_ms,
            error=outcome.error,
        )
        # Only the holder of this lease may write: a worker that outlived its lease keeps quiet.
        Delivery.objects.filter(
            pk=delivery.pk, status=DeliveryStatus.DELIVERING, lease_until=delivery.lease_until
        ).update(
            status=status,
            next_attempt_at=next_at,
            lease_until=None,
            last_status_code=outcome.status_code,
            updated_at=finished,
        )
    return outcome


def deliveries_release(*, deliveries: list[Delivery]) -> int:
    """Hand back rows claimed together but not sent: due again, their attempt refunded."""
    if not deliveries:
        return 0
    return Delivery.objects.filter(
        pk__in=[d.pk for d in deliveries],
        status=DeliveryStatus.DELIVERING,
        lease_until=deliveries[0].lease_until,  # one claim, one lease
    ).update(
        status=DeliveryStatus.PENDING,
        attempts=F("attempts") - 1,
        lease_until=None,
        updated_at=timezone.now(),
    )


def _send_within_lease(claimed: list[Delivery]) -> int:
    """Send a claimed batch while its shared lease outlasts one more request; release the rest.

    Otherwise a slow receiver lets the lease lapse mid-batch, another worker claims the rows
    still waiting here, and both send them.
    """
    margin = timedelta(seconds=settings.CONNECT_DELIVERY_TIMEOUT)
    for index, delivery in enumerate(claimed):
        # The first always goes: its lease is fresh.
        if index and delivery.lease_until and timezone.now() + margin >= delivery.lease_until:
            deliveries_release(deliveries=claimed[index:])
            return index
        delivery_attempt(delivery=delivery)
    return len(claimed)


def deliveries_send(*, budget_seconds: float = 20.0) -> int:
    """Claim and send batches until nothing is due or the time budget is spent."""
    sent = 0
    deadline = time.monotonic() + budget_seconds
    batch = settings.CONNECT_DELIVERY_BATCH
    while time.monotonic() < deadline:
        claimed = deliveries_claim(now=timezone.now(), limit=batch)
        if not claimed:
            break
        sent += _send_within_lease(claimed)
    return sent


def deliveries_due(*, now: datetime | None = None) -> int:
    now = now or timezone.now()
    return Delivery.objects.due(now).count()


def _reset(deliveries: QuerySet[Delivery], now: datetime) -> int:
    return deliveries.update(
        status=DeliveryStatus.PENDING,
        attempts=0,
        next_attempt_at=now,
        lease_until=None,
        updated_at=now,
    )


@transaction.atomic
def event_replay(*, event: InboundEvent, actor: Actor, project_id: int | None = None) -> int:
    """Send an event again to its destinations (same webhook-id), or only one project's."""
    now = timezone.now()
    deliveries = event.deliveries.exclude(status=DeliveryStatus.DELIVERING)
    if project_id is not None:
        deliveries = deliveries.filter(destination__project_id=project_id)
    count = _reset(deliveries, now)
    audit_record(
        team=event.connector.team_id,
        type="trigger.replayed",
        actor=actor,
        correlation={"triggerRequestId": event.public_id},
        fields={"deliveries": count},
    )
    transaction.on_commit(deliveries_ring, robust=True)
    return count


@transaction.atomic
def destination_replay_failed(*, destination: TriggerDestination, actor: Actor) -> int:
    now = timezone.now()
    count = _reset(destination.deliveries.filter(status=DeliveryStatus.FAILED), now)
    audit_record(
        team=destination.connector.team_id,
        type="destination.replayed",
        actor=actor,
        targets={"destinationId": destination.public_id},
        fields={"deliveries": count},
    )
    transaction.on_commit(deliveries_ring, robust=True)
    return count


def deliveries_ring() -> None:
    """Wake a worker. If the broker is down the rows wait for the sweeper; nothing is lost."""
    try:
        tasks.deliveries_send.delay()
    except (KombuError, OSError):
        logger.warning("could not enqueue deliveries; the sweeper will pick them up", exc_info=True)
