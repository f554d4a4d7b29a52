"""A tenant whose deployments hear about their connections: a Slack and an OAuth connector
linked to two projects, each with a lifecycle destination at a loopback receiver, and helpers
that check what arrives the way a receiver must (bearer JWT against our JWKS, Standard
Webhooks signature, webhook-id = the event's id)."""

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from django.conf import settings
from django.test import Client
from standardwebhooks.webhooks import Webhook

from connect.models import (
    Connector,
    Environment,
    LifecycleEvent,
    Project,
    Team,
    TriggerDestination,
)
from connect.services.deliveries import deliveries_send
from connect.services.lifecycle import lifecycle_destination_set
from tests.fakes.oauth import OAuthFake
from tests.fakes.slack import SlackFake
from tests.providers import conftest as providers
from tests.providers.conftest import Tenant, fake_kwargs, running
from tests.providers.flow import Api, callback_url
from tests.triggers.receiver import Received, Receiver

# The providers' fixtures, here too.
make_tenant = providers.make_tenant
tenant = providers.tenant
make_linked_connector = providers.make_linked_connector

SLACK_UID = "slack/acme"
OAUTH_UID = "oauth/acme"
CLIENT_ID = "acme-client"
SECRET = "s3cr3t-of-acme"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    yield from running(SlackFake(**fake_kwargs("2141029472.691202649728")))  # type: ignore[misc]


@dataclass
class World:
    team: Team
    owner: Tenant  # the project whose users consent
    other: Tenant  # another project linked to the same connectors
    slack: Connector
    oauth: Connector
    receiver: Receiver

    def hear(self, connector: Connector, tenant: Tenant, path: str) -> TriggerDestination:
        destination = lifecycle_destination_set(
            connector=connector,
            project=tenant.project,
            environment="production",
            path=path,
            actor="test",
        )
        assert destination is not None
        return destination


@pytest.fixture
def world(
    make_tenant: Callable[[], Tenant],
    make_project: Callable[..., Project],
    make_credential: Callable[..., str],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
    slack: SlackFake,
    oauth_server: OAuthFake,
    receiver: Receiver,
) -> World:
    owner = make_tenant()
    project = make_project(owner.team, slug="other-app")
    other = Tenant(team=owner.team, project=project, api=Api(Client(), make_credential(project)))
    Environment.objects.filter(project__team=owner.team).update(base_url=receiver.url)
    slack_connector = make_connector(
        owner.team,
        uid=SLACK_UID,
        type="slack",
        name="Acme Bot",
        client_id=slack.client_id,
        secrets={"client_secret": slack.client_secret},
        config={"baseUrl": slack.url},
        default_scopes={"app": ["chat:write"], "user": ["search:read"]},
    )
    oauth_server.add_client(CLIENT_ID, method="client_secret_basic", secret=SECRET)
    oauth_server.register_redirect(CLIENT_ID, callback_url())
    oauth = make_connector(
        owner.team,
        uid=OAUTH_UID,
        type="oauth",
        client_id=CLIENT_ID,
        secrets={"client_secret": SECRET},
        config={
            "authorizationEndpoint": oauth_server.authorization_endpoint,
            "tokenEndpoint": oauth_server.token_endpoint,
            "revocationEndpoint": oauth_server.revocation_endpoint,
            "tokenEndpointAuthMethod": "client_secret_basic",
        },
        default_scopes={"app": ["api"], "user": ["read", "write"]},
    )
    for connector in (slack_connector, oauth):
        for tenant_ in (owner, other):
            make_link(connector, tenant_.project, ["production"])
    return World(
        team=owner.team,
        owner=owner,
        other=other,
        slack=slack_connector,
        oauth=oauth,
        receiver=receiver,
    )


def jwks() -> jwt.PyJWKSet:
    return jwt.PyJWKSet.from_dict(json.loads(Client().get("/.well-known/jwks.json").content))


def verified(received: Received, destination: TriggerDestination, origin: str) -> dict[str, Any]:
    """What a receiver does: check the bearer and the signature, then read the event."""
    token = received.headers["authorization"].removeprefix("Bearer ")
    header = jwt.get_unverified_header(token)
    key = next(k for k in jwks().keys if k.key_id == header["kid"])
    claims = jwt.decode(
        token, key.key, algorithms=["RS256"], audience=origin, issuer=settings.PUBLIC_URL
    )
    assert claims["project_id"] == destination.project.public_id
    assert claims["connector_id"] == destination.connector.public_id
    Webhook(destination.reveal("signing_secret")).verify(received.body, received.headers)
    event = json.loads(received.body)
    assert received.headers["webhook-id"] == event["id"]
    assert received.headers["x-connect-event-type"] == event["type"]
    assert received.headers["content-type"] == "application/json"
    return dict(event)


def delivered(
    world: World, destinations: list[TriggerDestination]
) -> dict[str, list[dict[str, Any]]]:
    """Send what is due, then what each destination's path received, verified, in order."""
    while deliveries_send(budget_seconds=10):
        pass
    by_path = {d.path: d for d in destinations}
    got: dict[str, list[dict[str, Any]]] = {path: [] for path in by_path}
    for received in world.receiver.received():
        if received.path not in by_path:
            continue  # not a destination (an API key's verifyUrl)
        got[received.path].append(
            verified(received, by_path[received.path], world.receiver.url.rstrip("/"))
        )
    return got


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def recorded(type_: str, connector: Connector | None = None) -> int:
    events = LifecycleEvent.objects.filter(type=type_)
    return (events if connector is None else events.filter(connector=connector)).count()
