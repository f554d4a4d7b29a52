"""OAuth tokens through the runtime API, against a strict authorization server on loopback.

Client credentials with each client authentication method, the provider token cached until it
is within the refresh margin, refresh-token rotation, ``invalid_grant``, provider outages and
timeouts, granted scopes, and RFC 7009 revocation. The provider is ``tests/fakes/oauth.py``:
it refuses the wrong authentication method, grant type or content type, and revokes the whole
grant when a rotated refresh token comes back, so a test that passes here never replayed one.
"""

import base64
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
import pytest
import requests
from django.db import connection
from django.test import Client
from django.utils import timezone

from connect.models import Connector, Grant, Installation, Project, Team, TokenIssue
from tests.api.wire import assert_error
from tests.fakes.oauth import IssuedGrant, OAuthFake

APP = {"type": "app"}
USER_ID = "user-42"
USER = {"type": "user", "id": USER_ID}
# Characters that only survive Basic authentication when form-encoded first (RFC 6749 2.3.1).
AWKWARD_SECRET_TAIL = "+/=%: é"

METHODS = [
    pytest.param("client_secret_basic", id="basic"),
    pytest.param("client_secret_post", id="post"),
    # The server fetches the connector's JWKS from the app, so the app must really serve.
    pytest.param(
        "private_key_jwt", id="private_key_jwt", marks=pytest.mark.django_db(transaction=True)
    ),
]


@dataclass
class Rig:
    """One team whose ``oauth/acme`` connector talks to the strict server, and a caller."""

    server: OAuthFake
    team: Team
    project: Project
    connector: Connector
    installation: Installation
    client_id: str
    bearer: str
    base_url: str | None  # a live server, or None for Django's test client
    client: Client

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if self.base_url is not None:
            return requests.request(
                method,
                self.base_url + path,
                json=body,
                headers={"Authorization": f"Bearer {self.bearer}"},
                timeout=30,
            )
        return self.client.generic(
            method,
            path,
            data=json.dumps(body) if body is not None else "",
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {self.bearer}",
        )

    def token(self, subject: dict[str, Any] = APP, **body: Any) -> Any:
        return self.call(
            "POST", f"/v1/connect/token/{self.connector.uid}", {"subject": subject, **body}
        )

    def revoke(self, subject: dict[str, Any]) -> Any:
        return self.call(
            "DELETE", f"/v1/connect/connectors/{self.connector.uid}/tokens", {"subject": subject}
        )

    def user_grant(
        self, *, scope: str = "read write", expires_in: timedelta = timedelta(seconds=60)
    ) -> tuple[Grant, IssuedGrant]:
        """A user grant as a finished consent leaves it, its access token due within the margin."""
        issued = self.server.grant_create(self.client_id, scope=scope)
        grant = Grant(
            installation=self.installation,
            subject_type=Grant.SubjectType.USER,
            subject_id=USER_ID,
            issuer=self.project.public_id,
            access_expires_at=timezone.now() + expires_in,
            scopes=scope.split(),
        )
        grant.seal("access_token", issued.access_token)
        grant.seal("refresh_token", issued.refresh_token)
        grant.save()
        return grant, issued


