"""``GET /v1/health`` (issue 11, item 5): the plain probe stays the constant answer it was; the
deep one checks the database, Redis, and that a worker and beat were seen in the last minute,
naming what failed. Both, and ``/metrics``, reach a scraper on an internal address.

The worker and beat are real Celery processes on a private Redis, writing their heartbeats to
the test database; the health view is asked in-process, on the same database.
"""

import json
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from connect.models import Delivery, Heartbeat, InboundEvent, TriggerDestination
from tests.ops.conftest import METRICS_TOKEN
from tests.security.test_production_mode import check_deploy
from tests.triggers.processes import beat, wait_until, worker


def deep(client: Client) -> tuple[int, dict[str, Any]]:
    response = client.get("/v1/health?deep=1")
    assert response["Content-Type"] == "application/json"
    return response.status_code, json.loads(response.content)


def test_the_plain_probe_and_the_benchmark_floor_stay_constant(client: Client) -> None:
    for path in ("/v1/health", "/v1/health?deep=0", "/v1/floor"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert json.loads(response.content) == {"ok": True}, path


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_deep_health_names_the_missing_process_and_is_green_with_both(
    require_postgres: None, client: Client, process_env: dict[str, str], tmp_path: Path
) -> None:
    beat_process = beat(process_env, tmp_path / "beat.log", tmp_path / "schedule").start()
    celery = worker(process_env, tmp_path / "worker.log", "health")
    try:
        wait_until(
            lambda: Heartbeat.objects.filter(process="beat").exists(),
            timeout=30,
            message=beat_process.tail,
        )
        status, body = deep(client)
        assert status == 503
        assert body["failed"] == ["worker"]
        assert body["checks"]["worker"] == {"ok": False, "detail": "never seen"}
        assert body["checks"]["beat"]["ok"] is True
        assert body["checks"]["database"] == {"ok": True}
        assert body["checks"]["redis"] == {"ok": True}

        celery.start().wait_ready()
        wait_until(lambda: deep(client)[0] == 200, timeout=30, message=celery.tail)
        status, body = deep(client)
        assert body["ok"] is True
        assert body["failed"] == []
        assert set(body["checks"]) == {"database", "redis", "worker", "beat"}

        # Beat dies; a minute later (its last heartbeat moved back by one) it is named.
        beat_process.stop()
        Heartbeat.objects.filter(process="beat").update(
            seen_at=timezone.now() - timedelta(seconds=61)
        )
        status, body = deep(client)
        assert status == 503
        assert body["failed"] == ["beat"]
        assert body["checks"]["beat"]["detail"] == "not seen for 61 s"
        assert body["checks"]["worker"]["ok"] is True
    finally:
        celery.stop()
        beat_process.stop()


@pytest.mark.django_db
def test_deep_health_names_an_unreachable_redis(client: Client, settings: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the check runs
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    now = timezone.now()
    for process in ("worker", "beat"):
        Heartbeat.objects.create(process=process, seen_at=now, seen_by="test")

    status, body = deep(client)

    assert status == 503
    assert body["failed"] == ["redis"]
    assert body["checks"]["redis"] == {"ok": False, "detail": "unreachable"}
    assert str(port) not in json.dumps(body), "no address in the answer; it is in the log"


# The sweeper and Celery's own lines ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_celery_logs_no_routine_lines_but_a_sweep_that_rang(
    require_postgres: None,
    make_team: Any,
    make_project: Any,
    make_connector: Any,
    make_destination: Any,
    process_env: dict[str, str],
    tmp_path: Path,
) -> None:
    team = make_team()
    destination: TriggerDestination = make_destination(make_connector(team), make_project(team))
    event = InboundEvent.objects.create(connector=destination.connector, body=b"{}")
    # Due, to a closed port (the fixture's base URL): every doorbell fails it, it comes due again.
    Delivery.objects.create(event=event, destination=destination)
    env = {**process_env, "CONNECT_DELIVERY_SCHEDULE": "0,1,1,1,1,1,1,1,1,1"}
    beat_process = beat(env, tmp_path / "beat.log", tmp_path / "schedule").start()
    celery = worker(env, tmp_path / "worker.log", "quiet").start()
    try:
        celery.wait_ready()
        beat_process.wait_ready()
        wait_until(
            lambda: celery.output().count("doorbells rung") >= 2, timeout=30, message=celery.tail
        )
    finally:
        celery.stop()
        beat_process.stop()

    worker_log, beat_log = celery.output(), beat_process.output()
    assert "INFO connect.tasks [-] sweep: 1 deliveries due, 1 doorbells rung" in worker_log
    for routine in ("] received", "] succeeded in"):
        assert routine not in worker_log, worker_log
    assert "Sending due task" not in beat_log, beat_log
    assert "beat: Starting..." in beat_log


# Reachable by an internal scraper -------------------------------------------------------------


@pytest.fixture
def internal(settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["connect.example.com"]
    settings.CONNECT_INTERNAL_HOSTS = ["10.0.0.5"]
    settings.CONNECT_METRICS_TOKEN = METRICS_TOKEN


@pytest.mark.django_db
def test_an_internal_address_reaches_metrics_and_health(internal: None) -> None:
    client = Client(HTTP_HOST="10.0.0.5:8000")

    metrics = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    health = client.get("/v1/health")

    assert metrics.status_code == 200
    assert b"connect_outbox_depth" in metrics.content
    assert health.status_code == 200
    assert json.loads(health.content) == {"ok": True}
    assert health["X-Request-Id"]
    assert deep(client)[1]["checks"]["database"] == {"ok": True}
    # Still the token's to open.
    assert client.get("/metrics").status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/admin/login/", "/accounts/login/", "/v1/connect/result/x"])
def test_an_internal_address_reaches_nothing_else(internal: None, path: str) -> None:
    response = Client(HTTP_HOST="10.0.0.5:8000").get(path)

    assert response.status_code == 400


@pytest.mark.django_db
def test_an_address_that_is_not_internal_is_refused_everywhere(internal: None) -> None:
    client = Client(HTTP_HOST="10.0.0.6:8000")

    assert client.get("/v1/health").status_code == 400
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}").status_code == 400


def https_setting(name: str) -> Any:
    """A setting as config/settings.py makes it behind an https PUBLIC_URL."""
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "PUBLIC_URL": "https://connect.example.com",
        "PATH": "/usr/bin:/bin",
    }
    code = (
        "import django, json; django.setup(); from django.conf import settings; "
        f"print(json.dumps(settings.{name}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.django_db
def test_metrics_and_health_are_not_redirected_to_https(settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = https_setting("SECURE_SSL_REDIRECT")
    settings.SECURE_REDIRECT_EXEMPT = https_setting("SECURE_REDIRECT_EXEMPT")
    settings.CONNECT_METRICS_TOKEN = METRICS_TOKEN
    client = Client()

    assert client.get("/admin/login/").status_code == 301  # the rest of the site is
    assert client.get("/v1/health").status_code == 200
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}").status_code == 200


def test_check_deploy_stays_clean_with_internal_hosts_and_a_metrics_token(tmp_path: Path) -> None:
    result = check_deploy(
        tmp_path,
        CONNECT_INTERNAL_HOSTS="10.0.0.5,10.0.0.6",
        CONNECT_METRICS_TOKEN="m" * 8 + "x" * 40,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."


def test_production_refuses_a_short_metrics_token(tmp_path: Path) -> None:
    result = check_deploy(tmp_path, CONNECT_METRICS_TOKEN="short")

    assert result.returncode != 0
    assert "CONNECT_METRICS_TOKEN is too short" in result.stderr.strip().splitlines()[-1]
