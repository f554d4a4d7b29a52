"""The Salesforce driver against a strict Salesforce fake: the web server flow (PKCE required)
for the org's app grant and for users, the instance URL kept with the installation, a nominal
session lifetime, refresh with and without rotation, revocation, and the failures."""

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from connect.models import AuthorizationRequest, Connector, Grant, Installation
from tests.fakes.base import pkce_s256
from tests.fakes.salesforce import SalesforceFake
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

UID = "salesforce/acme"
APP = {"type": "app"}
USER = {"type": "user", "id": "u-1"}


@pytest.fixture
def salesforce() -> Iterator[SalesforceFake]:
    fake = SalesforceFake(**fake_kwargs("3MVG9lKcPoNINVBIPJjdw1J9LLM82HnFVVX19KY1uA5mu0QqEWhqKpoW"))
    yield from running(fake)  # type: ignore[misc]


@pytest.fixture
def connector(
    tenant: Tenant, make_linked_connector: Callable[..., Connector], salesforce: SalesforceFake
) -> Connector:
    return make_linked_connector(
        tenant,
        uid=UID,
        type="salesforce",
        client_id=salesforce.client_id,
        secrets={"client_secret": salesforce.client_secret},
        config={"loginBaseUrl": salesforce.url},
        default_scopes={"app": ["api", "refresh_token"], "user": ["api", "refresh_token"]},
    )


def org(connector: Connector) -> Installation:
    return Installation.objects.get(connector=connector)


def installed(tenant: Tenant, connector: Connector) -> Grant:
    response = walk(Client(), tenant.api.install(UID))
    assert response.status_code == 200, response.content
    return Grant.objects.get(installation=org(connector), subject_type="app")


def test_install_keeps_the_instance_url_and_a_nominal_session(
    tenant: Tenant, connector: Connector, salesforce: SalesforceFake
) -> None:
    client = Client()
    started = tenant.api.install(UID)
    _, provider_url = install_page(client, started["url"])
    assert provider_url.startswith(f"{salesforce.url}/services/oauth2/authorize?")
    asked = query_of(provider_url)
    assert asked["response_type"] == "code"
    assert asked["redirect_uri"] == callback_url()
    assert asked["scope"] == "api refresh_token"
    assert asked["code_challenge_method"] == "S256"

    done = callback(client, at_provider(provider_url))

    assert done.status_code == 200, done.content
    [exchange] = salesforce.calls_to("POST", "/services/oauth2/token")
    form = exchange.form()
    assert pkce_s256(form["code_verifier"]) == asked["code_challenge"]
    assert form["client_id"] == salesforce.client_id
    assert form["client_secret"] == salesforce.client_secret
    [answer] = salesforce.issued
    assert "expires_in" not in answer
    installation = org(connector)
    assert installation.tenant_id == connector.public_id  # the one implicit org installation
    assert installation.metadata == {
        "instanceUrl": "https://acme.my.salesforce.com",
        "organizationId": "00DB0000000TfcRMAS",
    }
    grant = Grant.objects.get(installation=installation, subject_type="app")
    assert grant.reveal("access_token") == answer["access_token"]
    assert grant.reveal("refresh_token") == answer["refresh_token"]
    assert grant.access_expires_at is not None
    nominal = grant.access_expires_at - timezone.now()
    assert timedelta(hours=1, minutes=59) < nominal <= timedelta(hours=2)

    response = tenant.api.token(UID, APP)
    assert response.status_code == 200, response.content
    assert response.json()["token"] == answer["access_token"]
    assert response.json()["metadata"]["instanceUrl"] == "https://acme.my.salesforce.com"


def test_a_refresh_without_a_new_refresh_token_keeps_the_old_one(
    tenant: Tenant, connector: Connector, salesforce: SalesforceFake
) -> None:
    grant = installed(tenant, connector)
    refresh = grant.reveal("refresh_token")
    Grant.objects.filter(pk=grant.pk).update(access_expires_at=timezone.now())

    response = tenant.api.token(UID, APP)

    assert response.status_code == 200, response.content
    answer = salesforce.issued[-1]
    assert "refresh_token" not in answer
    assert response.json()["token"] == answer["access_token"]
    grant.refresh_from_db()
    assert grant.reveal("refresh_token") == refresh
    assert grant.access_expires_at is not None
    assert grant.access_expires_at > timezone.now() + timedelta(hours=1)


