"""The Microsoft driver against a strict Entra fake: admin consent per tenant, client
credentials per tenant for the app, delegated tokens (PKCE, id_token, refresh) for users,
and the failures. Entra has no revocation endpoint: revocations are local only."""

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from connect.models import AuthorizationRequest, Connector, Grant, Installation
from tests.providers.conftest import Tenant, fake_kwargs, running
from tests.providers.fakes.base import pkce_s256
from tests.providers.fakes.microsoft import MicrosoftFake
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

UID = "microsoft/acme"
APP = {"type": "app"}
USER = {"type": "user", "id": "u-1"}
CONTOSO = "9122040d-6c67-4c5b-b112-36a304b66dad"
FABRIKAM = "72f988bf-86f1-41af-91ab-2d7cd011db47"
GRAPH_DEFAULT = "https://graph.microsoft.com/.default"


@pytest.fixture
def entra(rsa_private_pem: str) -> Iterator[MicrosoftFake]:
    fake = MicrosoftFake(
        signing_key_pem=rsa_private_pem, **fake_kwargs("6cb04018-a3f5-46a7-b995-940c78f5aef3")
    )
    yield from running(fake)  # type: ignore[misc]


@pytest.fixture
def connector(
    tenant: Tenant, make_linked_connector: Callable[..., Connector], entra: MicrosoftFake
) -> Connector:
    return make_linked_connector(
        tenant,
        uid=UID,
        type="microsoft",
        client_id=entra.client_id,
        secrets={"client_secret": entra.client_secret},
        config={"loginBaseUrl": entra.url},
        default_scopes={"app": [GRAPH_DEFAULT], "user": ["User.Read"]},
    )


def consented(tenant: Tenant, tenant_id: str = "") -> Installation:
    body = {"tenantId": tenant_id} if tenant_id else {}
    response = walk(Client(), tenant.api.install(UID, **body))
    assert response.status_code == 200, response.content
    return Installation.objects.get(tenant_id=tenant_id or CONTOSO)


def test_admin_consent_installs_the_tenant(
    tenant: Tenant, connector: Connector, entra: MicrosoftFake
) -> None:
    client = Client()
    started = tenant.api.install(UID)
    _, provider_url = install_page(client, started["url"])
    assert provider_url.startswith(f"{entra.url}/organizations/v2.0/adminconsent?")
    asked = query_of(provider_url)
    assert asked == {
        "client_id": entra.client_id,
        "redirect_uri": callback_url(),
        "state": asked["state"],
        "scope": GRAPH_DEFAULT,
    }

    done = callback(client, at_provider(provider_url))

    assert done.status_code == 200, done.content
    installation = Installation.objects.get(connector=connector)
    assert installation.tenant_id == CONTOSO
    assert installation.metadata == {"tenantId": CONTOSO}
    assert not Grant.objects.filter(installation=installation).exists()
    # Admin consent returns no code: nothing was exchanged.
    assert entra.calls_to("POST", f"/{CONTOSO}/oauth2/v2.0/token") == []
    assert flow_request(started).outcome == "completed"


def test_each_tenant_gets_client_credentials_at_its_own_endpoint(
    tenant: Tenant, connector: Connector, entra: MicrosoftFake
) -> None:
    contoso = consented(tenant)
    fabrikam = consented(tenant, FABRIKAM)
    assert fabrikam.tenant_id == FABRIKAM

    for installation in (contoso, fabrikam):
        response = tenant.api.token(UID, APP, installationId=installation.public_id)
        assert response.status_code == 200, response.content
        assert response.json()["token"] == entra.issued[-1]["access_token"]
        assert response.json()["tenantId"] == installation.tenant_id
        [call] = entra.calls_to("POST", f"/{installation.tenant_id}/oauth2/v2.0/token")
        assert call.form() == {
            "grant_type": "client_credentials",
            "scope": GRAPH_DEFAULT,
            "client_id": entra.client_id,
            "client_secret": entra.client_secret,
        }
    assert len({issued["access_token"] for issued in entra.issued}) == 2


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
    [answer] = entra.issued
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
