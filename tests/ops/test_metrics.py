"""``/metrics`` (issue 11, item 5): what every process counted, added up in one scrape, and what
the database says at scrape time; only for the holder of ``CONNECT_METRICS_TOKEN``.

The multiprocess tests run the app as production does: gunicorn with ``config/gunicorn.py`` and
two workers, a Celery worker on a private Redis, all sharing the test database.
"""

import json
import socket
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from django.test import Client
from django.utils import timezone

from connect.models import (
    Connector,
    Delivery,
    DeliveryAttempt,
    Grant,
    InboundEvent,
    Installation,
    TriggerDestination,
)
from connect.models.deliveries import DeliveryStatus
from connect.tasks import grant_refresh
from tests.api.conftest import Tenant
from tests.app_server import serving
from tests.ops.conftest import METRICS_TOKEN, parse, sample, scrape
from tests.triggers.processes import PrivateRedis, doorbell_via, wait_until, worker

APP = json.dumps({"subject": {"type": "app"}})
GUNICORN_CONFIG = ("-c", "config/gunicorn.py")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def web_env(tmp_path: Path, redis: PrivateRedis) -> dict[str, str]:
    return {
        "CONNECT_METRICS_DIR": str(tmp_path / "metrics"),
        "CONNECT_METRICS_TOKEN": METRICS_TOKEN,
        "REDIS_URL": redis.url,
    }


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_token_requests_through_every_gunicorn_worker_add_up_in_one_scrape(
    require_postgres: None,
    make_tenant: Callable[..., Tenant],
    private_redis: PrivateRedis,
    tmp_path: Path,
) -> None:
    tenant = make_tenant()
    env = web_env(tmp_path, private_redis)
    with serving(tmp_path, workers=2, threads=8, env=env, args=GUNICORN_CONFIG) as server:
        url = f"{server.url}/v1/connect/token/{quote(tenant.connector.uid, safe='')}"
        headers = {"Authorization": f"Bearer {tenant.token}", "Content-Type": "application/json"}
        # The first requests of each process come at once: the counters are made once.
        with ThreadPoolExecutor(16) as pool:
            burst = list(
                pool.map(
                    lambda _: requests.post(url, data=APP, headers=headers, timeout=30), range(16)
                )
            )
        assert [r.status_code for r in burst] == [200] * 16, [r.text for r in burst]
        answered = len(burst)
        while len(server.pids_that_answered(200)) < 2:
            response = requests.post(url, data=APP, headers=headers, timeout=10)
            assert response.status_code == 200, response.text
            answered += 1
            assert answered < 200, "one gunicorn worker answered every request"
        refused = requests.post(
            url, data=APP, headers={**headers, "Authorization": "Bearer nope"}, timeout=10
        )
        assert refused.status_code == 401

        samples = scrape(server.url)

    assert sample(samples, "connect_token_requests_total", outcome="ok") == answered
    assert sample(samples, "connect_token_requests_total", outcome="unauthorized") == 1
    assert sample(samples, "connect_token_request_seconds_count") == answered + 1
    assert sample(samples, "connect_token_request_seconds_bucket", le="+Inf") == answered + 1
    assert sample(samples, "connect_token_request_seconds_sum") > 0


