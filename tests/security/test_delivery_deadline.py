"""Issue 8, point 7: a delivery attempt has a total deadline, and a bad receiver costs little.

A receiver that drips its answer one byte at a time, each byte inside any per-read timeout,
must not hold an attempt past ``CONNECT_DELIVERY_TIMEOUT`` nor count as a success; the doorbell
task's budget, Celery's time limits, the lease and the broker's visibility timeout form one
chain that start-up refuses to see broken; a slow destination holds one worker at a time and
costs a batch one deadline; ``410 Gone`` and five days of failures disable a destination.

Real PostgreSQL (claims and leases) and a real loopback receiver; the deadline is 1 s here.
"""

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.utils import timezone

from config.celery import app as celery_app
from connect import checks
from connect.models import (
    AuditEvent,
    Connector,
    ConnectorType,
    Delivery,
    DeliveryAttempt,
    Environment,
    InboundEvent,
    Role,
    TriggerDestination,
)
from connect.models.destinations import DisabledReason
from connect.oidc import oidc_token_mint
from connect.services import destinations
from connect.services.deliveries import (
    deliveries_claim,
    deliveries_release,
    deliveries_send,
    delivery_attempt,
)
from connect.services.triggers import trigger_receive
from tests.fixtures import webhook_body
from tests.triggers.conftest import Triggers, discord_key, github_headers, triggers  # noqa: F401
from tests.triggers.receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]
SECRET = "gh-deadline-secret"
DEADLINE = 1.0
TOLERANCE = 0.5
# Sent one byte every 50 ms: 10 s in all, each byte well inside any per-read timeout.
DRIP_EVERY, DRIP_LENGTH = 0.05, 200


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


@dataclass
class Relay:
    """A GitHub connector of one team, relaying to destinations at the receiver."""

    triggers: Triggers
    connector: Connector
    receiver: Receiver

    def destination(self, path: str) -> TriggerDestination:
        return self.triggers.destination(self.connector, path=path)

    def receive(self, marker: str) -> InboundEvent:
        body = webhook_body("github", "issues.opened", {"issue.title": marker})
        headers = github_headers(SECRET, body, delivery=f"delivery-{marker}")
        reply = trigger_receive(
            connector_id=self.connector.public_id,
            headers={name.lower(): value for name, value in headers.items()},
            query={},
            body=body,
            content_type="application/json",
        )
        assert reply.status == 200, reply.body
        return InboundEvent.objects.get(public_id=json.loads(reply.body)["id"])


@pytest.fixture
def relay(
    require_postgres: None,
    triggers: Triggers,  # noqa: F811
    receiver: Receiver,
    settings: Any,
) -> Relay:
    settings.CONNECT_DELIVERY_TIMEOUT = DEADLINE
    Environment.objects.filter(project=triggers.project).update(base_url=receiver.url)
    connector = triggers.make(ConnectorType.GITHUB, secret=SECRET)
    # The issuer's first signing key is made (and loaded) here, not in the timed attempts.
    oidc_token_mint(project=triggers.project, environment="production")
    return Relay(triggers=triggers, connector=connector, receiver=receiver)


def claim(limit: int = 50, now: datetime | None = None) -> list[Delivery]:
    return deliveries_claim(now=now or timezone.now(), limit=limit)


def timed(call: Callable[[], object]) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


# --- The deadline ---------------------------------------------------------------------------------


