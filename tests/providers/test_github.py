"""The GitHub App driver against a strict GitHub fake: installs verified with the app JWT,
installation tokens minted on demand, user-to-server tokens with PKCE and refresh, revocation
through GitHub's own endpoints, and the failures."""

import time
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import Client
from django.utils import timezone

from connect.models import AuthorizationRequest, Connector, Grant, Installation
from tests.fakes.base import pkce_s256
from tests.fakes.github import GitHubFake
from tests.providers.conftest import GITHUB_APP_ID, GITHUB_UID, Tenant
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

UID = GITHUB_UID
APP = {"type": "app"}
USER = {"type": "user", "id": "u-1"}
APP_ID = GITHUB_APP_ID


@pytest.fixture
def connector(github_connector: Connector) -> Connector:
    return github_connector


def installed(tenant: Tenant) -> Installation:
    response = walk(Client(), tenant.api.install(UID))
    assert response.status_code == 200, response.content
    return Installation.objects.get(tenant_id="42")


def consented(tenant: Tenant) -> Grant:
    response = walk(Client(), tenant.api.consent(UID, "u-1"))
    assert response.status_code == 200, response.content
    return Grant.objects.get(subject_type="user", subject_id="u-1")


def test_install_is_proven_by_the_installer_then_verified_with_the_app_jwt(
    tenant: Tenant, connector: Connector, github: GitHubFake
) -> None:
    client = Client()
    started = tenant.api.install(UID)
    _, provider_url = install_page(client, started["url"])
    assert provider_url.startswith(f"{github.url}/apps/acme-bot/installations/new?")
    assert set(query_of(provider_url)) == {"state"}
    query = at_provider(provider_url)
    assert query_of("?" + query)["setup_action"] == "install"

    done = callback(client, query)

    assert done.status_code == 200, done.content
    assert "Installed for <strong>acme</strong>" in done.content.decode()
    # The installer's code became a user token (no PKCE: the install page takes none) ...
    [exchange] = github.calls_to("POST", "/login/oauth/access_token")
    form = exchange.form()
    assert form["code"] == query_of("?" + query)["code"]
    assert "code_verifier" not in form
    [installer] = github.issued
    # ... that proved its holder may see installation 42, then was revoked, before the app
    # asked about the installation with its own JWT.
    [proof] = github.calls_to("GET", "/api/v3/user/installations/42/repositories")
    assert proof.query == {"per_page": "1"}
    assert proof.headers["Authorization"] == f"Bearer {installer['access_token']}"
    [revocation] = github.calls_to("DELETE", f"/api/v3/applications/{github.client_id}/token")
    assert revocation.json() == {"access_token": installer["access_token"]}
    assert github.access_family(installer["access_token"]) is None
    [app_check] = github.calls_to("GET", "/api/v3/app/installations/42")
    order = [github.calls.index(c) for c in (exchange, proof, revocation, app_check)]
    assert order == sorted(order)
    [claims] = github.jwts
    assert claims["iss"] == APP_ID
    assert claims["exp"] - claims["iat"] <= 600
    assert claims["exp"] > time.time()
    installation = Installation.objects.get(connector=connector)
    assert installation.tenant_id == "42"
    assert installation.display_name == "acme"
    assert installation.metadata == {
        "account": "acme",
        "accountId": "9000",
        "accountType": "Organization",
        "setupAction": "install",
    }
    # Installation tokens are minted on demand, not at install time.
    assert github.token_requests == []
    assert not Grant.objects.filter(installation=installation).exists()
    assert flow_request(started).outcome == "completed"


def test_an_installation_token_is_minted_then_served_from_the_grant(
    tenant: Tenant, connector: Connector, github: GitHubFake
) -> None:
    installation = installed(tenant)

    response = tenant.api.token(UID, APP)

    assert response.status_code == 200, response.content
    [_installer_token, minted] = github.issued
    assert response.json()["token"] == minted["token"]
    assert minted["token"].startswith("ghs_")
    assert response.json()["installationId"] == installation.public_id
    assert response.json()["tenantId"] == "42"
    expires_in = response.json()["expiresAt"] / 1000 - time.time()
    assert 3500 < expires_in <= 3600
    assert github.token_requests == [{}]  # no down-scoping asked: the whole installation
    again = tenant.api.token(UID, APP)
    assert again.json()["token"] == minted["token"]
    assert len(github.token_requests) == 1


