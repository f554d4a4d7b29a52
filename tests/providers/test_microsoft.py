"""The Microsoft driver against a strict Entra fake: admin consent per tenant, client
credentials per tenant for the app, delegated tokens (PKCE, id_token, refresh) for users,
and the failures. Entra has no revocation endpoint: revocations are local only."""

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from connect.models import AuthorizationRequest, Connector, Grant, Installation
from tests.fakes.base import pkce_s256
from tests.fakes.microsoft import MicrosoftFake
from tests.providers.conftest import CONTOSO, GRAPH_DEFAULT, MICROSOFT_UID, Tenant
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

UID = MICROSOFT_UID
APP = {"type": "app"}
USER = {"type": "user", "id": "u-1"}
FABRIKAM = "72f988bf-86f1-41af-91ab-2d7cd011db47"


@pytest.fixture
def connector(microsoft_connector: Connector) -> Connector:
    return microsoft_connector


def consented(tenant: Tenant, tenant_id: str = "") -> Installation:
    body = {"tenantId": tenant_id} if tenant_id else {}
    response = walk(Client(), tenant.api.install(UID, **body))
    assert response.status_code == 200, response.content
    return Installation.objects.get(tenant_id=tenant_id or CONTOSO)


def test_admin_consent_installs_the_tenant_its_signed_id_token_names(
    tenant: Tenant, connector: Connector, entra: MicrosoftFake
) -> None:
    client = Client()
    started = tenant.api.install(UID)
    _, provider_url = install_page(client, started["url"])
    assert provider_url.startswith(f"{entra.url}/organizations/oauth2/v2.0/authorize?")
    asked = query_of(provider_url)
    assert asked == {
        "response_type": "code",
        "client_id": entra.client_id,
        "redirect_uri": callback_url(),
        "state": asked["state"],
        "scope": f"openid {GRAPH_DEFAULT}",
        "code_challenge": asked["code_challenge"],
        "code_challenge_method": "S256",
        "prompt": "admin_consent",
    }

    done = callback(client, at_provider(provider_url))

    assert done.status_code == 200, done.content
    installation = Installation.objects.get(connector=connector)
    assert installation.tenant_id == CONTOSO
    assert installation.metadata == {"tenantId": CONTOSO}
    assert entra.consented == {CONTOSO}
    # The code was exchanged (with the PKCE verifier) for an id_token, checked against the
    # keys Entra publishes for the tenant it names; the admin's own token is not kept.
    [exchange] = entra.calls_to("POST", "/organizations/oauth2/v2.0/token")
    form = exchange.form()
    assert form["grant_type"] == "authorization_code"
    assert pkce_s256(form["code_verifier"]) == asked["code_challenge"]
    assert len(entra.calls_to("GET", f"/{CONTOSO}/discovery/v2.0/keys")) == 1
    assert not Grant.objects.filter(installation=installation).exists()
    assert flow_request(started).outcome == "completed"


def test_the_signing_keys_are_fetched_once_for_many_flows(
    tenant: Tenant, connector: Connector, entra: MicrosoftFake
) -> None:
    consented(tenant)
    for user in ("u-1", "u-2"):
        assert walk(Client(), tenant.api.consent(UID, user)).status_code == 200

    assert Grant.objects.filter(subject_type="user").count() == 2
    assert len(entra.calls_to("GET", f"/{CONTOSO}/discovery/v2.0/keys")) == 1


def test_each_tenant_gets_client_credentials_at_its_own_endpoint(
    tenant: Tenant, connector: Connector, entra: MicrosoftFake
) -> None:
    contoso = consented(tenant)
    fabrikam = consented(tenant, FABRIKAM)
    assert fabrikam.tenant_id == FABRIKAM

    minted = []
    for installation in (contoso, fabrikam):
        response = tenant.api.token(UID, APP, installationId=installation.public_id)
        assert response.status_code == 200, response.content
        assert response.json()["token"] == entra.issued[-1]["access_token"]
        minted.append(response.json()["token"])
        assert response.json()["tenantId"] == installation.tenant_id
        [call] = [
            call
            for call in entra.calls_to("POST", f"/{installation.tenant_id}/oauth2/v2.0/token")
            if call.form()["grant_type"] == "client_credentials"
        ]
        assert call.form() == {
            "grant_type": "client_credentials",
            "scope": GRAPH_DEFAULT,
            "client_id": entra.client_id,
            "client_secret": entra.client_secret,
        }
    assert len(set(minted)) == 2


def test_an_expired_app_token_is_minted_again(
    tenant: Tenant, connector: Connector, entra: MicrosoftFake
) -> None:
    consented(tenant)
    first = tenant.api.token(UID, APP).json()["token"]
    assert tenant.api.token(UID, APP).json()["token"] == first
    Grant.objects.filter(subject_type="app").update(
        access_expires_at=timezone.now() - timedelta(seconds=1)
    )

    response = tenant.api.token(UID, APP)

    assert response.status_code == 200, response.content
    assert response.json()["token"] == entra.issued[-1]["access_token"] != first
    assert len(entra.calls_to("POST", f"/{CONTOSO}/oauth2/v2.0/token")) == 2


def test_a_tenant_that_never_consented_gets_no_app_token(
    tenant: Tenant,
    connector: Connector,
    entra: MicrosoftFake,
    make_installation: Callable[..., Installation],
) -> None:
    make_installation(connector, tenant_id=FABRIKAM, is_default=True)

    response = tenant.api.token(UID, APP)

    assert response.status_code == 422, response.content
    assert error_code(response) == "no_token"
    assert "AADSTS700016" in entra.rejections[-1]