@pytest.mark.parametrize("phase", ["body", "headers"])
def test_a_receiver_dripping_its_answer_cannot_hold_an_attempt_past_the_deadline(
    relay: Relay, settings: Any, phase: str
) -> None:
    settings.CONNECT_DELIVERY_SCHEDULE = [0, 0.5, 300, 1800]
    relay.destination("/drip")
    relay.receiver.drip("/drip", DRIP_EVERY, DRIP_LENGTH, phase)
    relay.receive("drip")
    [delivery] = claim()

    elapsed = timed(lambda: delivery_attempt(delivery=delivery))

    # Failed at the deadline, not after the 10 s the receiver takes, and not as a success.
    assert DEADLINE - TOLERANCE <= elapsed <= DEADLINE + TOLERANCE, elapsed
    [attempt] = DeliveryAttempt.objects.filter(delivery=delivery)
    assert attempt.status_code is None
    assert attempt.error.startswith("deadline: no complete answer within 1 s"), attempt.error
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, None)
    # Retried on the schedule: the second step (0.5 s, ±10 % jitter) after the attempt ended.
    wait = (delivery.next_attempt_at - attempt.started_at).total_seconds() - elapsed
    assert 0.45 - 0.05 <= wait <= 0.55 + 0.05, wait
    assert claim() == []  # not due yet

    # The receiver mends its ways; the retry, once due, goes through.
    relay.receiver.stop_dripping("/drip")
    [again] = claim(now=delivery.next_attempt_at)
    assert delivery_attempt(delivery=again).succeeded
    again.refresh_from_db()
    assert (again.status, again.attempts, again.last_status_code) == ("succeeded", 2, 200)
    assert len(relay.receiver.received("/drip")) == 2


def test_an_answer_that_ends_within_the_deadline_is_a_success(relay: Relay) -> None:
    relay.destination("/steady")
    relay.receiver.drip("/steady", 0.02, 10)  # 0.2 s
    relay.receive("steady")
    [delivery] = claim()

    outcome = delivery_attempt(delivery=delivery)

    assert (outcome.status_code, outcome.error, outcome.timed_out) == (200, "", False)


def test_a_doorbell_starts_no_attempt_after_its_budget(relay: Relay) -> None:
    """The budget bounds the task: budget + one deadline, whatever is left in the batch."""
    relay.destination("/busy")
    relay.receiver.slow("/busy", 0.3)
    for n in range(4):
        relay.receive(f"busy-{n}")

    began = timezone.now()
    started = time.monotonic()
    sent = deliveries_send(budget_seconds=0.5)
    elapsed = time.monotonic() - started

    attempts = DeliveryAttempt.objects.all()
    assert sent == attempts.count()
    assert all((a.started_at - began).total_seconds() < 0.5 for a in attempts)
    assert elapsed < 0.5 + DEADLINE
    # The rows not sent went back at once: due, their attempt refunded, no lease to wait out.
    unsent = Delivery.objects.exclude(attempt_log__isnull=False)
    assert unsent.count() == 4 - sent >= 1
    assert set(unsent.values_list("status", "attempts", "lease_until")) == {("pending", 0, None)}


# --- The time-limit chain -------------------------------------------------------------------------


def test_the_time_limit_chain_holds_in_the_settings_in_force(
    settings: Any,
) -> None:
    """budget + deadline < soft limit < hard limit < lease < visibility timeout, as this
    process's Celery app applies them to the delivery task."""
    conf = celery_app.conf
    task = celery_app.tasks[checks.DELIVERY_TASK]
    soft = task.soft_time_limit or conf.task_soft_time_limit
    hard = task.time_limit or conf.task_time_limit
    budget = settings.CONNECT_DELIVERY_BUDGET
    deadline = settings.CONNECT_DELIVERY_TIMEOUT
    lease = settings.CONNECT_DELIVERY_LEASE_SECONDS
    assert soft is not None
    assert hard is not None
    assert budget + deadline < soft < hard < lease
    if os.environ.get("REDIS_URL"):
        assert conf.broker_url.startswith("redis://")
        assert lease < conf.broker_transport_options["visibility_timeout"]
    # The defaults, as documented.
    assert (budget, deadline, soft, hard, lease) == (20, 15, 45, 50, 60)
    assert checks.delivery_time_problems(checks.delivery_times_in_force()) == []


def test_start_up_refuses_settings_that_break_the_chain() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    env.pop("CONNECT_DELIVERY_TIME_LIMIT", None)
    broken = {**env, "CONNECT_DELIVERY_TIME_LIMIT": "70"}  # the lease is 60
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=broken,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "the hard time limit (70 s) must be less than CONNECT_DELIVERY_LEASE (60 s)" in (
        result.stderr
    )


