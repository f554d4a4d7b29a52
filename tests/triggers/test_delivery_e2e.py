"""End to end with real components: a Slack-signed webhook posted over HTTP, a real Celery
worker on a private Redis, PostgreSQL, and a deployment on loopback that verifies what it gets
the way the README tells receivers to (PyJWT against our JWKS, the ``standardwebhooks`` library).

Retries run on a compressed schedule; the test rings the sweeper itself between polls.
"""

import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from django.conf import settings
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from connect import tasks
from connect.models import (
    Connector,
    ConnectorType,
    Delivery,
    DeliveryAttempt,
    Environment,
    Project,
    Team,
    TriggerDestination,
)
from connect.services.deliveries import deliveries_due
from connect.services.destinations import destination_rotate_secret
from tests.fixtures import webhook
from tests.triggers.processes import (
    CeleryProcess,
    PrivateRedis,
    celery_env,
    doorbell_via,
    wait_until,
    worker,
)
from tests.triggers.receiver import Received, Receiver

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SCHEDULE = [0, 0.5, 1, 1, 1, 1, 1, 1]
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CONTENT_TYPE = "application/json; charset=utf-8"


@pytest.fixture
def private_redis(require_postgres: None, tmp_path: Path) -> Iterator[PrivateRedis]:
    with PrivateRedis(tmp_path) as server:
        yield server


@pytest.fixture
def doorbell(private_redis: PrivateRedis) -> Iterator[None]:
    """Point this process's Celery producer (the web side) at the private Redis."""
    with doorbell_via(private_redis.url):
        yield


@pytest.fixture
def start_worker(
    private_redis: PrivateRedis, doorbell: None, tmp_path: Path
) -> Iterator[Callable[..., CeleryProcess]]:
    started: list[CeleryProcess] = []

    def start(**settings: str) -> CeleryProcess:
        env = celery_env(
            redis_url=private_redis.url, schedule=",".join(map(str, SCHEDULE)), **settings
        )
        process = worker(env, tmp_path / f"worker-{len(started)}.log", f"e2e{len(started)}")
        started.append(process)
        return process.start().wait_ready()

    try:
        yield start
    finally:
        for process in started:
            process.kill()  # the test is over: no warm shutdown to wait for


@pytest.fixture
def celery_worker(start_worker: Callable[..., CeleryProcess]) -> CeleryProcess:
    return start_worker()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


@pytest.fixture
def slack_connector(
    make_team: Callable[..., Team], make_connector: Callable[..., Connector]
) -> Connector:
    return make_connector(
        make_team(),
        "slack/acme",
        ConnectorType.SLACK,
        secrets={"trigger_signing_secret": SLACK_SECRET},
        client_id="1234.5678",
        triggers_enabled=True,
    )


@pytest.fixture
def destination_at(
    receiver: Receiver,
    slack_connector: Connector,
    make_project: Callable[..., Project],
    make_destination: Callable[..., TriggerDestination],
) -> Callable[..., TriggerDestination]:
    """A destination of the Slack connector in a project of its own, at the receiver."""

    def make(path: str, environment: str = "production", base_path: str = "") -> TriggerDestination:
        project = make_project(
            slack_connector.team,
            f"app-{Project.objects.count() + 1}",
            environments=(environment,),
        )
        Environment.objects.filter(project=project).update(base_url=receiver.url + base_path)
        return make_destination(slack_connector, project, environment, path)

    return make


def slack_body(event_id: str, event_type: str = "app_mention") -> bytes:
    """Slack's recorded event, with odd spacing and raw non-ASCII text: the bytes must arrive
    exactly as sent."""
    changes = {"event_id": event_id, "event.type": event_type, "event.text": "Grüße — ✓ deploy"}
    payload = webhook("slack", "app_mention", changes)
    return json.dumps(payload, separators=(",", ":  "), ensure_ascii=False).encode()