def make_delivery(
    destination: TriggerDestination, status: str, *, next_attempt_at: Any, **kw: Any
) -> Delivery:
    event = InboundEvent.objects.create(
        connector=destination.connector, body=b"{}", provider_event_id=uuid.uuid4().hex
    )
    return Delivery.objects.create(
        event=event,
        destination=destination,
        status=status,
        next_attempt_at=next_attempt_at,
        **kw,
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_scrape_shows_the_workers_counts_and_the_outbox_as_the_database_has_it(
    require_postgres: None,
    make_tenant: Callable[..., Tenant],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
    make_grant: Callable[..., Grant],
    make_destination: Callable[..., TriggerDestination],
    private_redis: PrivateRedis,
    process_env: dict[str, str],
    tmp_path: Path,
) -> None:
    tenant = make_tenant()
    now = timezone.now()
    # A grant due for refresh at a provider that is down: the worker's refresh fails.
    oauth = make_connector(
        tenant.team,
        uid="oauth/down",
        type="oauth",
        client_id="client",
        secrets={"client_secret": "secret"},
        config={"tokenEndpoint": f"http://127.0.0.1:{closed_port()}/token"},
        default_scopes={"app": ["api"], "user": ["read"]},
    )
    make_link(oauth, tenant.project, ["production"])
    grant = make_grant(
        Installation.objects.get(connector=oauth),
        subject_type="user",
        subject_id="u-1",
        secrets={"access_token": "old", "refresh_token": "refresh"},
        access_expires_at=now - timedelta(minutes=1),
    )
    # The outbox: two due (the oldest 120 s), one later, one claimed, one over.
    destination = make_destination(tenant.connector, tenant.project)
    oldest = make_delivery(destination, "pending", next_attempt_at=now - timedelta(seconds=120))
    make_delivery(destination, "pending", next_attempt_at=now - timedelta(seconds=30))
    make_delivery(destination, "pending", next_attempt_at=now + timedelta(hours=1))
    claimed = make_delivery(
        destination, "delivering", next_attempt_at=now, lease_until=now + timedelta(minutes=1)
    )
    failed = make_delivery(destination, "failed", next_attempt_at=now)
    succeeded = make_delivery(destination, "succeeded", next_attempt_at=now)
    for delivery, code, ago in [
        (succeeded, 200, 10),
        (oldest, 503, 20),  # retrying
        (claimed, None, 30),  # no answer; under way again: retrying
        (failed, 410, 40),
        (failed, 500, 60 * 6),  # before the window
    ]:
        DeliveryAttempt.objects.create(
            delivery=delivery, status_code=code, started_at=now - timedelta(seconds=ago)
        )

    celery = worker(process_env, tmp_path / "worker.log", "metrics").start().wait_ready()
    try:
        with doorbell_via(private_redis.url):
            # Its last try (retries=max_retries): a retry after a jittered 0-30 s would count
            # a second failure, before or after the scrape.
            grant_refresh.apply_async((grant.pk,), retries=grant_refresh.max_retries)
        env = web_env(tmp_path, private_redis)
        with serving(tmp_path, workers=2, threads=2, env=env, args=GUNICORN_CONFIG) as server:
            samples: dict[Any, float] = {}

            def refreshed() -> bool:
                samples.update(scrape(server.url))
                return ("connect_refreshes_total", (("outcome", "unavailable"),)) in samples

            wait_until(refreshed, timeout=30, message=celery.tail)
            scraped_at = timezone.now()
    finally:
        celery.stop()

    # Counted in a Celery pool process, added up by the web's scrape.
    assert sample(samples, "connect_refreshes_total", outcome="unavailable") == 1
    assert (
        sample(samples, "connect_provider_errors_total", type="unavailable", connector_type="oauth")
        == 1
    )
    # Read from the database at scrape time.
    assert sample(samples, "connect_metrics_database_up") == 1
    pending = Delivery.objects.filter(status=DeliveryStatus.PENDING).count()
    delivering = Delivery.objects.filter(status=DeliveryStatus.DELIVERING).count()
    assert (pending, delivering) == (3, 1)
    assert sample(samples, "connect_outbox_depth", status="pending") == pending
    assert sample(samples, "connect_outbox_depth", status="delivering") == delivering
    age = sample(samples, "connect_outbox_oldest_due_age_seconds")
    assert 120 <= age <= (scraped_at - oldest.next_attempt_at).total_seconds()
    assert sample(samples, "connect_delivery_attempts_recent", outcome="succeeded") == 1
    assert sample(samples, "connect_delivery_attempts_recent", outcome="retrying") == 2
    assert sample(samples, "connect_delivery_attempts_recent", outcome="failed") == 1
    # The worker said it was alive; beat never ran.
    assert (
        sample(samples, "connect_last_seen_timestamp_seconds", process="worker") > now.timestamp()
    )
    assert sample(samples, "connect_last_seen_timestamp_seconds", process="beat") == 0


# The token ------------------------------------------------------------------------------------


def test_without_a_metrics_token_the_endpoint_does_not_exist(client: Client, settings: Any) -> None:
    settings.CONNECT_METRICS_TOKEN = ""

    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer ")

    assert response.status_code == 404
    assert b"connect_" not in response.content


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong", f"Basic {METRICS_TOKEN}", f"Bearer {METRICS_TOKEN}x"],
)
@pytest.mark.django_db
def test_metrics_refuse_a_missing_or_wrong_token(
    client: Client, settings: Any, authorization: str | None
) -> None:
    settings.CONNECT_METRICS_TOKEN = METRICS_TOKEN
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}

    response = client.get("/metrics", **headers)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"connect_" not in response.content


@pytest.mark.django_db
def test_metrics_answer_the_token_holder_in_prometheus_text(
    client: Client, settings: Any, make_tenant: Callable[..., Tenant]
) -> None:
    settings.CONNECT_METRICS_TOKEN = METRICS_TOKEN
    tenant = make_tenant()
    before = parse(
        client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}").content.decode()
    )
    path = f"/v1/connect/token/{quote(tenant.connector.uid, safe='')}"
    assert client.post(path, APP, "application/json", **tenant.auth).status_code == 200
    assert client.post(path, "{", "application/json", **tenant.auth).status_code == 400

    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")

    assert response.status_code == 200
    after = parse(response.content.decode())

    def grew(outcome: str) -> float:
        key = ("connect_token_requests_total", (("outcome", outcome),))
        return after[key] - before.get(key, 0)

    assert grew("ok") == 1
    assert grew("invalid_request") == 1
    assert sample(after, "connect_outbox_depth", status="pending") == 0