def test_the_system_check_sees_what_celery_would_apply() -> None:
    saved = celery_app.conf.task_annotations
    celery_app.conf.task_annotations = {checks.DELIVERY_TASK: {"time_limit": 7200}}
    try:
        errors = checks.check_delivery_times(None)
    finally:
        celery_app.conf.task_annotations = saved
    assert "the hard time limit (7200 s) must be less than CONNECT_DELIVERY_LEASE" in str(errors)
    if celery_app.conf.broker_url.startswith("redis://"):
        # Past the visibility timeout, too: Redis would hand the doorbell to a second worker.
        assert [e.id for e in errors] == ["connect.E101", "connect.E101"]
        assert "not less than the broker's visibility timeout (3600 s)" in str(errors)
    assert checks.check_delivery_times(None) == []


# --- Fairness -------------------------------------------------------------------------------------


def test_a_slow_destination_costs_a_batch_one_deadline_not_one_per_row(relay: Relay) -> None:
    relay.destination("/slow")
    relay.destination("/fast")
    relay.receiver.drip("/slow", DRIP_EVERY, DRIP_LENGTH)
    # Three events: each goes to both; the slow destination's rows come first in due order.
    events = [relay.receive(f"mixed-{n}") for n in range(3)]
    Delivery.objects.filter(destination__path="/slow").update(
        next_attempt_at=timezone.now() - timedelta(minutes=1)
    )
    started = time.time()

    deliveries_send(budget_seconds=DEADLINE + 0.5)

    fast = relay.receiver.received("/fast")
    assert len(fast) == 3
    # Right after the slow one's first deadline, not after one deadline per slow row.
    assert max(r.at for r in fast) - started <= DEADLINE + TOLERANCE
    slow = Delivery.objects.filter(destination__path="/slow", event__in=events)
    # One attempt in the first batch, one in the next within the budget; the third untried.
    assert sorted(slow.values_list("attempts", flat=True)) == [0, 1, 1]
    assert set(slow.values_list("status", flat=True)) == {"pending"}
    destination = TriggerDestination.objects.get(path="/slow")
    assert destination.slow_until is not None
    assert destination.slow_until > timezone.now()


def test_a_slow_destination_is_served_by_one_worker_at_a_time(relay: Relay) -> None:
    """Another worker's claim passes over a slow destination one worker already sends to, and
    takes the next team's delivery, although the slow one's backlog is older."""
    slow = relay.destination("/slow")
    relay.destination("/fast")
    relay.receiver.drip("/slow", DRIP_EVERY, DRIP_LENGTH)
    relay.receive("first")
    claimed = claim()
    [first_slow] = [d for d in claimed if d.destination_id == slow.pk]
    deliveries_release(deliveries=[d for d in claimed if d.pk != first_slow.pk])
    assert delivery_attempt(delivery=first_slow).timed_out  # now the destination is slow
    Delivery.objects.all().delete()
    for n in range(3):
        relay.receive(f"backlog-{n}")
    Delivery.objects.filter(destination=slow).update(
        next_attempt_at=timezone.now() - timedelta(minutes=1)
    )

    one_worker = claim(limit=1)
    other_worker = claim()

    assert [d.destination_id for d in one_worker] == [slow.pk]
    assert {d.destination.path for d in other_worker} == {"/fast"}
    assert len(other_worker) == 3
    # Once the first worker is done with it, the slow destination may be claimed again.
    deliveries_release(deliveries=one_worker)
    assert {d.destination_id for d in claim()} == {slow.pk}


