"""Issue 8, point 14: a refresh response is never thrown away.

A provider that rotates refresh tokens spends the old one the moment it processes a refresh, and
revokes the whole grant if it is ever presented again (the strict server does, as the OpenID
reference implementation and Salesforce do). So when the provider is slow and the API stops
waiting (``CONNECT_PROVIDER_WAIT``) and answers ``provider_unavailable``, the refresh must go on
to the end (``CONNECT_PROVIDER_TIMEOUT``) and store the rotated token; the next request then
gets the new token instead of replaying the spent one and logging the user out.

The app runs in this process (``live_server``), so the test can see the refresh thread, the
log and the connection pool.
"""

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from django.db import connection
from django.utils import timezone

from connect.models import AuditEvent, Connector, Grant, Project, Team
from tests.fakes.oauth import IssuedGrant, OAuthFake

#: Another thread commits what the test reads: no test transaction around it.
committed = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
USER = {"type": "user", "id": "user-14"}
WAIT = 0.5  # how long the API waits for the provider
DELAY = 1.5  # how long the provider takes to answer
TIMEOUT = 10.0  # how long the refresh itself may take: longer than the provider


@dataclass
class Rig:
    server: OAuthFake
    grant: Grant
    issued: IssuedGrant
    url: str
    bearer: str

    def token(self) -> requests.Response:
        return requests.post(
            f"{self.url}/v1/connect/token/oauth%2Frotating",
            json={"subject": USER},
            headers={"Authorization": f"Bearer {self.bearer}"},
            timeout=30,
        )


@pytest.fixture
def rig(
    require_postgres: None,
    live_server: Any,
    settings: Any,
    oauth_server: OAuthFake,
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
    make_credential: Callable[..., str],
) -> Rig:
    """A user grant due for refresh, at a provider that rotates and takes ``DELAY`` to answer."""
    settings.CONNECT_PROVIDER_WAIT_SECONDS = WAIT
    settings.CONNECT_PROVIDER_TIMEOUT_SECONDS = TIMEOUT
    team = make_team()
    project = make_project(team)
    client_id = f"rotating-{uuid.uuid4().hex[:8]}"
    connector = make_connector(
        team,
        uid="oauth/rotating",
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
    oauth_server.add_client(client_id, method="client_secret_basic", secret="s3cr3t")
    issued = oauth_server.grant_create(client_id, scope="api")
    grant = Grant(
        installation=connector.installations.get(),
        subject_type="user",
        subject_id=USER["id"],
        issuer=project.public_id,
        access_expires_at=timezone.now() + timedelta(seconds=10),
        access_lifetime_seconds=3600,
        scopes=["api"],
    )
    grant.seal("access_token", issued.access_token)
    grant.seal("refresh_token", issued.refresh_token)
    grant.save()
    oauth_server.delay_seconds = DELAY
    return Rig(
        server=oauth_server,
        grant=grant,
        issued=issued,
        url=live_server.url,
        bearer=make_credential(project),
    )


def refresh_threads(grant: Grant) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"connect-refresh-{grant.pk}"]