def test_an_expired_installation_token_is_minted_anew(
    tenant: Tenant, connector: Connector, github: GitHubFake
) -> None:
    installed(tenant)
    first = tenant.api.token(UID, APP).json()["token"]
    Grant.objects.filter(subject_type="app").update(
        access_expires_at=timezone.now() - timedelta(seconds=1)
    )

    response = tenant.api.token(UID, APP)

    assert response.status_code == 200, response.content
    assert response.json()["token"] == github.issued[-1]["token"] != first
    assert len(github.token_requests) == 2
    assert len(github.jwts) == 3  # install check, and one per mint


def test_revoking_the_app_deletes_its_installation_token(
    tenant: Tenant, connector: Connector, github: GitHubFake
) -> None:
    installation = installed(tenant)
    token = tenant.api.token(UID, APP).json()["token"]

    response = tenant.api.revoke(UID, APP)

    assert response.status_code == 200, response.content
    assert response.json() == {
        "tokensFound": 1,
        "deleted": 1,
        "providerRevoked": 1,
        "providerSkipped": 0,
        "providerFailed": 0,
    }
    [call] = github.calls_to("DELETE", "/api/v3/installation/token")
    assert call.headers["Authorization"] == f"Bearer {token}"
    assert github.access_family(token) is None
    installation.refresh_from_db()
    assert installation.status == "active"
    # The app key stays: the next request mints a new token.
    fresh = tenant.api.token(UID, APP)
    assert fresh.status_code == 200, fresh.content
    assert fresh.json()["token"] != token


def test_an_installation_of_another_app_is_refused(
    tenant: Tenant, connector: Connector, github: GitHubFake
) -> None:
    github.next_installation = "999"  # not this app's: GitHub shows its user no such thing
    started = tenant.api.install(UID)

    response = walk(Client(), started)

    assert_refused_page(response, "We could not confirm your organization")
    assert github.calls_to("GET", "/api/v3/app/installations/999") == []
    assert flow_request(started).outcome == "failed"
    assert len(flow_events(started, "authorization.failed")) == 1
    assert not Installation.objects.filter(connector=connector).exists()