@pytest.mark.django_db(transaction=True)
def test_two_workers_keep_serving_other_teams_while_one_destination_drips(
    require_postgres: None,
    triggers: Triggers,  # noqa: F811
    receiver: Receiver,
    settings: Any,
) -> None:
    settings.CONNECT_DELIVERY_TIMEOUT = DEADLINE
    settings.CONNECT_DELIVERY_BATCH = 2
    Environment.objects.filter(project=triggers.project).update(base_url=receiver.url)
    relay = Relay(triggers, triggers.make(ConnectorType.GITHUB, secret=SECRET), receiver)
    slow = relay.destination("/slow")
    receiver.drip("/slow", DRIP_EVERY, DRIP_LENGTH)
    for n in range(6):
        relay.receive(f"slow-{n}")
    relay.connector.destinations.update(enabled=False)
    fast = relay.destination("/fast")
    for n in range(3):
        relay.receive(f"fast-{n}")
    # The slow destination's backlog is older than everything the other team waits for.
    Delivery.objects.filter(destination=slow).update(
        next_attempt_at=timezone.now() - timedelta(minutes=1)
    )
    started = time.time()
    stop_at = time.monotonic() + 8  # less than one drip: unbounded, no worker would get free

    def work() -> None:
        try:
            while time.monotonic() < stop_at and len(receiver.received("/fast")) < 3:
                deliveries_send(budget_seconds=DEADLINE * 2)
        finally:
            connection.close()

    workers = [threading.Thread(target=work) for _ in range(2)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=30)

    got = receiver.received("/fast")
    assert len(got) == 3
    # Without the deadline and the fairness both workers sat on 10 s drips, six of them. With
    # them, one slow attempt each (two if both claim the slow one's rows again at once), and
    # slack for a loaded machine.
    assert max(r.at for r in got) - started <= 2 * DEADLINE + 3
    assert Delivery.objects.filter(destination=fast, status="succeeded").count() == 3


# --- Disabling ------------------------------------------------------------------------------------


@pytest.fixture
def member_client(client: Client, relay: Relay, make_member: Callable[..., User]) -> Client:
    client.force_login(make_member(relay.triggers.team, Role.MEMBER))
    return client


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (500, b"ok", "HTTP 500: ok"),
        (502, b"", "HTTP 502"),
        (404, b"  no such hook\n", "HTTP 404: no such hook"),
        (503, b"x" * 1000, "HTTP 503: " + "x" * 200),
    ],
    ids=["500 saying ok", "502 saying nothing", "404", "503 at length"],
)
def test_a_failed_answer_is_recorded_with_its_status_not_only_its_body(
    relay: Relay, member_client: Client, status: int, body: bytes, error: str
) -> None:
    """A receiver answering 500 "ok" showed "ok" in the admin's Error column."""
    relay.destination("/answers")
    relay.receiver.answer("/answers", (status, {}))
    relay.receiver.say("/answers", body)
    relay.receive("answered")
    [delivery] = claim()

    outcome = delivery_attempt(delivery=delivery)

    assert not outcome.succeeded
    [attempt] = DeliveryAttempt.objects.filter(delivery=delivery)
    assert (attempt.status_code, attempt.error) == (status, error)
    listing = member_client.get("/admin/connect/deliveryattempt/").content.decode()
    # Lists cut long values to fit 1280 px and keep the whole in a title: the status leads both.
    whole = f'<td class="field-error">{error}</td>'
    cut = f'<td class="field-error"><span title="{error}">HTTP {status}'
    assert whole in listing or (len(error) > 60 and cut in listing)


def test_a_network_error_is_recorded_as_it_was(relay: Relay) -> None:
    relay.destination("/away")
    relay.receive("unanswered")
    relay.receiver.down()
    [delivery] = claim()

    delivery_attempt(delivery=delivery)

    [attempt] = DeliveryAttempt.objects.filter(delivery=delivery)
    assert attempt.status_code is None
    assert attempt.error.startswith("ConnectionError: "), attempt.error


def test_a_destination_answering_410_is_disabled_and_gets_no_new_deliveries(
    relay: Relay, member_client: Client
) -> None:
    gone = relay.destination("/gone")
    relay.receiver.answer("/gone", (410, {}))
    relay.receive("first")
    waiting = relay.receive("waiting")
    [first] = claim(limit=1)

    outcome = delivery_attempt(delivery=first)

    assert outcome.status_code == 410
    first.refresh_from_db()
    assert (first.status, first.attempts) == ("failed", 1)
    gone.refresh_from_db()
    assert not gone.enabled
    assert gone.disabled_reason == DisabledReason.GONE
    assert gone.disabled_at is not None
    # What was still waiting for it fails with it (a member can replay it after re-enabling).
    assert Delivery.objects.get(event=waiting).status == "failed"
    [audit] = AuditEvent.objects.filter(type="destination.disabled")
    assert audit.fields["reason"] == "gone"
    assert audit.targets["destinationId"] == gone.public_id
    # A new event no longer fans out to it.
    relay.receive("after")
    assert not Delivery.objects.filter(event__provider_event_id="delivery-after").exists()

    html = member_client.get(f"/admin/connect/triggerdestination/{gone.pk}/change/")
    assert "The receiver answered 410 Gone" in html.content.decode()

    # Turned back on in the admin: the reason goes, new events reach it again.
    response = member_client.post(
        f"/admin/connect/triggerdestination/{gone.pk}/change/", {"enabled": "on"}
    )
    assert response.status_code == 302, response.content
    gone.refresh_from_db()
    assert (gone.enabled, gone.disabled_reason, gone.disabled_at) == (True, "", None)
    assert AuditEvent.objects.filter(type="destination.reenabled").count() == 1
    relay.receive("back")
    assert Delivery.objects.filter(event__provider_event_id="delivery-back").count() == 1


