"""Fixtures for the provider tests: a team that can call the API, and the provider fakes."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import Client

from connect.models import Connector, Project, Team
from tests.fakes.base import FakeProvider
from tests.fakes.github import GitHubFake
from tests.fakes.microsoft import MicrosoftFake
from tests.providers.flow import Api, callback_url

GITHUB_UID = "github/acme"
GITHUB_APP_ID = "123456"
MICROSOFT_UID = "microsoft/acme"
GRAPH_DEFAULT = "https://graph.microsoft.com/.default"
#: The tenant of whoever signs in to the Entra fake at ``organizations``.
CONTOSO = "9122040d-6c67-4c5b-b112-36a304b66dad"


@dataclass
class Tenant:
    """A team with a project (production), a deployment credential for it, and its API."""

    team: Team
    project: Project
    api: Api


@pytest.fixture
def make_tenant(
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    make_credential: Callable[..., str],
) -> Callable[[], Tenant]:
    def make() -> Tenant:
        team = make_team()
        project = make_project(team)
        return Tenant(team=team, project=project, api=Api(Client(), make_credential(project)))

    return make


@pytest.fixture
def tenant(make_tenant: Callable[[], Tenant]) -> Tenant:
    return make_tenant()


@pytest.fixture
def make_linked_connector(
    make_connector: Callable[..., Connector], make_link: Callable[..., Any]
) -> Callable[..., Connector]:
    """A connector of the tenant's team, linked to its project's production environment."""

    def make(tenant: Tenant, **kw: Any) -> Connector:
        connector = make_connector(tenant.team, **kw)
        make_link(connector, tenant.project, ["production"])
        return connector

    return make


def running(fake: FakeProvider) -> Iterator[FakeProvider]:
    """Start a fake; afterwards, a crash inside it fails the test that met it."""
    with fake:
        yield fake
    assert fake.bugs == [], fake.bugs


def fake_kwargs(client_id: str) -> dict[str, str]:
    return {
        "client_id": client_id,
        "client_secret": f"secret-of-{client_id}+/=%",
        "redirect_uri": callback_url(),
    }


@pytest.fixture(scope="session")
def rsa_private_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture
def github(rsa_private_pem: str) -> Iterator[FakeProvider]:
    """GitHub with the app ``acme-bot``; the install page creates installation 42 (org
    ``acme``: repositories api, web, docs; contents and issues write, metadata read)."""
    fake = GitHubFake(
        app_id=GITHUB_APP_ID,
        app_slug="acme-bot",
        public_key_pem=public_pem(rsa_private_pem),
        **fake_kwargs("Iv1.8a61f9b3a7aba766"),
    )
    fake.add_installation(
        "42",
        login="acme",
        repositories=["api", "web", "docs"],
        permissions={"contents": "write", "issues": "write", "metadata": "read"},
    )
    fake.next_installation = "42"
    yield from running(fake)


@pytest.fixture
def github_connector(
    tenant: Tenant,
    make_linked_connector: Callable[..., Connector],
    github: GitHubFake,
    rsa_private_pem: str,
) -> Connector:
    return make_linked_connector(
        tenant,
        uid=GITHUB_UID,
        type="github",
        client_id=github.client_id,
        secrets={"client_secret": github.client_secret, "private_key": rsa_private_pem},
        config={
            "appId": GITHUB_APP_ID,
            "appSlug": "acme-bot",
            "webBaseUrl": github.url,
            "apiBaseUrl": github.api_url,
        },
        default_scopes={"app": [], "user": []},
    )


@pytest.fixture
def entra(rsa_private_pem: str) -> Iterator[MicrosoftFake]:
    """Entra with one multi-tenant app; whoever signs in at ``organizations`` is of CONTOSO."""
    fake = MicrosoftFake(
        signing_key_pem=rsa_private_pem, **fake_kwargs("6cb04018-a3f5-46a7-b995-940c78f5aef3")
    )
    yield from running(fake)  # type: ignore[misc]


@pytest.fixture
def microsoft_connector(
    tenant: Tenant, make_linked_connector: Callable[..., Connector], entra: MicrosoftFake
) -> Connector:
    return make_linked_connector(
        tenant,
        uid=MICROSOFT_UID,
        type="microsoft",
        client_id=entra.client_id,
        secrets={"client_secret": entra.client_secret},
        config={"loginBaseUrl": entra.url},
        default_scopes={"app": [GRAPH_DEFAULT], "user": ["User.Read"]},
    )
