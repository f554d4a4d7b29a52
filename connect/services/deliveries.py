"""Forwarding: claim due deliveries under a lease, send them signed, schedule what failed.

Timing lives in the rows (``next_attempt_at``, ``lease_until``), never in broker countdowns, so a
dead worker or an emptied Redis loses nothing: the sweeper finds due and abandoned rows again.

Each attempt has a total deadline (``CONNECT_DELIVERY_TIMEOUT``), body included, and a doorbell
task starts no attempt after its budget (``CONNECT_DELIVERY_BUDGET``), so it ends before its
Celery time limits and its lease (``connect.checks`` holds the chain). A slow receiver costs a
batch at most one deadline and holds at most one worker; see ``_send_batch``.
"""

import hashlib
import itertools
import json
import logging
import os
import random
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote, urlsplit

import requests
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from kombu.exceptions import KombuError

from connect import errors, http, oidc, signatures, tasks
from connect.models import (
    AuditEvent,
    Delivery,
    DeliveryAttempt,
    InboundEvent,
    LifecycleEvent,
    TriggerDestination,
)
from connect.models.activity import ActivityKind
from connect.models.deliveries import DeliveryStatus
from connect.models.destinations import DisabledReason
from connect.services import activity, destinations
from connect.services.audit import Actor, audit_record

logger = logging.getLogger(__name__)

RETRY_AFTER_CAP = timedelta(days=1)
DELIVERY_TOKEN_TTL = timedelta(minutes=5)
#: Of an answer's body we read at most this much (success is the status), and keep a little for
#: the attempt's log.
RESPONSE_READ_LIMIT = 64 * 1024
RESPONSE_KEPT = 200
#: A destination whose every attempt failed for this long is disabled (Svix's rule).
FAILING_DISABLES_AFTER = timedelta(days=5)
#: An attempt that took this share of the deadline, or ran into it, marks its receiver slow for
#: ``SLOW_FOR``: meanwhile one worker at a time sends to it.
SLOW_SHARE_OF_DEADLINE = 1 / 3
SLOW_FOR = timedelta(minutes=10)


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str
    latency_ms: int
    retry_after: timedelta | None = None
    #: No answer in time: the deadline, or a connect or read timeout, ended the attempt.
    timed_out: bool = False
    #: Nothing was sent and retrying cannot change that (the environment has no base URL).
    final: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        # Network errors, 429 and 5xx may pass; other answers will not change by retrying.
        if self.final:
            return False
        code = self.status_code
        return code is None or code == 429 or code >= 500


def destination_url(destination: TriggerDestination) -> str:
    """Where a destination's deliveries go: its environment's base URL and its path."""
    base = destination.environment.base_url.rstrip("/")
    if not base:
        raise ValueError(f"environment {destination.environment} has no base URL")
    return base + destination.path


