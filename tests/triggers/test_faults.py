"""Faults with real components: 1,000 Slack events forwarded by Celery workers on a private Redis
while a worker is SIGKILLed mid-delivery and replaced, Redis is flushed and restarted (every
queued doorbell lost), and the receiver refuses connections for a while. Beat's sweeper and the
leases in PostgreSQL must still bring every event to the receiver: at least once, none lost.

And a poison delivery, one whose every attempt dies with its worker: the attempts counter in
the row, not the broker, must end it, and it must not take its neighbours down with it.
"""

import hashlib
import hmac
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db.models import Q

from connect import tasks
from connect.models import (
    Connector,
    ConnectorType,
    Delivery,
    DeliveryAttempt,
    Environment,
    InboundEvent,
    Project,
    Team,
    TriggerDestination,
)
from connect.services.triggers import trigger_receive
from tests.triggers.processes import (
    CeleryProcess,
    PrivateRedis,
    beat,
    celery_env,
    doorbell_via,
    wait_until,
    worker,
)
from tests.triggers.receiver import Receiver

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EVENTS = 1000
SLACK_SECRET = "e2c5a0f1d4b3968778695a4b3c2d1e0f"
# Long enough in total (~60 s) to outlast the receiver's outage; each retry waits for a doorbell.
SCHEDULE = "0,0.5,1,2,4,8,16,32"
DRAIN_SECONDS = 120


@pytest.fixture
def private_redis(require_postgres: None, tmp_path: Path) -> Iterator[PrivateRedis]:
    with PrivateRedis(tmp_path) as server, doorbell_via(server.url):
        yield server


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        server.delay = 0.01  # slow enough that a SIGKILL finds deliveries in flight
        yield server


@pytest.fixture
def connector(
    receiver: Receiver,
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_destination: Callable[..., TriggerDestination],
) -> Connector:
    team = make_team()
    project = make_project(team, "app")
    Environment.objects.filter(project=project).update(base_url=receiver.url)
    connector = make_connector(
        team,
        "slack/chaos",
        ConnectorType.SLACK,
        secrets={"trigger_signing_secret": SLACK_SECRET},
        triggers_enabled=True,
    )
    make_destination(connector, project, "production", "/slack/events")
    return connector


def receive(connector: Connector, number: int) -> None:
    body = (
        '{"type":"event_callback","team_id":"T1","event":{"type":"message","text":"n'
        f'{number}"}},"event_id":"Ev{number:06d}"}}'
    ).encode()
    timestamp = str(int(time.time()))
    digest = hmac.new(
        SLACK_SECRET.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256
    ).hexdigest()
    reply = trigger_receive(
        connector_id=connector.public_id,
        headers={"x-slack-request-timestamp": timestamp, "x-slack-signature": f"v0={digest}"},
        query={},
        body=body,
        content_type="application/json",
    )
    assert reply.status == 200, reply.body


def in_flight() -> set[int]:
    return set(
        Delivery.objects.filter(status=Delivery.Status.DELIVERING).values_list("pk", flat=True)
    )


