"""A live server for the CLI: gunicorn on the test database, a team, a project, a team API token
and a deployment credential; and a config directory of the test's own."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from connect.models import Project, Team, TeamApiToken
from connect.services.api_tokens import api_token_create
from connect_cli.main import cli
from tests.app_server import serving


@dataclass
class Live:
    url: str
    team: Team
    project: Project
    token: str
    viewer_token: str
    credential: str
    config_home: Path

    def run(self, *args: str, token: str | None = None, env: dict[str, str] | None = None,
            input: str | None = None) -> Result:  # fmt: skip
        environment = {
            "CONNECT_URL": self.url,
            "CONNECT_TOKEN": token if token is not None else self.token,
            "XDG_CONFIG_HOME": str(self.config_home),
            "CONNECT_CREDENTIAL": None,
            **(env or {}),
        }
        return CliRunner().invoke(cli, list(args), env=environment, input=input)


def team_token(team: Team, role: str) -> str:
    return api_token_create(
        token=TeamApiToken(team=team, name=f"cli {role}", role=role), created_by=None, actor="test"
    )


@pytest.fixture
def live(
    tmp_path: Path,
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    make_credential: Callable[..., str],
) -> Iterator[Live]:
    team = make_team()
    project = make_project(team, slug="web", environments=("production", "preview"))
    with serving(tmp_path, workers=1, threads=2) as server:
        yield Live(
            url=server.url,
            team=team,
            project=project,
            token=team_token(team, "owner"),
            viewer_token=team_token(team, "viewer"),
            credential=make_credential(project),
            config_home=tmp_path / "config",
        )


@pytest.fixture
def offline(tmp_path: Path) -> Callable[..., Result]:
    """The CLI with no server behind it, and a config directory of its own."""

    def run(*args: str, env: dict[str, Any] | None = None, input: str | None = None) -> Result:
        environment = {
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "CONNECT_URL": None,
            "CONNECT_TOKEN": None,
            **(env or {}),
        }
        return CliRunner().invoke(cli, list(args), env=environment, input=input)

    return run
