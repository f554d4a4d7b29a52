"""The Linear driver against a strict Linear fake: installs acting as the app (``actor=app``),
user consent (``actor=user``), PKCE, the organization read over GraphQL, refresh with rotation,
revocation, and the failures."""

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from connect.models import AuthorizationRequest, Connector, Grant, Installation
from tests.fakes.base import pkce_s256
from tests.fakes.linear import LinearFake
from tests.providers.conftest import Tenant, fake_kwargs, running
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

UID = "linear/acme"
APP = {"type": "app"}
USER = {"type": "user", "id": "u-1"}
ORG = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"


@pytest.fixture
def linear() -> Iterator[LinearFake]:
    yield from running(LinearFake(**fake_kwargs("2b9e0c4d6f8a1b3c5d7e9f0a")))  # type: ignore[misc]


@pytest.fixture
def connector(
    tenant: Tenant, make_linked_connector: Callable[..., Connector], linear: LinearFake
) -> Connector:
    return make_linked_connector(
        tenant,
        uid=UID,
        type="linear",
        client_id=linear.client_id,
        secrets={"client_secret": linear.client_secret},
        config={"baseUrl": linear.url, "apiBaseUrl": linear.api_url},
        default_scopes={"app": ["read", "write"], "user": ["read"]},
    )


def installed(tenant: Tenant) -> Installation:
    response = walk(Client(), tenant.api.install(UID))
    assert response.status_code == 200, response.content
    return Installation.objects.get(tenant_id=ORG)


def test_install_acts_as_the_app_in_the_organization(
    tenant: Tenant, connector: Connector, linear: LinearFake
) -> None:
    client = Client()
    started = tenant.api.install(UID)
    _, provider_url = install_page(client, started["url"])
    assert provider_url.startswith(f"{linear.url}/oauth/authorize?")
    asked = query_of(provider_url)
    assert asked == {
        "response_type": "code",
        "client_id": linear.client_id,
        "redirect_uri": callback_url(),
        "state": asked["state"],
        "scope": "read,write",
        "code_challenge": asked["code_challenge"],
        "code_challenge_method": "S256",
        "actor": "app",
        "prompt": "consent",
    }

    done = callback(client, at_provider(provider_url))

    assert done.status_code == 200, done.content
    assert "Installed for <strong>Acme</strong>" in done.content.decode()
    [exchange] = linear.calls_to("POST", "/api/oauth/token")
    form = exchange.form()
    assert form["grant_type"] == "authorization_code"
    assert form["redirect_uri"] == callback_url()
    assert pkce_s256(form["code_verifier"]) == asked["code_challenge"]
    assert form["client_secret"] == linear.client_secret
    [answer] = linear.issued
    [graphql] = linear.calls_to("POST", "/api/graphql")
    assert graphql.headers["Authorization"] == f"Bearer {answer['access_token']}"
    installation = Installation.objects.get(connector=connector)
    assert installation.tenant_id == ORG
    assert installation.display_name == "Acme"
    assert installation.metadata == {"urlKey": "acme"}
    grant = Grant.objects.get(installation=installation, subject_type="app")
    assert grant.reveal("access_token") == answer["access_token"]
    assert grant.reveal("refresh_token") == answer["refresh_token"]
    assert grant.scopes == ["read", "write"]  # Linear answers them space-separated

    response = tenant.api.token(UID, APP)
    assert response.status_code == 200, response.content
    assert response.json()["token"] == answer["access_token"]
    assert response.json()["tenantId"] == ORG


def test_an_expired_app_token_is_refreshed_with_rotation(
    tenant: Tenant, connector: Connector, linear: LinearFake
) -> None:
    installation = installed(tenant)
    grant = Grant.objects.get(installation=installation, subject_type="app")
    old_refresh = grant.reveal("refresh_token")
    Grant.objects.filter(pk=grant.pk).update(
        access_expires_at=timezone.now() - timedelta(minutes=1)
    )

    response = tenant.api.token(UID, APP)

    assert response.status_code == 200, response.content
    answer = linear.issued[-1]
    assert response.json()["token"] == answer["access_token"]
    form = linear.calls_to("POST", "/api/oauth/token")[-1].form()
    assert form["grant_type"] == "refresh_token"
    assert form["refresh_token"] == old_refresh
    grant.refresh_from_db()
    assert grant.reveal("refresh_token") == answer["refresh_token"] != old_refresh
    assert grant.scopes == ["read", "write"]