@pytest.fixture
def make_rig(
    request: pytest.FixtureRequest,
    client: Client,
    oauth_server: OAuthFake,
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
    make_credential: Callable[..., str],
) -> Callable[..., Rig]:
    def make(
        method: str = "client_secret_basic", *, scopes: tuple[str, ...] = ("read", "write")
    ) -> Rig:
        team = make_team()
        project = make_project(team)
        client_id = f"connect:{uuid.uuid4().hex[:12]}"
        secret = f"s3cr3t-{uuid.uuid4().hex}{AWKWARD_SECRET_TAIL}"
        connector = make_connector(
            team,
            uid="oauth/acme",
            type="oauth",
            client_id=client_id,
            secrets={} if method == "private_key_jwt" else {"client_secret": secret},
            config={
                "tokenEndpoint": oauth_server.token_endpoint,
                "revocationEndpoint": oauth_server.revocation_endpoint,
                "tokenEndpointAuthMethod": method,
            },
            default_scopes={"app": list(scopes), "user": list(scopes)},
        )
        make_link(connector, project, ["production"])
        base_url = None
        jwks_url = ""
        if method == "private_key_jwt":
            base_url = request.getfixturevalue("live_server").url
            jwks_url = f"{base_url}/connect/connectors/{connector.public_id}/jwks.json"
        oauth_server.add_client(
            client_id,
            method=method,
            secret="" if method == "private_key_jwt" else secret,
            jwks_url=jwks_url,
        )
        return Rig(
            server=oauth_server,
            team=team,
            project=project,
            connector=connector,
            installation=connector.installations.get(),
            client_id=client_id,
            bearer=make_credential(project),
            base_url=base_url,
            client=client,
        )

    return make


def fresh(grant: Grant) -> Grant:
    return Grant.objects.get(pk=grant.pk)


def snapshot(grant: Grant) -> dict[str, Any]:
    """Everything a refresh may change, read anew from the database."""
    row = fresh(grant)
    return {
        "access": row.access_token_sealed,
        "refresh": row.refresh_token_sealed,
        "access_expires_at": row.access_expires_at,
        "scopes": row.scopes,
        "status": row.status,
        "version": row.version,
    }


def committed_status(grant: Grant) -> str:
    """The grant's status as another connection sees it: only what was committed."""
    if connection.vendor != "postgresql":
        return fresh(grant).status
    db = connection.settings_dict
    with psycopg.connect(
        dbname=db["NAME"],
        user=db["USER"],
        password=db["PASSWORD"] or None,
        host=db["HOST"],
        port=db["PORT"] or None,
    ) as other:
        row = other.execute(
            f"SELECT status FROM {Grant._meta.db_table} WHERE id = %s",
            [grant.pk],
        ).fetchone()
    assert row is not None
    return str(row[0])


def millis_from_now(ms: int) -> float:
    return ms / 1000 - time.time()


# The fake is strict -------------------------------------------------------------------------


