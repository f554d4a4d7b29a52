"""Log lines (issue 11, items 4 and 5): each carries its request's id, in plain text or as one
JSON object per line (``LOG_FORMAT=json``); redaction holds in both; the sweeper speaks only
when it rang, and Celery's routine lines are DEBUG lines while failures and retries are not."""

import io
import json
import logging
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from celery.app.trace import LOG_FAILURE, LOG_RECEIVED, LOG_RETRY, LOG_SUCCESS
from django.test import Client
from django.utils import timezone

from connect.models import Connector, Delivery, InboundEvent, Project, Team, TriggerDestination
from connect.tasks import deliveries_sweep
from tests.app_server import serving
from tests.triggers.processes import PrivateRedis, doorbell_via, wait_until

VERIFIER = "scv_" + secrets.token_urlsafe(32)
CODE = "code-" + secrets.token_urlsafe(16)
JSON_FIELDS = {"timestamp", "level", "logger", "message", "request_id"}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_json_lines_parse_carry_the_request_id_and_no_secret(
    require_postgres: None, tmp_path: Path
) -> None:
    env = {"LOG_FORMAT": "json", "CONNECT_METRICS_DIR": str(tmp_path / "metrics")}
    args = ("-c", "config/gunicorn.py", "--capture-output")
    with serving(tmp_path, workers=1, threads=1, env=env, args=args) as server:
        polled = requests.get(
            f"{server.url}/v1/connect/result/{VERIFIER}",
            headers={"X-Request-Id": "poll-1"},
            timeout=10,
        )
        called_back = requests.get(f"{server.url}/connect/callback?code={CODE}&state=s", timeout=10)
        error_log = tmp_path / "error.log"
        wait_until(lambda: "Unauthorized" in error_log.read_text(), timeout=10)
        wait_until(lambda: "callback" in (tmp_path / "access.log").read_text(), timeout=10)
        written = error_log.read_text() + (tmp_path / "access.log").read_text()

    assert polled.status_code == 401
    assert polled.headers["X-Request-Id"] == "poll-1"
    lines = [json.loads(line) for line in written.splitlines() if line.strip()]
    assert all(set(line) >= JSON_FIELDS for line in lines), lines
    assert any(line["logger"] == "gunicorn.error" for line in lines)  # gunicorn's own, too
    (warning,) = [
        line for line in lines if line["logger"] == "django.request" and "result" in line["message"]
    ]
    assert warning == {
        **warning,
        "level": "WARNING",
        "message": "Unauthorized: /v1/connect/result/[redacted]",
        "request_id": "poll-1",
    }
    (access,) = [
        line
        for line in lines
        if line["logger"] == "gunicorn.access" and "/v1/connect/result/" in line["message"]
    ]
    assert access["logger"] == "gunicorn.access"
    assert access["request_id"] == "poll-1"
    # A request without an id of its own gets a fresh one, on its lines and in its answer.
    callback = [line for line in lines if "/connect/callback" in line["message"]]
    assert {line["logger"] for line in callback} == {"django.request", "gunicorn.access"}
    assert {line["request_id"] for line in callback} == {called_back.headers["X-Request-Id"]}
    assert VERIFIER not in written
    assert VERIFIER.removeprefix("scv_") not in written
    assert CODE not in written


@pytest.fixture
def plain_log() -> Iterator[io.StringIO]:
    """What the configured handler (LOGGING's ``stderr``) writes, caught in a buffer."""
    (handler,) = [h for h in logging.getLogger().handlers if h.get_name() == "stderr"]
    assert isinstance(handler, logging.StreamHandler)
    caught = io.StringIO()
    previous = handler.setStream(caught)
    try:
        yield caught
    finally:
        handler.setStream(previous)


@pytest.mark.django_db
def test_plain_lines_carry_the_request_id_and_no_secret(plain_log: io.StringIO) -> None:
    client = Client()
    answered = client.get(f"/v1/connect/result/{VERIFIER}", HTTP_X_REQUEST_ID="poll-2")
    logging.getLogger("connect").warning("outside any request")

    written = plain_log.getvalue()
    assert answered["X-Request-Id"] == "poll-2"
    assert " WARNING django.request [poll-2] Unauthorized: /v1/connect/result/[redacted]\n" in (
        written
    )
    assert " WARNING connect [-] outside any request\n" in written
    assert VERIFIER.removeprefix("scv_") not in written


@pytest.mark.django_db
@pytest.mark.parametrize("sent", ["two words", 'quote"', "a" * 65, "line\tbreak", "[brackets]"])
def test_a_request_id_that_could_forge_a_log_field_is_replaced(sent: str) -> None:
    answered = Client().get("/v1/health", HTTP_X_REQUEST_ID=sent)

    assert answered["X-Request-Id"] != sent
    assert len(answered["X-Request-Id"]) == 24


@pytest.mark.django_db
def test_every_page_gets_a_request_id_not_only_the_api() -> None:
    answered = Client().get("/accounts/login/", HTTP_X_REQUEST_ID="page-1")

    assert answered["X-Request-Id"] == "page-1"


# The sweeper and Celery's own lines ------------------------------------------------------------


@pytest.mark.django_db
def test_an_idle_sweep_logs_at_debug_and_a_sweep_that_rang_at_info(
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_destination: Callable[..., TriggerDestination],
) -> None:
    caplog.set_level(logging.DEBUG, logger="connect.tasks")
    deliveries_sweep()
    idle = [r for r in caplog.records if r.name == "connect.tasks"]
    assert [(r.levelname, r.getMessage()) for r in idle] == [
        ("DEBUG", "sweep: 0 deliveries due, 0 doorbells rung")
    ]
    caplog.clear()

    team = make_team()
    destination = make_destination(make_connector(team), make_project(team))
    event = InboundEvent.objects.create(connector=destination.connector, body=b"{}")
    Delivery.objects.create(event=event, destination=destination, next_attempt_at=timezone.now())
    workdir = tmp_path / "redis"
    workdir.mkdir()
    with PrivateRedis(workdir) as broker, doorbell_via(broker.url):
        deliveries_sweep()
        rung = broker.client().llen("celery")

    assert rung == 1
    busy = [r for r in caplog.records if r.name == "connect.tasks"]
    assert [(r.levelname, r.getMessage()) for r in busy] == [
        ("INFO", "sweep: 1 deliveries due, 1 doorbells rung")
    ]


def test_celery_keeps_failures_and_retries_and_quiets_received_and_succeeded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    trace = logging.getLogger("celery.app.trace")
    context = {
        "id": "t-1",
        "name": "connect.tasks.grant_refresh",
        "runtime": 0.1,
        "return_value": True,
        "exc": "ProviderUnavailable()",
        "description": "raised unexpected",
    }
    with caplog.at_level(logging.INFO):
        logging.getLogger("celery.worker.strategy").info(LOG_RECEIVED, context)
        trace.info(LOG_SUCCESS, context)
        logging.getLogger("celery.beat").info(
            "Scheduler: Sending due task %s (%s)", "deliveries-sweep", "connect.tasks.x"
        )
        trace.info(LOG_RETRY, context)
        trace.error(LOG_FAILURE, context)

    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "Task connect.tasks.grant_refresh[t-1] retry: ProviderUnavailable()"),
        (
            "ERROR",
            "Task connect.tasks.grant_refresh[t-1] raised unexpected: ProviderUnavailable()",
        ),
    ]
