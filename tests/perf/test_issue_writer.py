"""Token issue records written off the request (issue 13, item 2): all of them under load, all
of them at a clean shutdown, at most one batch lost when a worker is killed, and a grant deleted
before the flush never fails a batch."""

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from django.db import connection
from django.test import Client

from connect import issue_writer
from connect.models import Grant, TokenIssue
from tests.api.conftest import Tenant
from tests.app_server import serving

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

BODY = {"subject": {"type": "app"}}


@pytest.fixture
def buffered(settings: Any) -> None:
    settings.CONNECT_ISSUE_WRITER = "buffered"
    settings.CONNECT_ISSUE_BATCH = 50
    settings.CONNECT_ISSUE_FLUSH_MS = 100


def app_grant(tenant: Tenant) -> Grant:
    return Grant.objects.get(installation__connector=tenant.connector, subject_type="app")


def test_every_record_is_written_under_load_in_batches(
    require_postgres: None,
    buffered: None,
    make_tenant: Callable[..., Tenant],
) -> None:
    tenant = make_tenant()
    assert (
        Client()
        .post(
            f"/v1/connect/token/{tenant.connector.uid.replace('/', '%2F')}",
            BODY,
            content_type="application/json",
            **tenant.auth,
        )
        .status_code
        == 200
    )
    assert issue_writer.wait_written()
    grant = app_grant(tenant)
    made: list[str] = []

    def burst() -> None:
        for _ in range(250):
            issue = TokenIssue(grant_id=grant.pk, project_id=tenant.project.pk, environment="p")
            made.append(issue_writer.record(issue).public_id)
        connection.close()  # back to the pool, as a request's thread does

    threads = [threading.Thread(target=burst) for _ in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    requests_took = time.monotonic() - started
    assert issue_writer.wait_written(timeout=20)
    written = set(TokenIssue.objects.filter(public_id__in=made).values_list("public_id", flat=True))
    assert len(made) == 1000
    assert written == set(made)
    assert requests_took < 20


def test_a_grant_deleted_before_the_flush_fails_no_batch(
    require_postgres: None, buffered: None, make_tenant: Callable[..., Tenant]
) -> None:
    kept, gone = make_tenant(), make_tenant()
    for tenant in (kept, gone):  # their app grants
        Grant.objects.get_or_create(
            installation=tenant.connector.installations.get(), subject_type="app"
        )
    survivor = TokenIssue(grant=app_grant(kept), project=kept.project, environment="production")
    orphan = TokenIssue(grant=app_grant(gone), project=gone.project, environment="production")
    issue_writer._write([orphan, survivor])  # the thread's own step, on this connection
    assert TokenIssue.objects.filter(public_id=survivor.public_id).exists()
    app_grant(gone).delete()
    later = TokenIssue(grant=app_grant(kept), project=kept.project, environment="production")
    orphan_again = TokenIssue(grant_id=orphan.grant_id, project=gone.project, environment="p")
    issue_writer._write([later, orphan_again])
    assert TokenIssue.objects.filter(public_id=later.public_id).exists()
    assert not TokenIssue.objects.filter(public_id=orphan_again.public_id).exists()


def token_ids(url: str, tenant: Tenant, count: int) -> list[str]:
    ids = []
    path = f"{url}/v1/connect/token/{tenant.connector.uid.replace('/', '%2F')}"
    for _ in range(count):
        response = requests.post(
            path, json=BODY, headers={"Authorization": f"Bearer {tenant.token}"}, timeout=10
        )
        assert response.status_code == 200, response.text
        ids.append(response.json()["tokenId"])
    return ids


@pytest.mark.slow
def test_a_clean_shutdown_writes_every_buffered_record(
    require_postgres: None, make_tenant: Callable[..., Tenant], tmp_path: Path
) -> None:
    tenant = make_tenant()
    env = {"CONNECT_ISSUE_WRITER": "buffered", "CONNECT_ISSUE_FLUSH_MS": "600000"}
    with serving(
        tmp_path, workers=2, threads=2, env=env, args=("-c", "config/gunicorn.py"), graceful=True
    ) as server:
        ids = token_ids(server.url, tenant, 40)
        # Nothing is written yet: the writer waits ten minutes or a batch of 500.
        assert TokenIssue.objects.filter(public_id__in=ids).count() < len(ids)
    assert TokenIssue.objects.filter(public_id__in=ids).count() == len(ids)


@pytest.mark.slow
def test_a_killed_worker_loses_at_most_one_batch(
    require_postgres: None, make_tenant: Callable[..., Tenant], tmp_path: Path
) -> None:
    tenant = make_tenant()
    batch = 20
    env = {
        "CONNECT_ISSUE_WRITER": "buffered",
        "CONNECT_ISSUE_FLUSH_MS": "600000",
        "CONNECT_ISSUE_BATCH": str(batch),
    }
    with serving(tmp_path, workers=1, threads=2, env=env) as server:
        ids = token_ids(server.url, tenant, 50)
        (pid,) = server.pids_that_answered(200)
        deadline = time.monotonic() + 5
        while TokenIssue.objects.filter(public_id__in=ids).count() < 40:
            assert time.monotonic() < deadline, "full batches were not written at once"
            time.sleep(0.02)
        os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.3)
        written = TokenIssue.objects.filter(public_id__in=ids).count()
    missing = len(ids) - written
    assert 0 < missing <= batch, f"{missing} records lost"