def deliveries_claim(*, now: datetime, limit: int) -> list[Delivery]:
    """Take due rows (and rows whose worker vanished) under a lease; skip rows others hold.

    A row whose worker vanished comes alone, so one that kills every worker sending it cannot
    take a batch down with it each time; if the vanished attempt was its last, it fails. So do
    rows of a destination the app disabled: retries that were in flight when it happened, and
    replays, until a member turns it back on.
    """
    lease = timedelta(seconds=settings.CONNECT_DELIVERY_LEASE_SECONDS)
    with transaction.atomic():
        claimed = list(
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .claimable(now)
            .select_related(
                "event__connector__team",
                "lifecycle_event",
                "destination__connector",
                "destination__environment__project__team",
            )
            .order_by("next_attempt_at", "pk")[:limit]
        )
        disabled = [d for d in claimed if d.destination.disabled_at is not None]
        claimed = [d for d in claimed if d not in disabled]
        abandoned = [d for d in claimed if d.status == DeliveryStatus.DELIVERING]
        spent = [d for d in abandoned if d.attempts >= len(settings.CONNECT_DELIVERY_SCHEDULE)]
        if spent or disabled:
            Delivery.objects.filter(pk__in=[d.pk for d in spent + disabled]).update(
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


def delivery_body(delivery: Delivery) -> bytes:
    """What is sent: the inbound event's body as received, or the lifecycle event's JSON."""
    event = delivery.event if delivery.event_id else delivery.lifecycle_event
    assert event is not None  # a check constraint: one or the other
    return bytes(event.body)


def delivery_headers(delivery: Delivery, url: str, *, now: datetime) -> dict[str, str]:
    """A delivery's headers: a short-lived OIDC bearer for the destination's origin and the
    Standard Webhooks signature under the current secret (and the previous one while it lasts)."""
    event, destination = delivery.event, delivery.destination
    project = destination.environment.project
    connector_id = destination.connector.public_id
    parts = urlsplit(url)
    token = oidc.oidc_token_mint(
        project=project,
        environment=destination.environment.slug,
        ttl=DELIVERY_TOKEN_TTL,
        audience=f"{parts.scheme}://{parts.netloc}",
        extra_claims={"connector_id": connector_id, "jti": delivery.webhook_id},
        now=now,
    )
    timestamp = int(now.timestamp())
    secrets = [destination.reveal("signing_secret")]
    expires = destination.previous_secret_expires_at
    if destination.has_secret("previous_signing_secret") and expires and expires > now:
        secrets.append(destination.reveal("previous_signing_secret"))
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {token}",
        "webhook-id": delivery.webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures.standard_signature_header(
            secrets=secrets,
            message_id=delivery.webhook_id,
            timestamp=timestamp,
            body=delivery_body(delivery),
        ),
    }
    if event is None:
        lifecycle = delivery.lifecycle_event
        assert lifecycle is not None
        headers["x-connect-event-type"] = lifecycle.type
        return headers
    headers["Content-Type"] = event.content_type or "application/octet-stream"
    headers["x-connect-trigger-id"] = event.public_id
    # The provider's own text: a header carries only visible Latin-1, so escape the rest.
    headers["x-connect-event-type"] = quote(event.event_type, safe="._-:/@")
    return headers


def retry_after_of(response: requests.Response, now: datetime) -> timedelta | None:
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


def _answer_error(status: int, body: bytes) -> str:
    """What a failed answer said, led by its status: a body alone ("ok", "{}") would read as
    if nothing had gone wrong."""
    excerpt = body.decode("utf-8", "replace").replace("\x00", "")[:RESPONSE_KEPT].strip()
    return f"HTTP {status}: {excerpt}" if excerpt else f"HTTP {status}"


def _post(delivery: Delivery, *, now: datetime) -> Outcome:
    """One attempt, over by the deadline however slowly the receiver answers: the socket
    timeouts bound single reads, ``http.Deadline`` the whole exchange."""
    limit = float(settings.CONNECT_DELIVERY_TIMEOUT)
    started = time.monotonic()
    deadline: http.Deadline | None = None
    status: int | None = None
    if not delivery.destination.environment.base_url:
        # Configured before destinations were refused on such environments: nothing is sent.
        environment = delivery.destination.environment
        return Outcome(None, f"environment {environment} has no base URL: set one", 0, final=True)
    try:
        url = destination_url(delivery.destination)
        headers = delivery_headers(delivery, url, now=now)
        # The receiver's time starts here; signing (a first key, on a fresh install) is ours.
        started = time.monotonic()
        deadline = http.Deadline(limit)
        with deadline:
            response = http.session().post(
                url,
                data=delivery_body(delivery),
                headers=headers,
                timeout=(min(http.CONNECT_TIMEOUT, limit), limit),
                stream=True,
            )
            with response:
                status = response.status_code
                body = http.read_body(
                    response, deadline, limit=RESPONSE_READ_LIMIT, keep=RESPONSE_KEPT
                )
        retry_after = retry_after_of(response, now)
    except SoftTimeLimitExceeded:
        raise  # the task is out of time: the batch hands its rows back (``_send_batch``)
    except Exception as exc:
        # Whatever went wrong is this attempt's failure, recorded and retried on the schedule;
        # raising would leave the row (and the rest of its batch) to a lapsed lease instead.
        latency = int((time.monotonic() - started) * 1000)
        if isinstance(exc, http.DeadlineExceeded) or (deadline is not None and deadline.passed()):
            answered = f" (HTTP {status} came, its body did not end)" if status else ""
            error = f"deadline: no complete answer within {limit:g} s{answered}"
            return Outcome(None, error, latency, timed_out=True)
        if not isinstance(exc, requests.RequestException | ValueError):
            logger.exception("delivery %s: unexpected error", delivery.webhook_id)
        timed_out = isinstance(exc, requests.Timeout)
        return Outcome(None, f"{type(exc).__name__}: {exc}"[:500], latency, timed_out=timed_out)
    latency = int((time.monotonic() - started) * 1000)
    error = "" if 200 <= response.status_code < 300 else _answer_error(response.status_code, body)
    return Outcome(response.status_code, error, latency, retry_after)


