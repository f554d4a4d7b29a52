"""Every change that narrows access is refused within one second on every process, caches warm.

A real gunicorn with two worker processes serves the test database with the token path's
process-local caches on (issue 13). Both processes answer a user's token request until their
caches are warm; then one kind of change is committed here, and every request sent one second
later is refused, by both processes. Generation changes reach the workers by Redis pub/sub, by
PostgreSQL LISTEN/NOTIFY (no ``REDIS_URL``), or, with the listener off, by the fallback's
once-a-second check.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from django.utils import timezone

from connect.models import (
    Connector,
    ConnectorType,
    DeploymentCredential,
    Environment,
    Grant,
    Installation,
    Project,
    ProjectLink,
    Team,
)
from connect.services.credentials import deployment_credentials_revoke
from connect.services.installations import installation_remove
from connect.services.projects import environment_delete
from tests.app_server import Gunicorn, serving

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres, pytest.mark.slow]

BODY = {"subject": {"type": "user", "id": "alice"}}
BOUND = 1.0  # seconds: SPEC section 12


@dataclass
class World:
    team: Team
    project: Project
    connector: Connector
    installation: Installation
    grant: Grant
    token: str


@pytest.fixture
def world(
    require_postgres: None,
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
    make_installation: Callable[..., Installation],
    make_grant: Callable[..., Grant],
    make_credential: Callable[..., str],
) -> World:
    team = make_team()
    project = make_project(team, environments=("production", "preview"))
    connector = make_connector(
        team,
        uid="oauth/acme",
        type=ConnectorType.OAUTH,
        client_id="client-id",
        secrets={"client_secret": "client-secret"},
        config={"tokenEndpoint": "https://auth.invalid/token"},
        default_scopes={"app": ["api"], "user": ["read"]},
    )
    make_link(connector, project, ["production", "preview"])
    installation = connector.installations.filter(is_default=True).first() or make_installation(
        connector, is_default=True
    )
    grant = make_grant(
        installation,
        subject_type=Grant.SubjectType.USER,
        subject_id="alice",
        issuer=project.public_id,
        secrets={"access_token": "alice-token"},
        access_expires_at=timezone.now() + timedelta(hours=1),
        scopes=["read"],
    )
    return World(team, project, connector, installation, grant, make_credential(project))


def ask(server: Gunicorn, token: str) -> int:
    # A new connection each time, so both processes take their share.
    response = requests.post(
        f"{server.url}/v1/connect/token/oauth%2Facme",
        json=BODY,
        headers={"Authorization": f"Bearer {token}", "Connection": "close"},
        timeout=10,
    )
    if response.status_code == 200:
        assert response.json()["token"] == "alice-token"
    return response.status_code


def warm(server: Gunicorn, token: str, answers: int = 4) -> None:
    """Until each process has answered ``answers`` times (the third on is from its caches)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert ask(server, token) == 200
        served = server.pids_that_answered(200)
        if len(served) == 2 and min(served.values()) >= answers:
            return
    pytest.fail(f"both processes did not answer: {server.pids_that_answered(200)}")


def refused_everywhere_after(server: Gunicorn, token: str, changed_at: float) -> None:
    """Every request from ``changed_at`` + BOUND on is refused, until both processes have."""
    time.sleep(max(0.0, changed_at + BOUND - time.monotonic()))
    before = server.pids_that_answered(200)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = ask(server, token)
        assert status != 200, "a process still answered after the change plus one second"
        refused = {
            pid
            for code in (401, 403, 404, 400, 409, 422, 503)
            for pid in server.pids_that_answered(code)
        }
        if len(refused) == 2:
            break
    else:
        pytest.fail("both processes did not get to answer after the change")
    assert server.pids_that_answered(200) == before


def revoke_credential(w: World) -> None:
    deployment_credentials_revoke(
        credentials=DeploymentCredential.objects.filter(project=w.project), actor="test"
    )


def remove_members_credential(w: World) -> None:
    DeploymentCredential.objects.filter(project=w.project).delete()


def unlink(w: World) -> None:
    ProjectLink.objects.filter(project=w.project, connector=w.connector).delete()


def remove_environment(w: World) -> None:
    environment_delete(
        environment=Environment.objects.get(project=w.project, slug="production"), actor="test"
    )


def delete_connector(w: World) -> None:
    Connector.objects.get(pk=w.connector.pk).delete()


def uninstall(w: World) -> None:
    installation_remove(
        installation=Installation.objects.get(pk=w.installation.pk),
        actor="test",
        delete=False,
        revoke_upstream=False,
    )


def revoke_grant(w: World) -> None:
    # A queryset update: no model signal, still seen (a trigger, and the publishing wrapper).
    Grant.objects.filter(pk=w.grant.pk).update(status=Grant.Status.REVOKED)


CHANGES = [
    revoke_credential,
    remove_members_credential,
    unlink,
    remove_environment,
    delete_connector,
    uninstall,
    revoke_grant,
]

CHANNELS = {
    "redis": {},
    "postgres-notify": {"REDIS_URL": ""},
    "listener-off": {"CONNECT_GENERATIONS_LISTENER": "0"},
}


#: Every kind of change over Redis (production's channel); two of them over the other channels.
CASES = [("redis", change) for change in CHANGES] + [
    (channel, change)
    for channel in ("postgres-notify", "listener-off")
    for change in (revoke_credential, revoke_grant)
]


@pytest.mark.parametrize(
    ("channel", "change"), CASES, ids=[f"{ch}-{c.__name__}" for ch, c in CASES]
)
def test_a_change_is_refused_within_a_second_on_both_processes(
    world: World, tmp_path: Path, channel: str, change: Callable[[World], None]
) -> None:
    env = {"CONNECT_LOCAL_CACHES": "1", **CHANNELS[channel]}
    with serving(tmp_path, workers=2, threads=2, env=env) as server:
        warm(server, world.token)
        change(world)
        changed_at = time.monotonic()
        refused_everywhere_after(server, world.token, changed_at)
