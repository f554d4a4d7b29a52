"""Fixtures for the runtime API: a tenant that can call it, and an oauth connector."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from connect.models import Connector, ConnectorType, Project, Team


@dataclass
class Tenant:
    """A team with one project (production + preview), an ``api-key`` connector linked to
    production only, and a deployment credential for production."""

    team: Team
    project: Project
    connector: Connector
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"HTTP_AUTHORIZATION": f"Bearer {self.token}"}


@pytest.fixture
def make_tenant(
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
    make_credential: Callable[..., str],
) -> Callable[..., Tenant]:
    def make(uid: str = "api-key/key", api_key: str | None = None) -> Tenant:
        team = make_team()
        project = make_project(team, environments=("production", "preview"))
        connector = make_connector(
            team,
            uid=uid,
            secrets={"api_key": api_key or f"key-of-{team.slug}"},
            default_scopes={"app": []},
        )
        make_link(connector, project, ["production"])
        return Tenant(
            team=team, project=project, connector=connector, token=make_credential(project)
        )

    return make


@pytest.fixture
def make_oauth_connector(
    make_connector: Callable[..., Connector], make_link: Callable[..., Any]
) -> Callable[..., Connector]:
    """A client-credentials ``oauth`` connector of the tenant's team, linked to production.

    Its token endpoint is never reached by the tests that use it: they give it cached grants.
    """

    def make(tenant: Tenant, uid: str = "oauth/acme", **config: Any) -> Connector:
        connector = make_connector(
            tenant.team,
            uid=uid,
            type=ConnectorType.OAUTH,
            client_id="client-id",
            secrets={"client_secret": "client-secret"},
            config={"tokenEndpoint": "https://auth.invalid/token", **config},
            default_scopes={"app": ["api"], "user": ["read"]},
        )
        make_link(connector, tenant.project, ["production"])
        return connector

    return make


@pytest.fixture
def make_api_token(db: None) -> Callable[..., str]:
    """A team API token's secret; ``creator`` None makes an operator's token."""

    def make(team: Team, role: str = "owner", creator: Any = None, **kw: Any) -> str:
        from connect.models import TeamApiToken
        from connect.services.api_tokens import api_token_create

        token = TeamApiToken(team=team, name=kw.pop("name", f"{role} token"), role=role, **kw)
        return api_token_create(token=token, created_by=creator, actor="test")

    return make


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}