def next_delay(attempts: int, outcome: Outcome) -> timedelta | None:
    """The wait before the next attempt, or None when the schedule is spent."""
    schedule = settings.CONNECT_DELIVERY_SCHEDULE
    if attempts >= len(schedule):
        return None
    delay = timedelta(seconds=schedule[attempts] * random.uniform(0.9, 1.1))  # noqa: S311
    if outcome.retry_after is not None:
        delay = max(delay, outcome.retry_after)
    return delay


def _destination_learns(
    delivery: Delivery, outcome: Outcome, *, started: datetime, finished: datetime
) -> None:
    """What one attempt teaches about its destination: gone, failing for days, slow.

    Written only when something changes, from the row as the claim read it; the conditions in
    the UPDATEs keep concurrent workers from undoing each other.
    """
    destination = delivery.destination
    rows = TriggerDestination.objects.filter(pk=destination.pk)
    if outcome.status_code == 410:
        destinations.destination_disable(
            destination=destination,
            reason=DisabledReason.GONE,
            at=finished,
            fields={"statusCode": 410, "webhookId": delivery.webhook_id},
        )
    elif outcome.succeeded and destination.failing_since is not None:
        rows.update(failing_since=None)
    elif not outcome.succeeded and destination.failing_since is None:
        rows.filter(failing_since__isnull=True).update(failing_since=started)
    elif (
        not outcome.succeeded
        and destination.failing_since is not None
        and finished - destination.failing_since >= FAILING_DISABLES_AFTER
    ):
        destinations.destination_disable(
            destination=destination,
            reason=DisabledReason.FAILING,
            at=finished,
            fields={
                "failingSince": destination.failing_since.isoformat(),
                "webhookId": delivery.webhook_id,
            },
        )
    limit = float(settings.CONNECT_DELIVERY_TIMEOUT)
    if outcome.timed_out or outcome.latency_ms >= limit * SLOW_SHARE_OF_DEADLINE * 1000:
        rows.update(slow_until=finished + SLOW_FOR)
    elif destination.slow_until is not None and destination.slow_until > finished:
        rows.update(slow_until=None)  # answering in time again: every worker may send to it


