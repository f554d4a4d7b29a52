"""The custom OAuth driver against the strict generic server with its authorization endpoint:
user consent with PKCE under each client authentication method (and as a public client), an
app install through the code flow, client credentials, refresh with rotation, RFC 7009
revocation, and the failures."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from connect.models import AuthorizationRequest, Connector, Grant, Installation
from tests.fakes.base import pkce_s256
from tests.fakes.oauth import OAuthFake
from tests.providers.conftest import Tenant
from tests.providers.flow import (
    assert_refused_page,
    at_provider,
    callback,
    callback_url,
    error_code,
    flow_events,
    flow_request,
    install_page,
    query_of,
    walk,
)

UID = "oauth/acme"
APP = {"type": "app"}
USER = {"type": "user", "id": "u-1"}
CLIENT_ID = "acme-client"
SECRET = "s3cr3t+/=%: é"


@pytest.fixture
def server(oauth_server: OAuthFake) -> OAuthFake:
    return oauth_server


@pytest.fixture
def make_oauth(
    tenant: Tenant, make_linked_connector: Callable[..., Connector], server: OAuthFake
) -> Callable[..., Connector]:
    """The ``oauth/acme`` connector, registered at the server with one authentication method."""

    def make(method: str = "client_secret_basic", **config: Any) -> Connector:
        server.add_client(
            CLIENT_ID, method=method, secret="" if method == "none" else SECRET, scopes=("api",)
        )
        server.register_redirect(CLIENT_ID, callback_url())
        return make_linked_connector(
            tenant,
            uid=UID,
            type="oauth",
            client_id=CLIENT_ID,
            secrets={} if method == "none" else {"client_secret": SECRET},
            config={
                "authorizationEndpoint": server.authorization_endpoint,
                "tokenEndpoint": server.token_endpoint,
                "revocationEndpoint": server.revocation_endpoint,
                "tokenEndpointAuthMethod": method,
                **config,
            },
            default_scopes={"app": ["api"], "user": ["read", "write"]},
        )

    return make


def consented(tenant: Tenant) -> Grant:
    response = walk(Client(), tenant.api.consent(UID, "u-1"))
    assert response.status_code == 200, response.content
    return Grant.objects.get(subject_type="user", subject_id="u-1")


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post", "none"])
def test_user_consent_with_pkce_under_each_client_authentication(
    tenant: Tenant,
    make_oauth: Callable[..., Connector],
    server: OAuthFake,
    method: str,
) -> None:
    connector = make_oauth(method)
    client = Client()
    started = tenant.api.consent(UID, "u-1")
    _, provider_url = install_page(client, started["url"])
    asked = query_of(provider_url)
    assert asked == {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": callback_url(),
        "state": asked["state"],
        "scope": "read write",
        "code_challenge": asked["code_challenge"],
        "code_challenge_method": "S256",
    }

    done = callback(client, at_provider(provider_url))

    assert done.status_code == 200, done.content
    assert server.rejections == []
    [form] = server.forms
    assert form["grant_type"] == "authorization_code"
    assert pkce_s256(form["code_verifier"]) == asked["code_challenge"]
    assert ("client_secret" in form) == (method == "client_secret_post")
    [answer] = server.issued
    grant = Grant.objects.get(subject_type="user", subject_id="u-1")
    assert grant.installation == Installation.objects.get(connector=connector)
    assert grant.reveal("access_token") == answer["access_token"]
    assert grant.reveal("refresh_token") == answer["refresh_token"]
    assert grant.scopes == ["read", "write"]
    assert flow_request(started).outcome == "completed"

    response = tenant.api.token(UID, USER)
    assert response.status_code == 200, response.content
    assert response.json()["token"] == answer["access_token"]


def test_the_scope_the_server_granted_is_the_grant_s(
    tenant: Tenant, make_oauth: Callable[..., Connector], server: OAuthFake
) -> None:
    make_oauth()
    server.granted_scope = "read"  # servers may grant less and say so only in the answer

    grant = consented(tenant)

    assert grant.scopes == ["read"]
    beyond = tenant.api.token(UID, USER, scopes=["write"])
    assert error_code(beyond) == "invalid_scope"
    within = tenant.api.token(UID, USER, scopes=["read"])
    assert within.status_code == 200, within.content


def test_an_app_install_through_the_code_flow(
    tenant: Tenant, make_oauth: Callable[..., Connector], server: OAuthFake
) -> None:
    connector = make_oauth()
    started = tenant.api.install(UID)

    response = walk(Client(), started)

    assert response.status_code == 200, response.content
    assert "Installed" in response.content.decode()
    [answer] = server.issued
    installation = Installation.objects.get(connector=connector)
    grant = Grant.objects.get(installation=installation, subject_type="app")
    assert grant.reveal("access_token") == answer["access_token"]
    assert grant.scopes == ["api"]
    token = tenant.api.token(UID, APP)
    assert token.json()["token"] == answer["access_token"]
    assert server.calls == {"authorization_code": 1}


def test_without_an_install_the_app_token_comes_from_client_credentials(
    tenant: Tenant, make_oauth: Callable[..., Connector], server: OAuthFake
) -> None:
    make_oauth("client_secret_post")

    response = tenant.api.token(UID, APP)

    assert response.status_code == 200, response.content
    assert server.calls == {"client_credentials": 1}
    assert server.forms[-1]["scope"] == "api"
    assert server.access_token_active(response.json()["token"])


def test_an_expired_user_token_is_refreshed_with_rotation(
    tenant: Tenant, make_oauth: Callable[..., Connector], server: OAuthFake
) -> None:
    make_oauth()
    grant = consented(tenant)
    first_refresh = grant.reveal("refresh_token")
    Grant.objects.filter(pk=grant.pk).update(
        access_expires_at=timezone.now() - timedelta(minutes=1)
    )

    response = tenant.api.token(UID, USER)

    assert response.status_code == 200, response.content
    assert server.calls == {"authorization_code": 1, "refresh_token": 1}
    assert server.forms[-1]["refresh_token"] == first_refresh
    grant.refresh_from_db()
    assert grant.reveal("refresh_token") != first_refresh
    assert server.access_token_active(response.json()["token"])
    assert server.replays == 0


def test_revoking_a_user_revokes_its_refresh_token_per_rfc_7009(
    tenant: Tenant, make_oauth: Callable[..., Connector], server: OAuthFake
) -> None:
    make_oauth()
    grant = consented(tenant)
    refresh, access = grant.reveal("refresh_token"), grant.reveal("access_token")

    response = tenant.api.revoke(UID, USER)

    assert response.status_code == 200, response.content
    assert response.json() == {
        "tokensFound": 1,
        "deleted": 1,
        "providerRevoked": 1,
        "providerSkipped": 0,
        "providerFailed": 0,
    }
    assert server.revocations == [
        {"token": refresh, "hint": "refresh_token", "client_id": CLIENT_ID, "known": True}
    ]
    assert not server.access_token_active(access)
    assert not Grant.objects.filter(subject_type="user").exists()


def test_a_denied_consent_is_recorded(
    tenant: Tenant, make_oauth: Callable[..., Connector], server: OAuthFake
) -> None:
    make_oauth()
    server.deny = True
    started = tenant.api.consent(UID, "u-1")

    response = walk(Client(), started)

    assert_refused_page(response, "Authorization was declined")
    assert flow_request(started).outcome == AuthorizationRequest.Outcome.DENIED
    [event] = flow_events(started, "authorization.failed")
    assert event.fields["outcome"] == "denied"
    assert server.calls == {}
    assert not Grant.objects.filter(subject_type="user").exists()


def test_the_wrong_client_authentication_method_fails_the_exchange(
    tenant: Tenant, make_oauth: Callable[..., Connector], server: OAuthFake
) -> None:
    connector = make_oauth("client_secret_basic")
    connector.config = {**connector.config, "tokenEndpointAuthMethod": "client_secret_post"}
    connector.save()
    started = tenant.api.consent(UID, "u-1")

    response = walk(Client(), started)

    assert_refused_page(response, "The provider did not complete the authorization")
    assert server.rejections[-1]["error"] == "invalid_client"
    assert "registered for client_secret_basic" in server.rejections[-1]["description"]
    request = flow_request(started)
    assert request.outcome == "failed"
    assert "invalid_client" in request.error
    assert not Grant.objects.exists()


def test_a_dead_refresh_token_answers_invalid_grant(
    tenant: Tenant, make_oauth: Callable[..., Connector], server: OAuthFake
) -> None:
    make_oauth()
    grant = consented(tenant)
    family = next(iter(server._families))
    server.grant_revoke(family)
    Grant.objects.filter(pk=grant.pk).update(
        access_expires_at=timezone.now() - timedelta(minutes=1)
    )

    response = tenant.api.token(UID, USER)

    assert response.status_code == 422, response.content
    assert error_code(response) == "invalid_grant"
    assert response.json()["error"]["vendor"]["error"] == "invalid_grant"
    grant.refresh_from_db()
    assert grant.status == "needs_reauth"