def post_slack(live_server: Any, connector: Connector, body: bytes) -> str:
    timestamp = str(int(time.time()))
    digest = hmac.new(
        SLACK_SECRET.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256
    ).hexdigest()
    response = requests.post(
        f"{live_server.url}/connect/trigger/{connector.public_id}",
        data=body,
        headers={
            "Content-Type": CONTENT_TYPE,
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": f"v0={digest}",
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def settle(event_id: str, worker_process: CeleryProcess, *, timeout: float = 30) -> list[Delivery]:
    """Ring the sweeper until no delivery of the event is pending or in flight."""

    def done() -> bool:
        return not Delivery.objects.filter(
            event__public_id=event_id,
            status__in=[Delivery.Status.PENDING, Delivery.Status.DELIVERING],
        ).exists()

    wait_until(
        done,
        timeout=timeout,
        interval=0.2,
        every=tasks.deliveries_sweep,
        message=lambda: "\n" + worker_process.tail(),
    )
    return list(
        Delivery.objects.filter(event__public_id=event_id)
        .select_related("destination")
        .order_by("destination__path")
    )


def origin(url: str) -> str:
    return url.rstrip("/")


def verify_bearer(received: Received, jwks: jwt.PyJWKClient, audience: str) -> dict[str, Any]:
    token = received.headers["authorization"].removeprefix("Bearer ")
    key = jwks.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        key.key,
        algorithms=["RS256"],
        audience=audience,
        issuer=settings.PUBLIC_URL,
        options={"require": ["exp", "iat", "aud", "iss", "sub"]},
    )


def test_a_slack_event_reaches_every_destination_exactly_as_sent_and_provably_genuine(
    live_server: Any,
    celery_worker: CeleryProcess,
    receiver: Receiver,
    slack_connector: Connector,
    destination_at: Callable[..., TriggerDestination],
) -> None:
    shop = destination_at("/api/slack/events", "production", base_path="/shop")
    blog = destination_at("/hooks/slack", "staging")
    disabled = destination_at("/disabled", "preview")
    TriggerDestination.objects.filter(pk=disabled.pk).update(enabled=False)
    body = slack_body("Ev0PV52K21")

    event_id = post_slack(live_server, slack_connector, body)

    deliveries = settle(event_id, celery_worker)
    assert {(d.destination_id, d.status, d.attempts) for d in deliveries} == {
        (shop.pk, "succeeded", 1),
        (blog.pk, "succeeded", 1),
    }
    got = {r.path: r for r in receiver.received()}
    assert sorted(got) == ["/hooks/slack", "/shop/api/slack/events"]
    jwks = jwt.PyJWKClient(f"{live_server.url}/.well-known/jwks.json", cache_keys=False)
    for destination, path in ((shop, "/shop/api/slack/events"), (blog, "/hooks/slack")):
        received = got[path]
        delivery = next(d for d in deliveries if d.destination_id == destination.pk)
        assert received.body == body
        assert received.headers["content-type"] == CONTENT_TYPE
        claims = verify_bearer(received, jwks, audience=origin(receiver.url))
        project = destination.project
        assert claims["project_id"] == project.public_id
        assert claims["environment"] == destination.environment.slug
        assert claims["owner_id"] == slack_connector.team.public_id
        assert claims["connector_id"] == slack_connector.public_id
        assert 0 < claims["exp"] - claims["iat"] <= 300
        assert received.headers["webhook-id"] == delivery.webhook_id
        assert len(received.headers["webhook-signature"].split(" ")) == 1
        Webhook(destination.reveal("signing_secret")).verify(received.body, received.headers)
    # Each destination has its own secret: one's signature does not pass for the other.
    with pytest.raises(WebhookVerificationError):
        Webhook(shop.reveal("signing_secret")).verify(body, got["/hooks/slack"].headers)
    # And the token is for that origin only.
    with pytest.raises(jwt.InvalidAudienceError):
        verify_bearer(got["/hooks/slack"], jwks, audience="http://127.0.0.1:1")


def test_a_receiver_answering_400_gets_exactly_one_attempt(
    live_server: Any,
    celery_worker: CeleryProcess,
    receiver: Receiver,
    slack_connector: Connector,
    destination_at: Callable[..., TriggerDestination],
) -> None:
    destination_at("/rejects")
    receiver.answer("/rejects", (400, {}))

    event_id = post_slack(live_server, slack_connector, slack_body("Ev400"))

    [delivery] = settle(event_id, celery_worker)
    # Nothing is due again, not even once the whole schedule has gone by: no sweep sends it.
    assert deliveries_due(now=timezone.now() + timedelta(seconds=sum(SCHEDULE) + 1)) == 0
    assert tasks.deliveries_sweep() == 0
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 1, 400)
    assert [a.status_code for a in DeliveryAttempt.objects.filter(delivery=delivery)] == [400]
    assert len(receiver.received("/rejects")) == 1


def test_a_receiver_answering_500_is_retried_on_the_schedule_then_failed(
    live_server: Any,
    celery_worker: CeleryProcess,
    receiver: Receiver,
    slack_connector: Connector,
    destination_at: Callable[..., TriggerDestination],
) -> None:
    destination = destination_at("/broken")
    receiver.answer("/broken", (500, {}))

    event_id = post_slack(live_server, slack_connector, slack_body("Ev500"))

    [delivery] = settle(event_id, celery_worker, timeout=60)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        "failed",
        len(SCHEDULE),
        500,
    )
    attempts = DeliveryAttempt.objects.filter(delivery=delivery).order_by("started_at")
    assert [a.status_code for a in attempts] == [500] * len(SCHEDULE)
    got = receiver.received("/broken")
    assert len(got) == len(SCHEDULE)
    # The same message every time (stable id), freshly signed.
    assert {r.headers["webhook-id"] for r in got} == {delivery.webhook_id}
    for received in got:
        Webhook(destination.reveal("signing_secret")).verify(received.body, received.headers)
    # Attempt n+1 waits SCHEDULE[n] (±10 % jitter), and not much longer: the sweeper rings at 5 Hz.
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(got)]
    for step, gap in enumerate(gaps, start=1):
        assert SCHEDULE[step] * 0.9 <= gap <= SCHEDULE[step] * 1.1 + 2.0, (step, gaps)