def test_the_strict_server_refuses_what_real_servers_refuse(
    oauth_server: OAuthFake,
) -> None:
    """If the fake were lenient, the tests below would prove nothing."""
    oauth_server.add_client("basic-client", method="client_secret_basic", secret="a+b c")
    oauth_server.add_client("post-client", method="client_secret_post", secret="pw")
    token_url = oauth_server.token_endpoint
    basic = "Basic " + base64.b64encode(b"basic-client:a%2Bb+c").decode()

    as_json = requests.post(
        token_url, json={"grant_type": "client_credentials"}, headers={"Authorization": basic}
    )
    assert (as_json.status_code, as_json.json()["error"]) == (400, "invalid_request")

    password = requests.post(
        token_url,
        data={"grant_type": "password", "username": "u", "password": "p"},
        headers={"Authorization": basic},
    )
    assert (password.status_code, password.json()["error"]) == (400, "unsupported_grant_type")

    unencoded = "Basic " + base64.b64encode(b"basic-client:a+b c").decode()
    wrong_encoding = requests.post(
        token_url, data={"grant_type": "client_credentials"}, headers={"Authorization": unencoded}
    )
    assert (wrong_encoding.status_code, wrong_encoding.json()["error"]) == (401, "invalid_client")

    basic_as_post = requests.post(
        token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": "basic-client",
            "client_secret": "a+b c",
        },
    )
    assert (basic_as_post.status_code, basic_as_post.json()["error"]) == (401, "invalid_client")

    post_as_basic = requests.post(
        token_url,
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic " + base64.b64encode(b"post-client:pw").decode()},
    )
    assert (post_as_basic.status_code, post_as_basic.json()["error"]) == (401, "invalid_client")

    both = requests.post(
        token_url,
        data={"grant_type": "client_credentials", "client_secret": "a+b c"},
        headers={"Authorization": basic},
    )
    assert (both.status_code, both.json()["error"]) == (400, "invalid_request")

    assert requests.get(token_url).status_code == 405

    good = requests.post(
        token_url, data={"grant_type": "client_credentials"}, headers={"Authorization": basic}
    )
    assert good.status_code == 200, good.text
    assert good.headers["Cache-Control"] == "no-store"

    # Rotation with reuse detection: the old refresh token kills the grant and its tokens.
    issued = oauth_server.grant_create("post-client", scope="read")
    refresh = {"client_id": "post-client", "client_secret": "pw", "grant_type": "refresh_token"}
    first = requests.post(token_url, data={**refresh, "refresh_token": issued.refresh_token})
    assert first.status_code == 200, first.text
    rotated = first.json()
    assert rotated["refresh_token"] != issued.refresh_token
    assert oauth_server.access_token_active(rotated["access_token"])
    replay = requests.post(token_url, data={**refresh, "refresh_token": issued.refresh_token})
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_grant")
    assert oauth_server.replays == 1
    assert not oauth_server.family(issued.family_id).active
    assert not oauth_server.access_token_active(rotated["access_token"])
    after = requests.post(token_url, data={**refresh, "refresh_token": rotated["refresh_token"]})
    assert (after.status_code, after.json()["error"]) == (400, "invalid_grant")

    stats = requests.get(oauth_server.stats_url).json()
    assert stats["calls"] == {
        "(none)": 1,  # the JSON body: no form, no grant type
        "password": 1,
        "client_credentials": 5,
        "refresh_token": 3,
    }
    assert stats["replays"] == 1
    assert stats["rejections"] == 9  # the GET included


# Client credentials ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_client_credentials_token_cached_until_within_the_margin(
    method: str, make_rig: Callable[..., Rig], settings: Any
) -> None:
    settings.CONNECT_REFRESH_MARGIN_SECONDS = 300
    rig = make_rig(method)
    rig.server.expires_in = 600

    first = rig.token()
    assert first.status_code == 200, first.content
    body = first.json()
    assert rig.server.calls == {"client_credentials": 1}
    assert rig.server.rejections == []
    assert rig.server.access_token_active(body["token"])
    assert body["tokenId"].startswith("stk_")
    assert body["connector"] == {
        "id": rig.connector.public_id,
        "uid": "oauth/acme",
        "type": "oauth",
        "name": "oauth/acme",
        "service": "oauth",
    }
    assert body["installationId"] == rig.installation.public_id
    assert 590 <= millis_from_now(body["expiresAt"]) <= 600
    (form,) = rig.server.forms
    assert form["scope"] == "read write"
    assert "refresh_token" not in form

    second = rig.token()
    assert second.status_code == 200, second.content
    assert second.json()["token"] == body["token"]
    assert second.json()["tokenId"] != body["tokenId"]
    assert second.json()["expiresAt"] == body["expiresAt"]
    assert rig.server.calls == {"client_credentials": 1}, "cached: no second provider call"

    # Its margin is a quarter of the 600 s it was granted for (150 s, under the configured
    # 300 s): outside it the token is still handed out, within it the next request mints anew.
    app_grant = Grant.objects.filter(installation=rig.installation, subject_type="app")
    app_grant.update(access_expires_at=timezone.now() + timedelta(seconds=160))
    still = rig.token()
    assert still.status_code == 200, still.content
    assert still.json()["token"] == body["token"]
    assert rig.server.calls == {"client_credentials": 1}, "outside its margin: no provider call"
    app_grant.update(access_expires_at=timezone.now() + timedelta(seconds=140))
    third = rig.token()
    assert third.status_code == 200, third.content
    assert third.json()["token"] != body["token"]
    assert third.json()["tokenId"] not in (body["tokenId"], second.json()["tokenId"])
    assert rig.server.calls == {"client_credentials": 2}
    assert rig.server.rejections == []

    grant = Grant.objects.get(installation=rig.installation, subject_type="app")
    assert grant.version == 2
    assert grant.reveal("access_token") == third.json()["token"]
    assert third.json()["token"] not in grant.access_token_sealed
    issues = TokenIssue.objects.filter(grant=grant).values_list("public_id", flat=True)
    assert set(issues) == {r.json()["tokenId"] for r in (first, second, still, third)}