def delivery_attempt(*, delivery: Delivery, now: datetime | None = None) -> Outcome:
    """Send one claimed delivery and record the attempt, the delivery's next state and what it
    says about the destination. ``now`` is the attempt's start (a test's clock)."""
    now = now or timezone.now()
    started = time.monotonic()
    outcome = _post(delivery, now=now)
    # On the caller's clock: the latency is the receiver's share only, signing is ours too.
    finished = now + timedelta(seconds=time.monotonic() - started)
    if outcome.succeeded:
        status, next_at = DeliveryStatus.SUCCEEDED, delivery.next_attempt_at
    elif outcome.retryable and (delay := next_delay(delivery.attempts, outcome)) is not None:
        status, next_at = DeliveryStatus.PENDING, finished + delay
    else:
        status, next_at = DeliveryStatus.FAILED, delivery.next_attempt_at
    # One commit for the log and the state: a commit waits for the disk.
    with transaction.atomic():
        DeliveryAttempt.objects.create(
            team_id=delivery.team_id,
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
        _destination_learns(delivery, outcome, started=now, finished=finished)
    activity.activity_count(
        connector=delivery.destination.connector,
        kind=ActivityKind.DELIVERY,
        label={DeliveryStatus.SUCCEEDED: "succeeded", DeliveryStatus.PENDING: "retrying"}.get(
            status, "failed"
        ),
        at=now,
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


def _round_robin(claimed: list[Delivery]) -> list[Delivery]:
    """Destinations take turns, each in due order: one receiver's backlog at the head of a
    batch does not put everyone else's deliveries behind it."""
    queues: dict[int, list[Delivery]] = {}
    for delivery in claimed:
        queues.setdefault(delivery.destination_id, []).append(delivery)
    return [d for turn in itertools.zip_longest(*queues.values()) for d in turn if d is not None]


def _send_batch(claimed: list[Delivery], *, stop_at: float) -> int:
    """Send a claimed batch in turns; hand back what is left when the budget is spent or the
    shared lease would not outlast one more attempt (then another worker could claim and send
    it too), and the rows of a destination that just let an attempt time out: a slow receiver
    costs a batch one deadline, not one per row. Returns how many were sent.
    """
    margin = timedelta(seconds=settings.CONNECT_DELIVERY_TIMEOUT)
    waiting = _round_robin(claimed)
    held_back: list[Delivery] = []
    timed_out: set[int] = set()
    sent = 0
    try:
        while waiting:
            delivery = waiting[0]
            if delivery.destination_id in timed_out:
                held_back.append(waiting.pop(0))
                continue
            lease_ending = delivery.lease_until and timezone.now() + margin >= delivery.lease_until
            # The first always goes: it was claimed within the budget, on a fresh lease.
            if sent and (time.monotonic() >= stop_at or lease_ending):
                break
            waiting.pop(0)
            outcome = delivery_attempt(delivery=delivery)
            sent += 1
            if outcome.timed_out:
                timed_out.add(delivery.destination_id)
    finally:
        # Also when the task's soft time limit interrupts an attempt: the rows not tried go
        # back now, not when their lease lapses (the one in flight waits for its lease).
        deliveries_release(deliveries=held_back + waiting)
    return sent


def deliveries_send(*, budget_seconds: float | None = None) -> int:
    """Claim and send batches until nothing is due or the time budget is spent.

    No attempt starts after the budget, so this returns within the budget plus one attempt's
    deadline: below the task's soft time limit, which is below the lease.
    """
    budget = settings.CONNECT_DELIVERY_BUDGET if budget_seconds is None else budget_seconds
    stop_at = time.monotonic() + budget
    sent = 0
    batch = settings.CONNECT_DELIVERY_BATCH
    while time.monotonic() < stop_at:
        claimed = deliveries_claim(now=timezone.now(), limit=batch)
        if not claimed:
            break
        sent += _send_batch(claimed, stop_at=stop_at)
    return sent


def deliveries_due(*, now: datetime | None = None) -> int:
    """How many deliveries a worker could claim now."""
    now = now or timezone.now()
    return Delivery.objects.claimable(now).count()


def _replay(
    deliveries: QuerySet[Delivery],
    *,
    team_id: int,
    type: AuditEvent.Type,
    actor: Actor,
    targets: dict[str, str] | None = None,
    correlation: dict[str, str] | None = None,
) -> int:
    """Queue these deliveries afresh (same webhook-ids), record it, wake a worker once the
    transaction commits; how many."""
    now = timezone.now()
    count = deliveries.update(
        status=DeliveryStatus.PENDING,
        attempts=0,
        next_attempt_at=now,
        lease_until=None,
        updated_at=now,
    )
    audit_record(
        team=team_id,
        type=type,
        actor=actor,
        targets=targets,
        correlation=correlation,
        fields={"deliveries": count},
    )
    transaction.on_commit(deliveries_ring, robust=True)
    return count


@transaction.atomic
def event_replay(*, event: InboundEvent, actor: Actor, project_id: int | None = None) -> int:
    """Send an event again to its destinations (same webhook-id), or only one project's."""
    deliveries = event.deliveries.exclude(status=DeliveryStatus.DELIVERING)
    if project_id is not None:
        deliveries = deliveries.filter(destination__project_id=project_id)
    return _replay(
        deliveries,
        team_id=event.connector.team_id,
        type=AuditEvent.Type.TRIGGER_REPLAYED,
        actor=actor,
        correlation={"triggerRequestId": event.public_id},
    )


@transaction.atomic
def lifecycle_event_replay(*, event: LifecycleEvent, actor: Actor) -> int:
    """Send a lifecycle event again to its destinations, under the same webhook-id."""
    return _replay(
        event.deliveries.exclude(status=DeliveryStatus.DELIVERING),
        team_id=event.connector.team_id,
        type=AuditEvent.Type.LIFECYCLE_EVENT_REPLAYED,
        actor=actor,
        correlation={"lifecycleEventId": event.public_id},
    )


@transaction.atomic
def destination_replay_failed(*, destination: TriggerDestination, actor: Actor) -> int:
    """Send a destination's failed deliveries again (same webhook-ids), recorded; how many."""
    return _replay(
        destination.deliveries.filter(status=DeliveryStatus.FAILED),
        team_id=destination.connector.team_id,
        type=AuditEvent.Type.DESTINATION_REPLAYED,
        actor=actor,
        targets={"destinationId": destination.public_id},
    )


class _Doorbell:
    def __init__(self) -> None:
        self.due = threading.Event()
        self.pid = 0
        self.lock = threading.Lock()


_doorbell = _Doorbell()
#: How long the doorbell thread gathers commits before it rings once for all of them.
DOORBELL_GATHER_SECONDS = 0.01


def deliveries_ring_soon() -> None:
    """One doorbell for every event committed within ``DOORBELL_GATHER_SECONDS``, rung by a
    thread of this process, so an ingest makes no broker round trip. A ring lost to a crash
    costs only time: the events and deliveries are committed, and the sweeper rings for them.
    ``CONNECT_DOORBELL=sync`` rings on the request (tests)."""
    if settings.CONNECT_DOORBELL == "sync":
        deliveries_ring()
        return
    bell = _doorbell
    if bell.pid != os.getpid():
        with bell.lock:
            if bell.pid != os.getpid():
                bell.pid, bell.due = os.getpid(), threading.Event()
                threading.Thread(target=_ring_when_due, args=(bell.due,), daemon=True).start()
    bell.due.set()


def _ring_when_due(due: threading.Event) -> None:
    while True:
        due.wait()
        time.sleep(DOORBELL_GATHER_SECONDS)
        due.clear()
        deliveries_ring()


def deliveries_ring() -> None:
    """Wake a worker. If the broker is down the rows wait for the sweeper; nothing is lost."""
    try:
        tasks.deliveries_send.delay()
    except (KombuError, OSError):
        logger.warning("could not enqueue deliveries; the sweeper will pick them up", exc_info=True)


#: The event type of the test event a member sends to one destination.
TEST_EVENT_TYPE = "connect.test"


@transaction.atomic
def destination_test_event(*, destination: TriggerDestination, actor: Actor) -> Delivery:
    """Send a synthetic ``connect.test`` event to this one destination, signed and retried
    like any other, so a team sees its endpoint verify our signature before a real one."""
    if not destination.enabled:
        raise errors.InvalidRequest("This destination is turned off; turn it on first.")
    now = timezone.now()
    event_id = f"test_{uuid.uuid4().hex}"
    body = json.dumps(
        {
            "type": TEST_EVENT_TYPE,
            "id": event_id,
            "destinationId": destination.public_id,
            "connectorId": destination.connector.public_id,
            "sentAt": int(now.timestamp() * 1000),
        }
    ).encode()
    event = InboundEvent.objects.create(
        connector=destination.connector,
        provider_event_id=event_id,
        event_type=TEST_EVENT_TYPE,
        headers={},
        content_type="application/json",
        body=body,
        body_sha256=hashlib.sha256(body).hexdigest(),
        verified=True,
        received_at=now,
    )
    delivery = Delivery.objects.create(event=event, destination=destination)
    audit_record(
        team=destination.connector.team_id,
        type=AuditEvent.Type.DESTINATION_TESTED,
        actor=actor,
        targets={"destinationId": destination.public_id},
        correlation={"triggerRequestId": event.public_id},
    )
    transaction.on_commit(deliveries_ring, robust=True)
    return delivery
