"""A team with one of everything, team API tokens of each role, and a client that speaks JSON
with a bearer: what every resource test starts from."""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.test import Client

from connect.models import (
    Connector,
    Delivery,
    DeploymentCredential,
    Grant,
    InboundEvent,
    Installation,
    Project,
    Role,
    Team,
    TriggerDestination,
    TrustedIssuer,
    TrustedIssuerRule,
)
from connect.models.api_tokens import TeamApiToken
from connect.services.api_tokens import api_token_create


@dataclass
class Answer:
    status: int
    body: Any
    headers: Any

    @property
    def error_code(self) -> str:
        assert isinstance(self.body, dict), self.body
        assert set(self.body) == {"error"}, self.body
        return str(self.body["error"]["code"])


class Api:
    """``api.get(path, token)``; JSON in, JSON out."""

    def __init__(self) -> None:
        self.client = Client()

    def call(self, method: str, path: str, token: str | None, body: Any = None) -> Answer:
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
        response = self.client.generic(
            method,
            path,
            data=b"" if body is None else json.dumps(body).encode(),
            content_type="application/json",
            **headers,
        )
        content = response.content
        parsed = json.loads(content) if content else None
        if response.status_code != 204:
            assert response["Content-Type"].startswith("application/json"), response
        return Answer(response.status_code, parsed, response)

    def get(self, path: str, token: str | None) -> Answer:
        return self.call("GET", path, token)

    def post(self, path: str, token: str | None, body: Any = None) -> Answer:
        return self.call("POST", path, token, {} if body is None else body)

    def delete(self, path: str, token: str | None) -> Answer:
        return self.call("DELETE", path, token)


@pytest.fixture
def api() -> Api:
    return Api()


@pytest.fixture
def team_token(db: None) -> Callable[..., str]:
    """An operator's team API token with ``role`` (no creator caps it)."""

    def make(team: Team, role: Role | str = Role.OWNER) -> str:
        token = TeamApiToken(team=team, name=f"{role} token", role=role)
        return api_token_create(token=token, created_by=None, actor="test")

    return make


@dataclass
class World:
    team: Team
    project: Project
    connector: Connector
    installation: Installation
    destination: TriggerDestination
    grant: Grant
    credential: DeploymentCredential
    issuer: TrustedIssuer
    event: InboundEvent
    delivery: Delivery
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def owner(self) -> str:
        return self.tokens["owner"]

    @property
    def member(self) -> str:
        return self.tokens["member"]

    @property
    def viewer(self) -> str:
        return self.tokens["viewer"]


@pytest.fixture
def make_world(
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
    make_installation: Callable[..., Installation],
    make_destination: Callable[..., TriggerDestination],
    make_grant: Callable[..., Grant],
    make_credential: Callable[..., str],
    team_token: Callable[..., str],
    settings: Any,
) -> Callable[..., World]:
    settings.CONNECT_RATE_LIMIT_MANAGEMENT = 100000

    def make(slug: str) -> World:
        team = make_team(slug=slug)
        project = make_project(team, slug="web", environments=("production", "preview"))
        project.environments.filter(slug="production").update(base_url="https://web.acme.test")
        connector = make_connector(team, uid=f"api-key/{slug}")
        make_link(connector, project, ["production"])
        installation = make_installation(connector)
        destination = make_destination(connector, project)
        make_credential(project)
        issuer = TrustedIssuer.objects.create(
            team=team,
            issuer="https://token.actions.githubusercontent.com",
            jwks_url="https://token.actions.githubusercontent.com/.well-known/jwks",
            audience=team.workload_audience,
        )
        TrustedIssuerRule.objects.create(
            trusted_issuer=issuer,
            required_claims={"repository": f"{slug}/web"},
            project=project,
            environment=project.environments.get(slug="production"),
        )
        event = InboundEvent.objects.create(
            connector=connector,
            provider_event_id=f"evt-{slug}",
            event_type="push",
            body=b"{}",
            body_sha256=f"{slug}-sha",
            verified=True,
        )
        return World(
            team=team,
            project=project,
            connector=connector,
            installation=installation,
            destination=destination,
            grant=make_grant(
                installation,
                Grant.SubjectType.USER,
                subject_id="u_1",
                issuer=project.public_id,
                secrets={"access_token": "at-1"},
            ),
            credential=DeploymentCredential.objects.get(project=project),
            issuer=issuer,
            event=event,
            delivery=Delivery.objects.create(event=event, destination=destination),
            tokens={role: team_token(team, role) for role in Role.values},
        )

    return make


@pytest.fixture
def acme(make_world: Callable[..., World]) -> World:
    return make_world("acme")


@pytest.fixture
def globex(make_world: Callable[..., World]) -> World:
    """Another team: its objects must be invisible to acme's tokens."""
    return make_world("globex")