def test_a_destination_failing_every_attempt_for_five_days_is_disabled_with_an_audit_event(
    relay: Relay, member_client: Client
) -> None:
    failing = relay.destination("/failing")
    relay.receiver.answer("/failing", (500, {}))
    relay.receive("long")
    t0 = timezone.now()

    def attempt_at(moment: datetime) -> None:
        [delivery] = claim(now=moment)
        assert not delivery_attempt(delivery=delivery, now=moment).succeeded

    attempt_at(t0)
    attempt_at(t0 + timedelta(days=3))
    failing.refresh_from_db()
    assert failing.enabled
    assert failing.failing_since == t0

    attempt_at(t0 + timedelta(days=5, minutes=1))

    failing.refresh_from_db()
    assert not failing.enabled
    assert failing.disabled_reason == DisabledReason.FAILING
    [audit] = AuditEvent.objects.filter(type="destination.disabled")
    assert audit.fields["reason"] == "failing"
    assert audit.fields["failingSince"] == t0.isoformat()
    assert Delivery.objects.get().status == "failed"
    # The audit log in the admin shows it, and the destination says why it is off.
    listing = member_client.get("/admin/connect/auditevent/").content.decode()
    assert "destination.disabled" in listing
    detail = member_client.get(f"/admin/connect/auditevent/{audit.pk}/change/").content.decode()
    assert "failing" in detail
    page = member_client.get(f"/admin/connect/triggerdestination/{failing.pk}/change/")
    assert "Every attempt failed for 5 days" in page.content.decode()


def test_a_success_within_five_days_starts_the_count_again(relay: Relay) -> None:
    flaky = relay.destination("/flaky")
    relay.receiver.answer("/flaky", (500, {}), (200, {}), (500, {}))
    relay.receive("one")
    t0 = timezone.now()
    [delivery] = claim(now=t0)
    delivery_attempt(delivery=delivery, now=t0)  # 500
    [delivery] = claim(now=t0 + timedelta(days=2))
    delivery_attempt(delivery=delivery, now=t0 + timedelta(days=2))  # 200
    flaky.refresh_from_db()
    assert flaky.failing_since is None

    relay.receive("two")
    later = t0 + timedelta(days=5, minutes=1)
    [delivery] = claim(now=later)
    delivery_attempt(delivery=delivery, now=later)  # 500, but only the first since the success

    flaky.refresh_from_db()
    assert flaky.enabled
    assert flaky.failing_since == later
    assert not AuditEvent.objects.filter(type="destination.disabled").exists()


def test_a_retry_in_flight_when_its_destination_is_disabled_is_not_sent_later(
    relay: Relay,
) -> None:
    """Another worker had claimed it; its attempt fails and schedules a retry after the
    destination was disabled (by a 410 elsewhere, or five days): no retry goes out."""
    failing = relay.destination("/failing")
    relay.receiver.answer("/failing", (500, {}))
    relay.receive("in-flight")
    [in_flight] = claim()
    destinations.destination_disable(
        destination=failing, reason=DisabledReason.GONE, at=timezone.now()
    )
    assert not delivery_attempt(delivery=in_flight).succeeded  # a retry is scheduled

    later = timezone.now() + timedelta(hours=1)

    assert claim(now=later) == []
    in_flight.refresh_from_db()
    assert in_flight.status == "failed"
    assert len(relay.receiver.received("/failing")) == 1