def test_a_thousand_events_survive_a_killed_worker_a_flushed_redis_and_a_receiver_outage(
    private_redis: PrivateRedis, receiver: Receiver, connector: Connector, tmp_path: Path
) -> None:
    env = celery_env(
        redis_url=private_redis.url,
        schedule=SCHEDULE,
        # A dead worker's rows come back after the lease; it must outlast one HTTP timeout.
        CONNECT_DELIVERY_LEASE="6",
        CONNECT_DELIVERY_TIMEOUT="2",
        # Kept in the chain budget + deadline < soft limit < hard limit < lease.
        CONNECT_DELIVERY_BUDGET="2",
        CONNECT_DELIVERY_SOFT_TIME_LIMIT="4.5",
        CONNECT_DELIVERY_TIME_LIMIT="5",
    )
    first = worker(env, tmp_path / "worker-1.log", "first")
    second = worker(env, tmp_path / "worker-2.log", "second")
    sweeper = beat(env, tmp_path / "beat.log", tmp_path / "beat-schedule")
    processes: list[CeleryProcess] = [first, second, sweeper]

    def logs() -> str:
        return "\n".join(f"--- {p.log.name}\n{p.tail(15)}" for p in processes)

    def supervise() -> None:
        for process in processes:
            process.revive()

    try:
        first.start().wait_ready()
        sweeper.start().wait_ready()
        receiver.delay = 0.05  # slower than intake: a backlog builds, workers hold full batches
        abandoned: set[int] = set()
        for number in range(EVENTS):
            receive(connector, number)
            if number == 300:
                wait_until(lambda: len(in_flight()) >= 10, timeout=30, message=logs)
                first.kill()  # SIGKILL to the whole group: parent and pool children
                abandoned = in_flight()
                second.start()
                receiver.delay = 0.005
            elif number == 600:
                private_redis.flush_and_restart()
            elif number == 850:
                receiver.down()
        # The outage lasts until every delivery still owed has failed at least once and waits in
        # its row for a retry. Then Redis loses its doorbells again and the receiver comes back:
        # from here on only beat's sweeper rings for those rows.
        wait_until(
            lambda: (
                not Delivery.objects.filter(
                    Q(status=Delivery.Status.DELIVERING)
                    | Q(status=Delivery.Status.PENDING, attempts=0)
                ).exists()
            ),
            timeout=60,
            interval=0.5,
            every=supervise,
            message=logs,
        )
        private_redis.flush_and_restart()
        waiting = Delivery.objects.filter(status=Delivery.Status.PENDING).count()
        receiver.up()

        wait_until(
            lambda: not Delivery.objects.exclude(status=Delivery.Status.SUCCEEDED).exists(),
            timeout=DRAIN_SECONDS,
            interval=0.5,
            every=supervise,
            message=lambda: (
                f"{Delivery.objects.exclude(status='succeeded').count()} not delivered\n{logs()}"
            ),
        )
    finally:
        for process in processes:
            process.kill()

    assert InboundEvent.objects.count() == EVENTS
    webhook_ids = set(Delivery.objects.values_list("webhook_id", flat=True))
    assert len(webhook_ids) == EVENTS
    assert set(Delivery.objects.values_list("status", flat=True)) == {"succeeded"}
    # At least once: the receiver saw every message (some maybe twice, never a foreign one).
    assert receiver.webhook_ids() == webhook_ids
    # The faults were real: the kill left deliveries mid-flight, and the outage cost attempts.
    assert abandoned, "the SIGKILL found no delivery in flight"
    assert all(
        attempts >= 2
        for attempts in Delivery.objects.filter(pk__in=abandoned).values_list("attempts", flat=True)
    )
    assert waiting > 0, "the outage left no delivery waiting for a retry"
    assert DeliveryAttempt.objects.filter(
        status_code__isnull=True, error__startswith="ConnectionError"
    ).exists()


def test_a_delivery_that_kills_its_worker_every_time_fails_after_the_schedule(
    private_redis: PrivateRedis,
    receiver: Receiver,
    connector: Connector,
    make_destination: Callable[..., TriggerDestination],
    tmp_path: Path,
) -> None:
    poison = TriggerDestination.objects.get(connector=connector)
    healthy = make_destination(connector, poison.project, "production", "/fine")
    receiver.slow(poison.path, 30)  # the test kills the worker while it waits for this answer
    env = celery_env(
        redis_url=private_redis.url,
        schedule="0,0.5,0.5",
        CONNECT_DELIVERY_LEASE="4",
        CONNECT_DELIVERY_TIMEOUT="2",
        # Kept in the chain budget + deadline < soft limit < hard limit < lease.
        CONNECT_DELIVERY_BUDGET="0.5",
        CONNECT_DELIVERY_SOFT_TIME_LIMIT="3",
        CONNECT_DELIVERY_TIME_LIMIT="3.5",
    )
    receive(connector, 1)

    def states() -> str:
        rows = Delivery.objects.values_list("destination__path", "status", "attempts")
        return f"deliveries: {sorted(rows)}; received: {[r.path for r in receiver.received()]}"

    def poison_failed() -> bool:
        return Delivery.objects.filter(destination=poison, status="failed").exists()

    # One pool process: killing the worker kills the poison's sender and no one else's.
    workers: list[CeleryProcess] = []
    try:
        for round in range(1, 7):
            workers.append(worker(env, tmp_path / f"worker-{round}.log", f"w{round}", 1))
            workers[-1].start().wait_ready()
            seen = len(receiver.received(poison.path))
            wait_until(
                lambda seen=seen: len(receiver.received(poison.path)) > seen or poison_failed(),
                timeout=30,
                interval=0.05,
                every=tasks.deliveries_sweep,
                message=lambda: f"{states()}\n{workers[-1].tail()}",
            )
            if poison_failed():
                break
            workers[-1].kill()  # every attempt at the poison delivery dies with its worker
        wait_until(
            lambda: Delivery.objects.filter(destination=healthy, status="succeeded").exists(),
            timeout=30,
            interval=0.2,
            every=tasks.deliveries_sweep,
            message=lambda: f"{states()}\n{workers[-1].tail()}",
        )
    finally:
        for process in workers:
            process.kill()

    # The counter in the row ended it: three attempts, the schedule's length, then failed.
    dead = Delivery.objects.get(destination=poison)
    assert (dead.status, dead.attempts) == ("failed", 3)
    assert len(receiver.received(poison.path)) == 3
    # Its neighbour in the same event lost at most the one attempt they shared, then went alone.
    fine = Delivery.objects.get(destination=healthy)
    assert fine.status == "succeeded"
    assert fine.attempts <= 2
    assert len(receiver.received("/fine")) == 1