def test_a_jwt_signed_with_the_wrong_key_is_refused(
    tenant: Tenant, connector: Connector, github: GitHubFake, rsa_private_pem: str
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    connector.seal(
        "private_key",
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    )
    connector.save()
    started = tenant.api.install(UID)

    response = walk(Client(), started)

    assert_refused_page(response, "The provider did not complete the authorization")
    assert github.jwts == []
    assert any("app JWT" in r for r in github.rejections), github.rejections
    assert not Installation.objects.filter(connector=connector).exists()


def test_user_consent_uses_pkce_and_names_the_github_user(
    tenant: Tenant, connector: Connector, github: GitHubFake
) -> None:
    installation = installed(tenant)
    client = Client()
    started = tenant.api.consent(UID, "u-1")
    _, provider_url = install_page(client, started["url"])
    assert provider_url.startswith(f"{github.url}/login/oauth/authorize?")
    asked = query_of(provider_url)
    assert asked["client_id"] == github.client_id
    assert asked["redirect_uri"] == callback_url()
    assert asked["code_challenge_method"] == "S256"

    done = callback(client, at_provider(provider_url))

    assert done.status_code == 200, done.content
    [_install, exchange] = github.calls_to("POST", "/login/oauth/access_token")
    form = exchange.form()
    assert pkce_s256(form["code_verifier"]) == asked["code_challenge"]
    assert form["client_secret"] == github.client_secret
    assert form["redirect_uri"] == callback_url()
    assert exchange.headers["Accept"] == "application/json"
    [_installer_token, answer] = github.issued
    grant = Grant.objects.get(subject_type="user", subject_id="u-1")
    assert grant.installation == installation
    assert grant.external_subject == "octocat"
    assert grant.reveal("access_token") == answer["access_token"]
    assert grant.reveal("refresh_token") == answer["refresh_token"]
    assert grant.refresh_expires_at is not None
    assert grant.refresh_expires_at > timezone.now() + timedelta(days=180)

    response = tenant.api.token(UID, USER)
    assert response.status_code == 200, response.content
    assert response.json()["token"] == answer["access_token"]


def test_a_user_token_refreshes_with_rotation_and_is_revoked_by_access_token(
    tenant: Tenant, connector: Connector, github: GitHubFake
) -> None:
    installed(tenant)
    grant = consented(tenant)
    first_refresh = grant.reveal("refresh_token")
    Grant.objects.filter(pk=grant.pk).update(
        access_expires_at=timezone.now() - timedelta(minutes=1)
    )

    refreshed = tenant.api.token(UID, USER)

    assert refreshed.status_code == 200, refreshed.content
    answer = github.issued[-1]
    assert refreshed.json()["token"] == answer["access_token"]
    refresh_form = github.calls_to("POST", "/login/oauth/access_token")[-1].form()
    assert refresh_form["grant_type"] == "refresh_token"
    assert refresh_form["refresh_token"] == first_refresh
    grant.refresh_from_db()
    assert grant.reveal("refresh_token") == answer["refresh_token"] != first_refresh

    revoked = tenant.api.revoke(UID, USER)

    assert revoked.status_code == 200, revoked.content
    assert revoked.json()["providerRevoked"] == 1, revoked.json()
    assert revoked.json()["deleted"] == 1
    [_installer, call] = github.calls_to("DELETE", f"/api/v3/applications/{github.client_id}/token")
    assert call.json() == {"access_token": answer["access_token"]}
    assert github.access_family(answer["access_token"]) is None
    assert not Grant.objects.filter(subject_type="user").exists()


def test_a_denied_consent_is_recorded(
    tenant: Tenant, connector: Connector, github: GitHubFake
) -> None:
    installed(tenant)
    github.deny = True
    started = tenant.api.consent(UID, "u-1")

    response = walk(Client(), started)

    assert_refused_page(response, "Authorization was declined")
    assert flow_request(started).outcome == AuthorizationRequest.Outcome.DENIED
    [event] = flow_events(started, "authorization.failed")
    assert event.fields == {"outcome": "denied", "error": "access_denied"}
    # Only the install's own exchange: nothing for the declined consent.
    assert len(github.calls_to("POST", "/login/oauth/access_token")) == 1
    assert not Grant.objects.filter(subject_type="user").exists()


def test_an_expired_code_fails_the_consent(
    tenant: Tenant, connector: Connector, github: GitHubFake
) -> None:
    installed(tenant)
    client = Client()
    started = tenant.api.consent(UID, "u-1")
    _, provider_url = install_page(client, started["url"])
    query = at_provider(provider_url)
    github.expire_codes()

    response = callback(client, query)

    assert_refused_page(response, "The provider did not complete the authorization")
    request = flow_request(started)
    assert request.outcome == "failed"
    assert "bad_verification_code" in request.error
    assert not Grant.objects.filter(subject_type="user").exists()


def test_a_dead_refresh_token_answers_invalid_grant(
    tenant: Tenant, connector: Connector, github: GitHubFake
) -> None:
    installed(tenant)
    grant = consented(tenant)
    github.revoke_all()
    Grant.objects.filter(pk=grant.pk).update(
        access_expires_at=timezone.now() - timedelta(minutes=1)
    )

    response = tenant.api.token(UID, USER)

    assert response.status_code == 422, response.content
    assert error_code(response) == "invalid_grant"
    assert response.json()["error"]["vendor"]["error"] == "bad_refresh_token"
    grant.refresh_from_db()
    assert grant.status == "needs_reauth"
    assert error_code(tenant.api.token(UID, USER)) == "no_token"
