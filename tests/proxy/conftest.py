"""A team whose custom OAuth connector's API is the strict fake's resource server (``/api``),
and a deployment that calls it through the proxy."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from connect.models import Connector, Grant, Installation, Project, Team
from tests.fakes.oauth import IssuedGrant, OAuthFake

# The GitHub fake and a tenant with a GitHub App connector, as the provider tests have them.
from tests.providers.conftest import (  # noqa: F401
    github,
    github_connector,
    make_linked_connector,
    make_tenant,
    rsa_private_pem,
    tenant,
)

USER_ID = "user-42"


@dataclass
class ProxyRig:
    server: OAuthFake
    team: Team
    project: Project
    connector: Connector
    installation: Installation
    client_id: str
    client_secret: str
    bearer: str
    client: Client

    def url(self, path: str) -> str:
        return f"/v1/connect/proxy/{self.connector.uid}{path}"

    def call(
        self,
        method: str,
        path: str,
        *,
        subject: str | None = "app",
        body: bytes = b"",
        content_type: str = "application/octet-stream",
        raw: str | None = None,
        bearer: str | None = None,
        stream: bool = False,
        **headers: str,
    ) -> Any:
        """A proxied call through Django's test client; ``raw`` is the request target as
        gunicorn would pass it (``RAW_URI``), for targets the test client would decode.

        A streamed answer is read at once (which closes it, as a server does, and records the
        call) unless ``stream``: then the test reads it, and it stays in flight until then."""
        extra: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {bearer or self.bearer}"}
        if subject is not None:
            extra["HTTP_CONNECT_SUBJECT"] = subject
        if raw is not None:
            extra["RAW_URI"] = raw
        extra.update(headers)
        response = self.client.generic(
            method, self.url(path), data=body, content_type=content_type, **extra
        )
        if response.streaming and not stream:
            response.streaming_content = [b"".join(response.streaming_content)]
        return response

    def user_grant(
        self,
        *,
        project: Project | None = None,
        expires_in: timedelta = timedelta(hours=1),
    ) -> tuple[Grant, IssuedGrant]:
        """A user grant as a finished consent leaves it."""
        issued = self.server.grant_create(self.client_id, scope="read")
        grant = Grant(
            installation=self.installation,
            subject_type=Grant.SubjectType.USER,
            subject_id=USER_ID,
            issuer=(project or self.project).public_id,
            project=project or self.project,
            access_expires_at=timezone.now() + expires_in,
            scopes=["read"],
        )
        grant.seal("access_token", issued.access_token)
        grant.seal("refresh_token", issued.refresh_token)
        grant.save()
        return grant, issued


@pytest.fixture
def make_proxy_rig(
    client: Client,
    oauth_server: OAuthFake,
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
    make_credential: Callable[..., str],
) -> Callable[..., ProxyRig]:
    def make(*, api_base: str | None = None, team: Team | None = None) -> ProxyRig:
        team = team or make_team()
        project = make_project(team, slug=f"app-{uuid.uuid4().hex[:6]}")
        client_id = f"connect:{uuid.uuid4().hex[:12]}"
        secret = f"s3cr3t-{uuid.uuid4().hex}"
        connector = make_connector(
            team,
            uid="oauth/acme",
            type="oauth",
            client_id=client_id,
            secrets={"client_secret": secret},
            config={
                "tokenEndpoint": oauth_server.token_endpoint,
                "tokenEndpointAuthMethod": "client_secret_basic",
                "apiBaseUrl": api_base if api_base is not None else f"{oauth_server.url}/api",
            },
            default_scopes={"app": ["read"], "user": ["read"]},
        )
        make_link(connector, project, ["production"])
        oauth_server.add_client(client_id, method="client_secret_basic", secret=secret)
        return ProxyRig(
            server=oauth_server,
            team=team,
            project=project,
            connector=connector,
            installation=connector.installations.get(),
            client_id=client_id,
            client_secret=secret,
            bearer=make_credential(project),
            client=client,
        )

    return make


@pytest.fixture
def rig(make_proxy_rig: Callable[..., ProxyRig]) -> ProxyRig:
    return make_proxy_rig()
