"""``@vercel/sdk`` 1.28.35's eleven ``connect*`` calls, run by Node against gunicorn (issue 10,
point 2): only a real server shows how uids arrive percent-encoded. Skipped without Node on a
laptop; a failure in CI (``CONNECT_REQUIRE_SERVICES=1``)."""

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connect.models import AuditEvent, Connector, Project, Team
from tests.app_server import serving
from tests.conftest import missing_service

SCRIPT_DIR = Path(__file__).resolve().parents[1] / "vercel_sdk"


def node_ready() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        missing_service("needs Node.js and npm for the @vercel/sdk check")
    assert node is not None
    assert npm is not None
    if not (SCRIPT_DIR / "node_modules" / "@vercel" / "sdk").exists():
        # The committed lockfile pins the package and its one dependency.
        installed = subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=SCRIPT_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if installed.returncode != 0:
            missing_service(f"npm ci failed: {installed.stderr[-1000:]}")
    return node


@pytest.mark.django_db(transaction=True)
def test_vercel_sdk_connect_calls_work_unchanged(
    tmp_path: Path,
    require_postgres: None,
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    make_api_token: Callable[..., str],
) -> None:
    node = node_ready()
    team = make_team()
    project = make_project(team, slug="web", environments=("production", "preview"))
    token = make_api_token(team, "owner")

    with serving(tmp_path, workers=1, threads=2) as server:
        run = subprocess.run(
            [node, "connect_calls.mjs"],
            cwd=SCRIPT_DIR,
            env={
                "PATH": "/usr/bin:/bin",
                "CONNECT_URL": server.url,
                "CONNECT_TOKEN": token,
                "PROJECT_ID": project.public_id,
                "TEAM_ID": team.public_id,
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
    lines = run.stdout.strip().splitlines()
    assert run.returncode == 0, lines[-1:] if lines else run.stderr[-3000:]
    result: dict[str, Any] = json.loads(lines[-1])
    seen = result["seen"]
    created = seen["createConnector"]
    assert created["id"].startswith("scl_")
    assert created["uid"] == "oauth/sdk-app"
    assert [c["uid"] for c in seen["listConnectors"]["connectors"]] == ["oauth/sdk-app"]
    assert seen["getConnector"]["id"] == created["id"]
    assert seen["updateConnector"]["connector"]["name"] == "SDK app renamed"
    link = seen["upsertConnectorProjectConnection"]
    assert link["connectorId"] == created["id"]  # the id, although the call named the uid
    assert link["enabledEnvironments"] == ["production", "preview"]
    assert seen["getConnectorProjectConnection"]["project"]["id"] == project.public_id
    assert len(seen["listConnectorProjectConnections"]["projects"]) == 1
    assert len(seen["listProjectConnectorConnections"]["connectors"]) == 1
    destinations = seen["replaceConnectorTriggerDestinations"]["triggerDestinations"]
    assert destinations == [{"projectId": project.public_id, "path": "/webhooks"}]
    assert seen["deleteConnectorProjectConnection"] is None
    assert seen["deleteConnector"] is None
    assert result["notFound"] == {"status": 404, "code": "not_found"}
    assert not Connector.objects.filter(team=team).exists()
    assert "sdk-secret-1" not in run.stdout
    actors = set(AuditEvent.objects.filter(team=team).values_list("actor", flat=True))
    assert {actor.split(":")[0] for actor in actors} == {"token", "test"}  # "test" made it