def test_user_consent_reads_tenant_and_user_from_the_id_token(
    tenant: Tenant, connector: Connector, entra: MicrosoftFake
) -> None:
    installation = consented(tenant)
    client = Client()
    started = tenant.api.consent(UID, "u-1")
    _, provider_url = install_page(client, started["url"])
    # The consent is for the default installation's tenant.
    assert provider_url.startswith(f"{entra.url}/{CONTOSO}/oauth2/v2.0/authorize?")
    asked = query_of(provider_url)
    assert asked["scope"] == "User.Read offline_access openid"
    assert asked["code_challenge_method"] == "S256"

    done = callback(client, at_provider(provider_url))

    assert done.status_code == 200, done.content
    [exchange] = entra.calls_to("POST", f"/{CONTOSO}/oauth2/v2.0/token")
    form = exchange.form()
    assert form["grant_type"] == "authorization_code"
    assert form["redirect_uri"] == callback_url()
    assert pkce_s256(form["code_verifier"]) == asked["code_challenge"]
    [_admin_consent, answer] = entra.issued
    grant = Grant.objects.get(subject_type="user", subject_id="u-1")
    assert grant.installation == installation
    assert grant.external_subject == entra.user["oid"]
    assert grant.reveal("access_token") == answer["access_token"]
    assert grant.reveal("refresh_token") == answer["refresh_token"]
    assert grant.scopes == ["User.Read", "openid", "profile", "email"]

    response = tenant.api.token(UID, USER)
    assert response.status_code == 200, response.content
    assert response.json()["token"] == answer["access_token"]


def test_a_user_token_is_refreshed_at_the_tenant(
    tenant: Tenant, connector: Connector, entra: MicrosoftFake
) -> None:
    consented(tenant)
    walk(Client(), tenant.api.consent(UID, "u-1"))
    grant = Grant.objects.get(subject_type="user")
    old_refresh = grant.reveal("refresh_token")
    Grant.objects.filter(pk=grant.pk).update(
        access_expires_at=timezone.now() - timedelta(minutes=1)
    )

    response = tenant.api.token(UID, USER)

    assert response.status_code == 200, response.content
    answer = entra.issued[-1]
    assert response.json()["token"] == answer["access_token"]
    form = entra.calls_to("POST", f"/{CONTOSO}/oauth2/v2.0/token")[-1].form()
    assert form["grant_type"] == "refresh_token"
    assert form["refresh_token"] == old_refresh
    assert form["scope"] == "User.Read offline_access"
    grant.refresh_from_db()
    assert grant.reveal("refresh_token") == answer["refresh_token"] != old_refresh


def test_revocation_is_local_since_entra_has_no_revocation_endpoint(
    tenant: Tenant, connector: Connector, entra: MicrosoftFake
) -> None:
    consented(tenant)
    walk(Client(), tenant.api.consent(UID, "u-1"))
    calls_before = len(entra.calls)

    response = tenant.api.revoke(UID, USER)

    assert response.status_code == 200, response.content
    assert response.json() == {
        "tokensFound": 1,
        "deleted": 1,
        "providerRevoked": 0,
        "providerSkipped": 1,
        "providerFailed": 0,
    }
    assert len(entra.calls) == calls_before
    assert not Grant.objects.filter(subject_type="user").exists()


def test_a_declined_admin_consent_is_recorded(
    tenant: Tenant, connector: Connector, entra: MicrosoftFake
) -> None:
    entra.deny = True
    started = tenant.api.install(UID)

    response = walk(Client(), started)

    assert_refused_page(response, "Authorization was declined")
    assert flow_request(started).outcome == AuthorizationRequest.Outcome.DENIED
    [event] = flow_events(started, "authorization.failed")
    assert event.fields["outcome"] == "denied"
    assert not Installation.objects.filter(connector=connector).exists()
    assert error_code(tenant.api.result(started["verifier"])) == "access_denied"


def test_a_provider_error_on_the_exchange_fails_the_consent(
    tenant: Tenant, connector: Connector, entra: MicrosoftFake
) -> None:
    consented(tenant)
    client = Client()
    started = tenant.api.consent(UID, "u-1")
    _, provider_url = install_page(client, started["url"])
    query = at_provider(provider_url)
    entra.expire_codes()

    response = callback(client, query)

    assert_refused_page(response, "The provider did not complete the authorization")
    assert flow_request(started).outcome == "failed"
    assert "AADSTS70008" in entra.rejections[-1]
    assert not Grant.objects.filter(subject_type="user").exists()


def test_a_dead_refresh_token_answers_invalid_grant(
    tenant: Tenant, connector: Connector, entra: MicrosoftFake
) -> None:
    consented(tenant)
    walk(Client(), tenant.api.consent(UID, "u-1"))
    entra.revoke_all()
    Grant.objects.filter(subject_type="user").update(
        access_expires_at=timezone.now() - timedelta(minutes=1)
    )

    response = tenant.api.token(UID, USER)

    assert response.status_code == 422, response.content
    assert error_code(response) == "invalid_grant"
    assert response.json()["error"]["vendor"]["error"] == "invalid_grant"
    assert "AADSTS700082" in response.json()["error"]["vendor"]["error_description"]
    assert Grant.objects.get(subject_type="user").status == "needs_reauth"