def test_each_method_sends_only_its_own_credentials(make_rig: Callable[..., Rig]) -> None:
    """Basic puts nothing secret in the body; post puts the secret in the body only."""
    basic = make_rig("client_secret_basic")
    assert basic.token().status_code == 200
    (basic_form,) = basic.server.forms
    assert set(basic_form) == {"grant_type", "scope"}

    basic.server.forms.clear()
    post = make_rig("client_secret_post")
    assert post.token().status_code == 200
    (post_form,) = post.server.forms
    assert set(post_form) == {"grant_type", "scope", "client_id", "client_secret"}
    assert post_form["client_id"] == post.client_id
    assert post_form["client_secret"].endswith(AWKWARD_SECRET_TAIL)


def test_the_wrong_authentication_method_is_refused_by_the_provider(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig("client_secret_post")
    rig.server.add_client(rig.client_id, method="client_secret_basic", secret="whatever")

    response = rig.token()

    error = assert_error(response, 422, "no_token")
    assert error["vendor"]["error"] == "invalid_client"
    assert [r["error"] for r in rig.server.rejections] == ["invalid_client"]
    grant = Grant.objects.get(installation=rig.installation, subject_type="app")
    assert not grant.has_secret("access_token")
    assert grant.version == 0


@pytest.mark.parametrize(
    ("asked", "granted"),
    [(("read", "write"), "read"), ((".default",), "Mail.Read User.Read")],
    ids=["narrower", "default-expanded"],
)
def test_a_client_credentials_token_granted_otherwise_than_asked_is_still_cached(
    asked: tuple[str, ...], granted: str, make_rig: Callable[..., Rig]
) -> None:
    rig = make_rig(scopes=asked)
    rig.server.granted_scope = granted

    first = rig.token()
    assert first.status_code == 200, first.content
    assert rig.server.forms[0]["scope"] == " ".join(asked)
    grant = Grant.objects.get(installation=rig.installation, subject_type="app")
    assert set(grant.scopes) == {*asked, *granted.split()}

    # Asking the same again gets the same answer: the cached token, no second provider call.
    second = rig.token()
    assert second.status_code == 200, second.content
    assert second.json()["token"] == first.json()["token"]
    assert rig.server.calls == {"client_credentials": 1}


# Refreshing user grants -----------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_user_grant_inside_the_margin_is_refreshed_and_the_rotated_token_stored(
    method: str, make_rig: Callable[..., Rig]
) -> None:
    rig = make_rig(method)
    grant, issued = rig.user_grant()
    before = snapshot(grant)

    response = rig.token(USER)

    assert response.status_code == 200, response.content
    assert rig.server.calls == {"refresh_token": 1}
    assert rig.server.rejections == []
    family = rig.server.family(issued.family_id)
    new_access = response.json()["token"]
    assert new_access != issued.access_token
    assert family.access_tokens == {issued.access_token, new_access}
    assert rig.server.access_token_active(new_access)
    assert response.json()["externalSubject"] == USER_ID
    assert 3590 <= millis_from_now(response.json()["expiresAt"]) <= 3600
    assert rig.server.forms[0]["refresh_token"] == issued.refresh_token

    stored = fresh(grant)
    assert family.refresh_token != issued.refresh_token
    assert stored.reveal("refresh_token") == family.refresh_token, "the rotated token is kept"
    assert stored.reveal("access_token") == new_access
    for plaintext in (family.refresh_token, issued.refresh_token, new_access):
        assert plaintext not in stored.refresh_token_sealed + stored.access_token_sealed
    assert stored.refresh_token_sealed != before["refresh"]
    assert stored.version == before["version"] + 1
    assert stored.status == "active"

    # Fresh now: handed out from storage without the provider.
    again = rig.token(USER)
    assert again.json()["token"] == new_access
    assert rig.server.calls == {"refresh_token": 1}

    # Due again: the next refresh presents the rotated token, never the old one.
    Grant.objects.filter(pk=grant.pk).update(
        access_expires_at=timezone.now() + timedelta(seconds=5)
    )
    third = rig.token(USER)
    assert third.status_code == 200, third.content
    assert rig.server.calls == {"refresh_token": 2}
    assert rig.server.forms[1]["refresh_token"] == family.refresh_token
    assert rig.server.replays == 0
    assert rig.server.family(issued.family_id).active
    assert fresh(grant).version == before["version"] + 2


