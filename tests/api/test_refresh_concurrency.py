"""One refresh however many ask at once, across processes (SPEC sections 6 and 12).

A real gunicorn with two worker processes, each with threads, serves the test database; a
hundred token requests for one user grant inside its refresh margin arrive together. The
provider is the strict server, which revokes the whole grant if a rotated refresh token is ever
presented again, so the only way for all hundred to succeed is exactly one refresh call.
"""

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from django.utils import timezone

from connect.models import Connector, Grant, Project, Team, TokenIssue
from tests.app_server import Gunicorn, row_lock_waiters, serving
from tests.fakes.oauth import OAuthFake

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres, pytest.mark.slow]

REQUESTS = 100
WORKERS = 2
THREADS = 8


@pytest.fixture
def gunicorn(require_postgres: None, tmp_path: Path) -> Iterator[Gunicorn]:
    """The app as production runs it, on the test database, in two worker processes."""
    with serving(tmp_path, workers=WORKERS, threads=THREADS) as server:
        yield server


def wait_for_row_lock_waiters(server: OAuthFake, timeout: float = 20) -> int:
    """Until the refresh has reached the provider and someone waits on the grant's row."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        calls = server.calls.get("refresh_token", 0)
        assert calls <= 1, "a second refresh reached the provider while the first was in flight"
        waiting = row_lock_waiters() if calls else 0
        if waiting:
            return waiting
        time.sleep(0.05)
    pytest.fail(f"nobody waited on the row lock within {timeout}s: calls {server.calls}")


def test_a_hundred_concurrent_requests_from_two_processes_refresh_once(
    gunicorn: Gunicorn,
    oauth_server: OAuthFake,
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
    make_credential: Callable[..., str],
) -> None:
    team = make_team()
    project = make_project(team)
    client_id = f"connect-{uuid.uuid4().hex[:8]}"
    connector = make_connector(
        team,
        uid="salesforce-like/crm",
        type="oauth",
        client_id=client_id,
        secrets={"client_secret": "s3cr3t"},
        config={
            "tokenEndpoint": oauth_server.token_endpoint,
            "tokenEndpointAuthMethod": "client_secret_basic",
        },
        default_scopes={"user": ["api"]},
    )
    make_link(connector, project, ["production"])
    bearer = make_credential(project)
    oauth_server.add_client(client_id, method="client_secret_basic", secret="s3cr3t")
    issued = oauth_server.grant_create(client_id, scope="api")
    grant = Grant(
        installation=connector.installations.get(),
        subject_type="user",
        subject_id="user-7",
        issuer=project.public_id,
        access_expires_at=timezone.now() + timedelta(seconds=30),  # inside the 5-minute margin
        scopes=["api"],
    )
    grant.seal("access_token", issued.access_token)
    grant.seal("refresh_token", issued.refresh_token)
    grant.save()
    version_before = grant.version
    # The provider holds the refresh until the other process is seen waiting for the row.
    oauth_server.gate = threading.Event()

    start = threading.Barrier(REQUESTS)

    def ask(_: int) -> requests.Response:
        start.wait(timeout=30)
        return requests.post(
            f"{gunicorn.url}/v1/connect/token/salesforce-like%2Fcrm",
            json={"subject": {"type": "user", "id": "user-7"}},
            headers={"Authorization": f"Bearer {bearer}"},
            timeout=60,
        )

    with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
        pending = pool.map(ask, range(REQUESTS))
        try:
            waiting = wait_for_row_lock_waiters(oauth_server)
            # One refresh in flight, and in the other process one transaction waits on the
            # row; its other threads queue in process, out of the database's sight.
            assert oauth_server.calls == {"refresh_token": 1}
            assert waiting == WORKERS - 1
            time.sleep(0.3)
            assert row_lock_waiters() == WORKERS - 1
        finally:
            oauth_server.gate.set()
        responses = list(pending)

    assert Counter(r.status_code for r in responses) == {200: REQUESTS}, [
        r.text for r in responses if r.status_code != 200
    ][:3]
    handed_out = {r.json()["token"] for r in responses}
    assert len(handed_out) == 1, "everyone got the one refreshed token"
    (token,) = handed_out

    # Exactly one refresh reached the provider, and no rotated refresh token came back.
    assert oauth_server.calls == {"refresh_token": 1}
    assert requests.get(oauth_server.stats_url, timeout=5).json()["calls"] == {"refresh_token": 1}
    assert oauth_server.replays == 0
    assert oauth_server.rejections == []
    family = oauth_server.family(issued.family_id)
    assert family.active
    assert token != issued.access_token
    assert token in family.access_tokens
    assert oauth_server.access_token_active(token)

    grant.refresh_from_db()
    assert grant.version == version_before + 1
    assert grant.reveal("refresh_token") == family.refresh_token != issued.refresh_token
    assert grant.reveal("access_token") == token
    assert grant.status == "active"
    token_ids = {r.json()["tokenId"] for r in responses}
    assert len(token_ids) == REQUESTS
    assert set(TokenIssue.objects.filter(grant=grant).values_list("public_id", flat=True)) == (
        token_ids
    )

    # Both processes answered, so the row lock (not just a lock in one process) held. The
    # access log is written after each response: read it once it has every line.
    deadline = time.monotonic() + 10
    while sum(gunicorn.pids_that_answered(200).values()) < REQUESTS:
        assert time.monotonic() < deadline, gunicorn.pids_that_answered(200)
        time.sleep(0.02)
    served = gunicorn.pids_that_answered(200)
    assert sum(served.values()) == REQUESTS, served
    assert len(served) >= 2, f"one process answered everything: {served}"