def test_with_rotation_each_refresh_token_is_spent_once(
    tenant: Tenant, connector: Connector, salesforce: SalesforceFake
) -> None:
    salesforce.rotate = True
    grant = installed(tenant, connector)
    first = grant.reveal("refresh_token")

    for _ in range(2):
        Grant.objects.filter(pk=grant.pk).update(access_expires_at=timezone.now())
        response = tenant.api.token(UID, APP)
        assert response.status_code == 200, response.content
        assert response.json()["token"] == salesforce.issued[-1]["access_token"]

    grant.refresh_from_db()
    family = salesforce.family_of_refresh(first)
    assert family is not None
    assert family.active  # no rotated token was ever replayed
    assert len(family.rotated) == 2
    assert grant.reveal("refresh_token") == family.refresh_token


def test_user_consent_and_revocation_at_salesforce(
    tenant: Tenant, connector: Connector, salesforce: SalesforceFake
) -> None:
    walk(Client(), tenant.api.consent(UID, "u-1"))
    grant = Grant.objects.get(subject_type="user", subject_id="u-1")
    assert grant.external_subject == "005B0000005Bk90IAC"
    assert grant.installation == org(connector)
    token = tenant.api.token(UID, USER)
    assert token.status_code == 200, token.content
    assert token.json()["token"] == grant.reveal("access_token")
    refresh = grant.reveal("refresh_token")

    response = tenant.api.revoke(UID, USER)

    assert response.status_code == 200, response.content
    assert response.json()["providerRevoked"] == 1
    assert response.json()["deleted"] == 1
    [call] = salesforce.calls_to("POST", "/services/oauth2/revoke")
    assert call.form()["token"] == refresh
    family = salesforce.family_of_refresh(refresh)
    assert family is not None
    assert not family.active
    assert not Grant.objects.filter(subject_type="user").exists()


def test_revoking_the_app_grant_keeps_the_org(
    tenant: Tenant, connector: Connector, salesforce: SalesforceFake
) -> None:
    grant = installed(tenant, connector)
    refresh = grant.reveal("refresh_token")

    response = tenant.api.revoke(UID, APP)

    assert response.json() == {
        "tokensFound": 1,
        "deleted": 1,
        "providerRevoked": 1,
        "providerSkipped": 0,
        "providerFailed": 0,
    }
    assert salesforce.calls_to("POST", "/services/oauth2/revoke")[0].form()["token"] == refresh
    grant.refresh_from_db()
    assert not grant.has_secret("access_token")
    assert not grant.has_secret("refresh_token")
    assert org(connector).status == "active"


def test_a_denied_install_is_recorded(
    tenant: Tenant, connector: Connector, salesforce: SalesforceFake
) -> None:
    salesforce.deny = True
    started = tenant.api.install(UID)

    response = walk(Client(), started)

    assert_refused_page(response, "Authorization was declined")
    assert flow_request(started).outcome == AuthorizationRequest.Outcome.DENIED
    assert len(flow_events(started, "authorization.failed")) == 1
    assert not Grant.objects.exists()


def test_a_wrong_redirect_uri_is_refused_at_the_exchange(
    tenant: Tenant, connector: Connector, salesforce: SalesforceFake, settings: Any
) -> None:
    client = Client()
    started = tenant.api.install(UID)
    _, provider_url = install_page(client, started["url"])
    query = at_provider(provider_url)
    # The app's public URL changed between the start and the callback: the exchange repeats a
    # redirect_uri that differs from the authorize request's, which Salesforce refuses.
    settings.PUBLIC_URL = "http://127.0.0.1:8001"

    response = callback(client, query)

    assert_refused_page(response, "The provider did not complete the authorization")
    assert salesforce.rejections[-1].endswith("redirect_uri must match configuration")
    assert flow_request(started).outcome == "failed"
    assert not Grant.objects.exists()


def test_a_dead_refresh_token_answers_invalid_grant(
    tenant: Tenant, connector: Connector, salesforce: SalesforceFake
) -> None:
    grant = installed(tenant, connector)
    salesforce.revoke_all()
    Grant.objects.filter(pk=grant.pk).update(access_expires_at=timezone.now())

    response = tenant.api.token(UID, APP)

    assert response.status_code == 422, response.content
    assert error_code(response) == "invalid_grant"
    assert response.json()["error"]["vendor"] == {
        "error": "invalid_grant",
        "error_description": "expired access/refresh token",
    }
    grant.refresh_from_db()
    assert grant.status == "needs_reauth"
    assert org(connector).status == "active"