def test_retry_after_delays_the_next_attempt(
    live_server: Any,
    celery_worker: CeleryProcess,
    receiver: Receiver,
    slack_connector: Connector,
    destination_at: Callable[..., TriggerDestination],
) -> None:
    destination_at("/busy")
    receiver.answer("/busy", (429, {"Retry-After": "2"}), (200, {}))

    event_id = post_slack(live_server, slack_connector, slack_body("Ev429"))

    [delivery] = settle(event_id, celery_worker)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 2, 200)
    attempts = DeliveryAttempt.objects.filter(delivery=delivery).order_by("started_at")
    assert [a.status_code for a in attempts] == [429, 200]
    first, second = receiver.received("/busy")
    # The schedule alone would retry after 0.5 s; the receiver asked for 2.
    assert second.at - first.at >= 2.0


def test_retry_after_as_a_date_without_a_zone_delays_the_next_attempt(
    live_server: Any,
    celery_worker: CeleryProcess,
    receiver: Receiver,
    slack_connector: Connector,
    destination_at: Callable[..., TriggerDestination],
) -> None:
    destination_at("/busy")
    # RFC 5322's "-0000" (no zone given) parses to a naive datetime.
    later = format_datetime(datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=3))
    assert later.endswith("-0000")
    receiver.answer("/busy", (503, {"Retry-After": later}), (200, {}))

    event_id = post_slack(live_server, slack_connector, slack_body("Ev503"))

    [delivery] = settle(event_id, celery_worker)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 2, 200)
    first, second = receiver.received("/busy")
    assert second.at - first.at >= 2.0  # the date has whole seconds


def test_during_a_secret_rotation_both_secrets_verify(
    live_server: Any,
    celery_worker: CeleryProcess,
    receiver: Receiver,
    slack_connector: Connector,
    destination_at: Callable[..., TriggerDestination],
) -> None:
    rotating = destination_at("/rotating")
    old_secret = rotating.reveal("signing_secret")
    new_secret = destination_rotate_secret(destination=rotating, actor="test")
    finished = destination_at("/finished")
    finished_old = finished.reveal("signing_secret")
    finished_new = destination_rotate_secret(
        destination=finished, actor="test", overlap=timedelta(0)
    )
    assert new_secret != old_secret
    assert finished_new != finished_old

    event_id = post_slack(live_server, slack_connector, slack_body("EvRotate"))

    settle(event_id, celery_worker)
    [during] = receiver.received("/rotating")
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    for secret in (old_secret, new_secret):
        Webhook(secret).verify(during.body, during.headers)
    # Once the overlap is over, only the new secret signs.
    [after] = receiver.received("/finished")
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    Webhook(finished_new).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(finished_old).verify(after.body, after.headers)


def test_a_slow_receiver_gets_each_message_once_though_a_batch_outlasts_its_lease(
    live_server: Any,
    start_worker: Callable[..., CeleryProcess],
    receiver: Receiver,
    slack_connector: Connector,
    destination_at: Callable[..., TriggerDestination],
) -> None:
    destination_at("/slow")
    receiver.delay = 0.4  # within the timeout, but twelve in a row outlast the lease
    events = [post_slack(live_server, slack_connector, slack_body(f"EvSlow{n}")) for n in range(12)]
    # Started after the intake, so the first doorbell finds all twelve and claims one batch.
    process = start_worker(
        CONNECT_DELIVERY_LEASE="3",
        CONNECT_DELIVERY_TIMEOUT="1",
        # Kept in the chain budget + deadline < soft limit < hard limit < lease.
        CONNECT_DELIVERY_BUDGET="0.5",
        CONNECT_DELIVERY_SOFT_TIME_LIMIT="2",
        CONNECT_DELIVERY_TIME_LIMIT="2.5",
    )

    for event_id in events:
        settle(event_id, process)

    deliveries = Delivery.objects.all()
    assert {(d.status, d.attempts) for d in deliveries} == {("succeeded", 1)}
    assert DeliveryAttempt.objects.count() == 12
    got = [r.headers["webhook-id"] for r in receiver.received("/slow")]
    assert sorted(got) == sorted(d.webhook_id for d in deliveries)


def test_an_event_type_no_header_can_carry_is_escaped_not_a_reason_to_fail(
    live_server: Any,
    celery_worker: CeleryProcess,
    receiver: Receiver,
    slack_connector: Connector,
    destination_at: Callable[..., TriggerDestination],
) -> None:
    destination_at("/types")
    body = slack_body("EvType", event_type="réaction_✓\nadded")
    event_id = post_slack(live_server, slack_connector, body)

    [delivery] = settle(event_id, celery_worker)
    assert (delivery.status, delivery.attempts) == ("succeeded", 1)
    [received] = receiver.received("/types")
    assert received.body == body
    assert received.headers["x-connect-event-type"] == "r%C3%A9action_%E2%9C%93%0Aadded"
