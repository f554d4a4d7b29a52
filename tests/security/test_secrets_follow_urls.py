"""Secrets follow their URLs (issue 8, point 15).

A member may write a connector's configuration but never read its secrets. Pointing the token
endpoint (or any URL that receives a secret or a token) at their own server must not make the
app send them what they cannot read: the secrets that went to the old URL are cleared unless
typed again in the same save, and grants' tokens are neither refreshed nor revoked through a
URL that changed after they were issued. The attacker's server here is a real HTTP server on
loopback that records every byte it is sent.
"""

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from connect.models import (
    AuditEvent,
    Connector,
    ConnectorType,
    Grant,
    Installation,
    Project,
    Role,
    Team,
)
from connect.providers import PROVIDERS
from connect.services.connectors import connector_save
from connect.services.installations import installation_remove
from tests.admin.pages import form_data
from tests.api.wire import assert_error, delete_json, post_json
from tests.fakes.oauth import IssuedGrant, OAuthFake

SECRET = "cs-Zq8Lw3Rt6Yp1-acme"
USER = {"type": "user", "id": "user-42"}


class EvilServer:
    """The member's own server: it records everything and answers like a token endpoint."""

    def __init__(self) -> None:
        self.received: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace")
                owner.received.append(f"{self.command} {self.path}\n{self.headers}\n{body}")
                answer = json.dumps(
                    {"access_token": "evil-at", "refresh_token": "evil-rt", "expires_in": 3600}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST
            do_DELETE = do_POST

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def everything(self) -> str:
        return "\n\n".join(self.received)


@pytest.fixture
def evil() -> Iterator[EvilServer]:
    server = EvilServer()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@dataclass
class Rig:
    server: OAuthFake
    connector: Connector
    installation: Installation
    member: Client
    bearer: str

    def change_url(self) -> str:
        return reverse("admin:connect_connector_change", args=[self.connector.pk])

    def member_saves_config(self, **changes: str) -> Any:
        """The member edits the configuration in the admin, leaving the secret inputs blank."""
        data = form_data(self.member.get(self.change_url()), "connector_form")
        data.update({f"cfg_{key}": [value] for key, value in changes.items()})
        response = self.member.post(self.change_url(), data, follow=True)
        assert response.redirect_chain, response.content.decode()[:2000]
        self.connector.refresh_from_db()
        return response

    def user_grant(self) -> tuple[Grant, IssuedGrant]:
        """A user's grant from a finished consent, its access token due for a refresh."""
        issued = self.server.grant_create(self.connector.client_id, scope="read")
        grant = Grant(
            installation=self.installation,
            subject_type=Grant.SubjectType.USER,
            subject_id=USER["id"],
            issuer=self.connector.team.projects.get().public_id,
            access_expires_at=timezone.now() + timedelta(seconds=30),
            scopes=["read"],
        )
        grant.seal("access_token", issued.access_token)
        grant.seal("refresh_token", issued.refresh_token)
        grant.save()
        return grant, issued

    def token(self, subject: dict[str, Any]) -> Any:
        return post_json(
            Client(),
            f"/v1/connect/token/{self.connector.uid}",
            {"subject": subject},
            HTTP_AUTHORIZATION=f"Bearer {self.bearer}",
        )


@pytest.fixture
def rig(
    oauth_server: OAuthFake,
    make_team: Callable[..., Team],
    make_member: Callable[..., User],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
    make_credential: Callable[..., str],
) -> Rig:
    team = make_team(slug="acme")
    project = make_project(team)
    connector = make_connector(
        team,
        uid="oauth/acme",
        type=ConnectorType.OAUTH,
        client_id="acme-client",
        secrets={"client_secret": SECRET},
        config={
            "authorizationEndpoint": f"{oauth_server.url}/authorize",
            "tokenEndpoint": oauth_server.token_endpoint,
            "revocationEndpoint": oauth_server.revocation_endpoint,
            "tokenEndpointAuthMethod": "client_secret_post",
        },
        default_scopes={"app": ["read"], "user": ["read"]},
    )
    oauth_server.add_client("acme-client", method="client_secret_post", secret=SECRET)
    make_link(connector, project, ["production"])
    member = Client()
    member.force_login(make_member(team, Role.MEMBER))
    return Rig(
        server=oauth_server,
        connector=connector,
        installation=connector.installations.get(),
        member=member,
        bearer=make_credential(project),
    )


# The attack --------------------------------------------------------------------------------------


def test_member_pointing_the_token_endpoint_at_their_server_receives_no_secret_or_token(
    rig: Rig, evil: EvilServer
) -> None:
    grant, issued = rig.user_grant()

    rig.member_saves_config(tokenEndpoint=f"{evil.url}/token")
    # A deployment then asks for the user's token (due for a refresh) and for an app token.
    user_answer = rig.token(USER)
    rig.token({"type": "app"})

    received = evil.everything()
    assert SECRET not in received
    assert issued.refresh_token not in received
    assert issued.access_token not in received
    assert "refresh_token" not in received  # not even someone else's
    # The user's grant waits for a new consent instead; nothing was spent at the real server.
    assert_error(user_answer, 422, "invalid_grant")
    grant.refresh_from_db()
    assert grant.status == Grant.Status.NEEDS_REAUTH
    assert rig.server.family(issued.family_id).active
    assert rig.server.calls.get("refresh_token", 0) == 0


def test_member_pointing_the_revocation_endpoint_at_their_server_receives_no_token(
    rig: Rig, evil: EvilServer
) -> None:
    _, issued = rig.user_grant()

    rig.member_saves_config(revocationEndpoint=f"{evil.url}/revoke")
    answer = delete_json(
        Client(),
        f"/v1/connect/connectors/{rig.connector.uid}/tokens",
        {"subject": USER},
        HTTP_AUTHORIZATION=f"Bearer {rig.bearer}",
    )

    assert answer.status_code == 200, answer.content
    assert answer.json()["providerSkipped"] == 1
    received = evil.everything()
    assert SECRET not in received
    assert issued.refresh_token not in received
    assert issued.access_token not in received


def test_uninstalling_after_a_revocation_endpoint_change_sends_it_no_token(
    rig: Rig, evil: EvilServer
) -> None:
    _, issued = rig.user_grant()

    rig.member_saves_config(revocationEndpoint=f"{evil.url}/revoke")
    installation_remove(installation=rig.installation, actor="test", delete=False)

    received = evil.everything()
    assert issued.refresh_token not in received
    assert issued.access_token not in received
    assert SECRET not in received


def test_changing_the_token_endpoint_clears_the_secret_unless_typed_again(rig: Rig) -> None:
    response = rig.member_saves_config(tokenEndpoint="https://idp.example/token")

    assert not rig.connector.has_secret("client_secret")
    assert "Cleared, because an address it is sent to changed: Client secret." in (
        response.content.decode()
    )
    assert AuditEvent.objects.filter(type="connector.updated").latest("created_at").fields[
        "secretsCleared"
    ] == ["client_secret"]

    # Whoever knows the secret types it in the same save as the new URL: it stays.
    data = form_data(rig.member.get(rig.change_url()), "connector_form")
    data["cfg_tokenEndpoint"] = ["https://b.example/t"]
    data["client_secret"] = ["cs-for-the-new-server"]
    assert rig.member.post(rig.change_url(), data).status_code == 302
    rig.connector.refresh_from_db()
    assert rig.connector.reveal("client_secret") == "cs-for-the-new-server"


# Legitimate moves keep working -------------------------------------------------------------


def test_after_a_real_move_new_tokens_refresh_at_the_new_server_and_old_ones_never_go_there(
    rig: Rig,
) -> None:
    rig.user_grant()
    with OAuthFake() as moved:
        moved.add_client("acme-client", method="client_secret_post", secret="cs-moved")
        # Someone who has the new server's secret moves the connector, typing it in one save.
        data = form_data(rig.member.get(rig.change_url()), "connector_form")
        data["cfg_tokenEndpoint"] = [moved.token_endpoint]
        data["cfg_revocationEndpoint"] = [moved.revocation_endpoint]
        data["client_secret"] = ["cs-moved"]
        assert rig.member.post(rig.change_url(), data).status_code == 302

        # The old server's refresh token is not offered to the new one...
        assert_error(rig.token(USER), 422, "invalid_grant")
        assert moved.calls.get("refresh_token", 0) == 0

        # ...and once the user has tokens from the new server (imported here), they refresh.
        issued = moved.grant_create("acme-client", scope="read")
        imported = post_json(
            Client(),
            f"/v1/connect/token/{rig.connector.uid}/import",
            {
                "tokens": [
                    {
                        "accessToken": issued.access_token,
                        "refreshToken": issued.refresh_token,
                        "expiresAt": int((timezone.now().timestamp() + 30) * 1000),
                        "subject": USER,
                        "scopes": ["read"],
                    }
                ]
            },
            HTTP_AUTHORIZATION=f"Bearer {rig.bearer}",
        )
        assert imported.json()["imported"] == 1, imported.content
        answer = rig.token(USER)

        assert answer.status_code == 200, answer.content
        assert moved.calls["refresh_token"] == 1
        assert answer.json()["token"] != issued.access_token
    # The old server's refresh token was not spent anywhere.
    assert rig.server.calls.get("refresh_token", 0) == 0


# Every driver declares what its URLs receive, and a save honours it --------------------------


def distinct(value: object) -> str:
    return f"https://moved.example/{value}"


@pytest.mark.parametrize("kind", [k for k, p in PROVIDERS.items() if p.url_config_keys])
def test_changing_each_url_clears_exactly_the_secrets_it_receives(
    db: None, make_team: Callable[..., Team], kind: str
) -> None:
    team = make_team()
    provider = PROVIDERS[kind]
    secrets = {name: f"{name}-value" for name in Connector.SEALED_FIELDS}
    for key, receives in provider.url_config_keys.items():
        connector = Connector(
            team=team, uid=f"{kind}/{key.lower()}", type=kind, service=kind, name=key
        )
        for name, value in secrets.items():
            connector.seal(name, value)
        connector_save(connector=connector, actor="test")

        connector.config = {**connector.config, key: distinct(key)}
        connector_save(connector=connector, actor="test")

        connector.refresh_from_db()
        kept = {name for name in secrets if connector.has_secret(name)}
        cleared = set(secrets) - kept
        assert cleared == receives & set(secrets), key
        for name in kept:
            assert connector.reveal(name) == secrets[name]


def test_changing_the_type_counts_as_changing_every_url(
    db: None, make_team: Callable[..., Team], make_connector: Callable[..., Connector]
) -> None:
    # "tokenEndpoint" means nothing to Slack, so it was stored unchecked; as an OAuth
    # connector the same value would receive the secret typed for slack.com.
    connector = make_connector(
        make_team(),
        uid="slack/acme",
        type=ConnectorType.SLACK,
        secrets={"client_secret": SECRET},
        config={"tokenEndpoint": "https://evil.example/token"},
    )

    connector.type = ConnectorType.OAUTH
    connector_save(connector=connector, actor="test")

    connector.refresh_from_db()
    assert not connector.has_secret("client_secret")


def test_a_private_key_jwt_connector_gets_a_new_key_when_its_token_endpoint_moves(
    db: None, make_team: Callable[..., Team], make_connector: Callable[..., Connector]
) -> None:
    connector = make_connector(
        make_team(),
        uid="oauth/jwt",
        type=ConnectorType.OAUTH,
        config={
            "tokenEndpoint": "https://idp.example/token",
            "tokenEndpointAuthMethod": "private_key_jwt",
        },
    )
    key_id = connector.config["clientAssertionKeyId"]
    private_key = connector.reveal("private_key")

    connector.config = {**connector.config, "tokenEndpoint": "https://evil.example/token"}
    connector_save(connector=connector, actor="test")

    # Assertions the new URL receives are signed with a key the old server never trusted.
    connector.refresh_from_db()
    assert connector.reveal("private_key") not in ("", private_key)
    assert connector.config["clientAssertionKeyId"] != key_id