def wait_for_the_refresh_to_end(grant: Grant, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while refresh_threads(grant):
        assert time.monotonic() < deadline, "the refresh thread is still running"
        time.sleep(0.05)


def connections_out() -> int:
    """Pooled connections checked out, this thread's own handed back first."""
    pool = connection.pool
    assert pool is not None, "the tests run with DATABASE_POOL_MAX > 0"
    connection.close()
    stats = pool.get_stats()
    return int(stats["pool_size"] - stats["pool_available"])


def assert_no_connection_kept(before: int, timeout: float = 5) -> None:
    """The refresh thread gave its connection back (the live server's request threads give
    theirs back just after answering, hence the deadline)."""
    deadline = time.monotonic() + timeout
    while (out := connections_out()) > before:
        assert time.monotonic() < deadline, f"{out - before} connection(s) kept out of the pool"
        time.sleep(0.05)


@committed
@pytest.mark.postgres
def test_a_slow_refresh_the_caller_gave_up_on_still_stores_the_rotated_refresh_token(
    rig: Rig,
) -> None:
    version_before = rig.grant.version
    out_before = connections_out()

    started = time.monotonic()
    first = rig.token()
    elapsed = time.monotonic() - started

    # The caller is answered after the API's wait, not the provider's delay...
    assert first.status_code == 502, first.text
    assert first.json()["error"]["code"] == "provider_unavailable"
    assert int(first.headers["Retry-After"]) >= 1
    assert elapsed < DELAY, f"answered after {elapsed:.2f}s: it waited for the provider"
    # ...while the refresh goes on: the provider has spent the old refresh token.
    wait_for_the_refresh_to_end(rig.grant)
    assert rig.server.calls == {"refresh_token": 1}
    family = rig.server.family(rig.issued.family_id)
    assert family.refresh_token != rig.issued.refresh_token

    stored = Grant.objects.get(pk=rig.grant.pk)
    assert stored.version == version_before + 1
    assert stored.reveal("refresh_token") == family.refresh_token, "the rotated token is kept"
    assert stored.reveal("access_token") in family.access_tokens
    assert stored.status == "active"

    # The next request gets the stored token; nothing was replayed, the user is still in.
    second = rig.token()
    assert second.status_code == 200, second.text
    assert second.json()["token"] == stored.reveal("access_token")
    assert rig.server.calls == {"refresh_token": 1}
    assert rig.server.replays == 0
    assert rig.server.rejections == []
    assert rig.server.family(rig.issued.family_id).active
    assert rig.server.access_token_active(second.json()["token"])
    assert Grant.objects.get(pk=rig.grant.pk).status == "active"
    assert_no_connection_kept(out_before)


@committed
@pytest.mark.postgres
def test_a_request_arriving_during_the_refresh_waits_for_it_instead_of_replaying(
    rig: Rig, settings: Any
) -> None:
    # Two waits cover the delay: the second caller, arriving as the first gives up, sees the
    # answer come in.
    settings.CONNECT_PROVIDER_WAIT_SECONDS = 1.2
    out_before = connections_out()

    first = rig.token()
    assert first.status_code == 502, first.text
    second = rig.token()

    assert second.status_code == 200, second.text
    family = rig.server.family(rig.issued.family_id)
    assert second.json()["token"] in family.access_tokens - {rig.issued.access_token}
    assert rig.server.calls == {"refresh_token": 1}
    assert rig.server.replays == 0
    assert family.active
    wait_for_the_refresh_to_end(rig.grant)
    assert Grant.objects.get(pk=rig.grant.pk).reveal("refresh_token") == family.refresh_token
    assert_no_connection_kept(out_before)


@committed
@pytest.mark.postgres
def test_a_slow_refresh_that_fails_after_the_caller_left_is_recorded_and_logged(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.server.grant_revoke(rig.issued.family_id)  # the user revoked access at the provider
    out_before = connections_out()

    with caplog.at_level(logging.WARNING, logger="connect.services.grants"):
        first = rig.token()
        assert first.status_code == 502, first.text
        wait_for_the_refresh_to_end(rig.grant)

    # Nobody was waiting for the outcome, and it is not lost: stored, audited, logged.
    assert Grant.objects.get(pk=rig.grant.pk).status == "needs_reauth"
    assert AuditEvent.objects.filter(type="grant.needs_reauth").count() == 1
    logged = [r.getMessage() for r in caplog.records if r.name == "connect.services.grants"]
    assert logged == [
        # Why the caller was answered provider_unavailable, then how the refresh ended.
        f"provider_unavailable for grant {rig.grant.pk} of connector "
        f"{rig.grant.installation.connector.public_id}: no answer within {WAIT:g} s; "
        "its refresh goes on",
        f"refresh of grant {rig.grant.pk} ended in invalid_grant: "
        + ("The provider rejected the stored refresh token; the subject must authorize again."),
    ]
    after = rig.token()
    assert after.status_code == 422, after.text
    assert after.json()["error"]["code"] == "no_token"
    assert rig.server.calls == {"refresh_token": 1}
    assert_no_connection_kept(out_before)


def test_whatever_runs_a_refresh_outlives_it() -> None:
    """gunicorn and Celery must not kill a refresh the caller stopped waiting for: its worker
    and graceful timeouts and the task's time limits exceed the longest a refresh can take
    (another's lock, then its own provider call), which exceeds the provider timeout, which
    exceeds how long the API waits."""
    budget = settings.CONNECT_REFRESH_BUDGET_SECONDS
    wait, timeout = (
        settings.CONNECT_PROVIDER_WAIT_SECONDS,
        settings.CONNECT_PROVIDER_TIMEOUT_SECONDS,
    )
    assert wait < timeout < budget
    limits = settings.CELERY_TASK_ANNOTATIONS["connect.tasks.grant_refresh"]
    assert budget <= limits["soft_time_limit"] < limits["time_limit"]
    assert limits["time_limit"] < settings.CELERY_BROKER_TRANSPORT_OPTIONS.get(
        "visibility_timeout", 3600
    )
    web = next(
        line for line in (ROOT / "config/Procfile").read_text().splitlines() if line[:4] == "web:"
    )
    for option in ("--timeout", "--graceful-timeout"):
        found = re.search(rf"{option} (\d+)", web)
        assert found, f"{option} is not set in config/Procfile"
        assert int(found.group(1)) >= budget, f"gunicorn {option} is under the refresh budget"