def test_a_response_without_a_refresh_token_keeps_the_old_one(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    grant, issued = rig.user_grant()
    rig.server.omit_refresh_token = True

    response = rig.token(USER)

    assert response.status_code == 200, response.content
    stored = fresh(grant)
    assert stored.reveal("refresh_token") == issued.refresh_token
    assert stored.reveal("access_token") == response.json()["token"] != issued.access_token

    # The kept token still works at the provider, which now rotates it.
    rig.server.omit_refresh_token = False
    Grant.objects.filter(pk=grant.pk).update(
        access_expires_at=timezone.now() + timedelta(seconds=5)
    )
    again = rig.token(USER)
    assert again.status_code == 200, again.content
    assert rig.server.calls == {"refresh_token": 2}
    assert [f["refresh_token"] for f in rig.server.forms] == [issued.refresh_token] * 2
    assert rig.server.rejections == []
    assert fresh(grant).reveal("refresh_token") == rig.server.family(issued.family_id).refresh_token


@pytest.mark.django_db(transaction=True)
def test_invalid_grant_marks_the_grant_needs_reauth_committed_then_no_token(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    grant, issued = rig.user_grant()
    rig.server.grant_revoke(issued.family_id)

    response = rig.token(USER)

    error = assert_error(response, 422, "invalid_grant")
    assert error["vendor"]["error"] == "invalid_grant"
    assert committed_status(grant) == "needs_reauth"
    assert rig.server.calls == {"refresh_token": 1}

    after = rig.token(USER)
    assert_error(after, 422, "no_token")
    assert rig.server.calls == {"refresh_token": 1}, "a dead grant is not tried again"
    assert Grant.objects.get(pk=grant.pk).reveal("refresh_token") == issued.refresh_token


def test_invalid_grant_leaves_the_installation_and_other_grants_alone(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    grant, issued = rig.user_grant()
    app = rig.token()
    assert app.status_code == 200, app.content
    rig.server.grant_revoke(issued.family_id)

    assert_error(rig.token(USER), 422, "invalid_grant")

    assert fresh(grant).status == "needs_reauth"
    rig.installation.refresh_from_db()
    assert rig.installation.status == "active"
    app_again = rig.token()
    assert app_again.status_code == 200
    assert app_again.json()["token"] == app.json()["token"]


@pytest.mark.parametrize("subject", [APP, USER], ids=["app", "user"])
def test_provider_500_is_provider_unavailable_and_the_grant_unchanged(
    subject: dict[str, Any], make_rig: Callable[..., Rig]
) -> None:
    rig = make_rig()
    grant, _ = rig.user_grant()
    rig.server.fail_status = 500
    before = snapshot(grant)

    response = rig.token(subject)

    assert_error(response, 502, "provider_unavailable")
    assert int(response.headers["Retry-After"]) >= 1
    assert snapshot(grant) == before
    expected = "client_credentials" if subject == APP else "refresh_token"
    assert rig.server.calls == {expected: 1}

    # The outage ends: the same refresh token still works.
    rig.server.fail_status = None
    recovered = rig.token(subject)
    assert recovered.status_code == 200, recovered.content
    assert rig.server.rejections == []
    assert rig.server.replays == 0


def test_a_hanging_provider_times_out_as_provider_unavailable(
    make_rig: Callable[..., Rig], settings: Any
) -> None:
    settings.CONNECT_PROVIDER_TIMEOUT_SECONDS = 1
    rig = make_rig()
    grant, _ = rig.user_grant()
    rig.server.hang_seconds = 8
    before = snapshot(grant)

    started = time.monotonic()
    response = rig.token(USER)
    elapsed = time.monotonic() - started

    assert_error(response, 502, "provider_unavailable")
    assert int(response.headers["Retry-After"]) >= 1
    assert 0.9 <= elapsed < 4, f"gave up after {elapsed:.2f}s, the timeout is 1 s"
    assert snapshot(grant) == before
    assert rig.server.calls == {"refresh_token": 1}


def test_refresh_reads_the_granted_scope_from_the_response(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    grant, _ = rig.user_grant(scope="read write")
    rig.server.granted_scope = "read"

    response = rig.token(USER, scopes=["read"])

    assert response.status_code == 200, response.content
    assert fresh(grant).scopes == ["read"]
    assert_error(rig.token(USER, scopes=["write"]), 400, "invalid_scope")


def test_a_refresh_answer_without_scope_keeps_the_grants_scopes(
    make_rig: Callable[..., Rig],
) -> None:
    """RFC 6749 5.1: no ``scope`` means the scope of the grant, not the subset a caller asked."""
    rig = make_rig()
    grant, _ = rig.user_grant(scope="read write")
    rig.server.omit_scope = True

    narrow = rig.token(USER, scopes=["read"])

    assert narrow.status_code == 200, narrow.content
    assert "scope" not in rig.server.forms[0]
    assert fresh(grant).scopes == ["read", "write"]
    wide = rig.token(USER, scopes=["write"])
    assert wide.status_code == 200, wide.content
    assert wide.json()["token"] == narrow.json()["token"]


# Revocation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_revoking_a_user_subject_revokes_at_the_provider_and_deletes_the_grant(
    method: str, make_rig: Callable[..., Rig]
) -> None:
    rig = make_rig(method)
    grant, issued = rig.user_grant(expires_in=timedelta(hours=1))

    response = rig.revoke(USER)

    assert response.status_code == 200, response.content
    assert response.json() == {
        "tokensFound": 1,
        "deleted": 1,
        "providerRevoked": 1,
        "providerSkipped": 0,
        "providerFailed": 0,
    }
    assert rig.server.rejections == []
    assert rig.server.revocations == [
        {
            "token": issued.refresh_token,
            "hint": "refresh_token",
            "client_id": rig.client_id,
            "known": True,
        }
    ]
    assert not rig.server.family(issued.family_id).active
    assert not rig.server.access_token_active(issued.access_token)
    assert not Grant.objects.filter(pk=grant.pk).exists()
    assert_error(rig.token(USER), 422, "user_authorization_required")


def test_a_failed_revocation_upstream_still_deletes_the_grant(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    grant, issued = rig.user_grant(expires_in=timedelta(hours=1))
    rig.server.revocation_status = 503

    response = rig.revoke(USER)

    assert response.status_code == 200, response.content
    assert response.json() == {
        "tokensFound": 1,
        "deleted": 1,
        "providerRevoked": 0,
        "providerSkipped": 0,
        "providerFailed": 1,
    }
    assert not Grant.objects.filter(pk=grant.pk).exists()
    assert rig.server.family(issued.family_id).active