def test_user_consent_gives_the_user_a_token_in_the_same_organization(
    tenant: Tenant, connector: Connector, linear: LinearFake
) -> None:
    installation = installed(tenant)
    client = Client()
    started = tenant.api.consent(UID, "u-1")
    _, provider_url = install_page(client, started["url"])
    assert query_of(provider_url)["actor"] == "user"
    assert query_of(provider_url)["scope"] == "read"

    done = callback(client, at_provider(provider_url))

    assert done.status_code == 200, done.content
    answer = linear.issued[-1]
    grant = Grant.objects.get(subject_type="user", subject_id="u-1")
    assert grant.installation == installation
    assert grant.external_subject == linear.viewer["id"]
    assert grant.reveal("access_token") == answer["access_token"]
    response = tenant.api.token(UID, USER)
    assert response.status_code == 200, response.content
    assert response.json()["token"] == answer["access_token"]
    assert Installation.objects.filter(connector=connector).count() == 1


def test_revoking_a_user_revokes_its_access_token_at_linear(
    tenant: Tenant, connector: Connector, linear: LinearFake
) -> None:
    installed(tenant)
    walk(Client(), tenant.api.consent(UID, "u-1"))
    access = Grant.objects.get(subject_type="user").reveal("access_token")

    response = tenant.api.revoke(UID, USER)

    assert response.status_code == 200, response.content
    assert response.json() == {
        "tokensFound": 1,
        "deleted": 1,
        "providerRevoked": 1,
        "providerSkipped": 0,
        "providerFailed": 0,
    }
    [call] = linear.calls_to("POST", "/api/oauth/revoke")
    assert call.headers["Authorization"] == f"Bearer {access}"
    assert linear.access_family(access) is None
    assert not Grant.objects.filter(subject_type="user").exists()


def test_a_denied_install_is_recorded(
    tenant: Tenant, connector: Connector, linear: LinearFake
) -> None:
    linear.deny = True
    started = tenant.api.install(UID)

    response = walk(Client(), started)

    assert_refused_page(response, "Authorization was declined")
    assert flow_request(started).outcome == AuthorizationRequest.Outcome.DENIED
    assert len(flow_events(started, "authorization.failed")) == 1
    assert linear.calls_to("POST", "/api/oauth/token") == []
    assert not Installation.objects.filter(connector=connector).exists()


def test_a_provider_error_on_the_exchange_fails_the_install(
    tenant: Tenant, connector: Connector, linear: LinearFake
) -> None:
    client = Client()
    started = tenant.api.install(UID)
    _, provider_url = install_page(client, started["url"])
    query = at_provider(provider_url)
    linear.expire_codes()

    response = callback(client, query)

    assert_refused_page(response, "The provider did not complete the authorization")
    request = flow_request(started)
    assert request.outcome == "failed"
    assert request.error == "the provider rejected the grant"
    assert linear.rejections[-1].startswith("POST /api/oauth/token: invalid_grant")
    assert not Installation.objects.filter(connector=connector).exists()
    assert linear.calls_to("POST", "/api/graphql") == []


def test_a_dead_refresh_token_answers_invalid_grant(
    tenant: Tenant, connector: Connector, linear: LinearFake
) -> None:
    installation = installed(tenant)
    linear.revoke_all()
    Grant.objects.filter(installation=installation).update(
        access_expires_at=timezone.now() - timedelta(minutes=1)
    )

    response = tenant.api.token(UID, APP)

    assert response.status_code == 422, response.content
    assert error_code(response) == "invalid_grant"
    assert response.json()["error"]["vendor"]["error"] == "invalid_grant"
    assert Grant.objects.get(installation=installation).status == "needs_reauth"
