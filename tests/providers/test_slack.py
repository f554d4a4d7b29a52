"""The Slack driver against a strict Slack fake: workspace installs (bot tokens, one per
workspace), user consent (user tokens), token rotation, auth.revoke, and the failures."""

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from connect.models import AuditEvent, AuthorizationRequest, Connector, Grant, Installation
from connect.services.installations import installation_remove
from tests.fakes.slack import SlackFake
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

UID = "slack/acme"
APP = {"type": "app"}
USER = {"type": "user", "id": "u-1"}


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    yield from running(SlackFake(**fake_kwargs("2141029472.691202649728")))  # type: ignore[misc]


@pytest.fixture
def connector(
    tenant: Tenant, make_linked_connector: Callable[..., Connector], slack: SlackFake
) -> Connector:
    return make_linked_connector(
        tenant,
        uid=UID,
        type="slack",
        name="Acme Bot",
        client_id=slack.client_id,
        secrets={"client_secret": slack.client_secret},
        config={"baseUrl": slack.url},
        default_scopes={"app": ["chat:write", "channels:read"], "user": ["search:read"]},
        allowed_return_origins=["https://app.example.com"],
    )


def install(tenant: Tenant, slack: SlackFake, **body: Any) -> dict[str, Any]:
    started = tenant.api.install(UID, **body)
    response = walk(Client(), started)
    assert response.status_code in (200, 302), response.content
    return started


def app_grant(installation: Installation) -> Grant:
    return Grant.objects.get(installation=installation, subject_type="app")


def test_install_stores_the_workspace_and_its_bot_token(
    tenant: Tenant, connector: Connector, slack: SlackFake
) -> None:
    client = Client()
    started = tenant.api.install(UID)
    page, provider_url = install_page(client, started["url"])
    assert "Acme Bot" in page.content.decode()
    assert provider_url.startswith(f"{slack.url}/oauth/v2/authorize?")
    asked = query_of(provider_url)
    assert asked == {
        "client_id": slack.client_id,
        "redirect_uri": callback_url(),
        "state": asked["state"],
        "scope": "chat:write,channels:read",
    }

    done = callback(client, at_provider(provider_url))

    assert done.status_code == 200, done.content
    assert "Installed for <strong>Slack Softball Team</strong>" in done.content.decode()
    [exchange] = slack.calls_to("POST", "/api/oauth.v2.access")
    form = exchange.form()
    assert form == {
        "grant_type": "authorization_code",
        "code": form["code"],
        "redirect_uri": callback_url(),
        "client_id": slack.client_id,
        "client_secret": slack.client_secret,
    }
    installation = Installation.objects.get(connector=connector)
    assert installation.tenant_id == "T9TK3CUKW"
    assert installation.display_name == "Slack Softball Team"
    assert installation.is_default
    assert installation.metadata == {
        "teamName": "Slack Softball Team",
        "enterpriseId": "E12345678",
        "botUserId": "U0KRQLJ9H",
        "appId": "A0KRD7HC3",
    }
    [issued] = slack.issued
    grant = app_grant(installation)
    assert grant.reveal("access_token") == issued["access_token"]
    assert grant.reveal("refresh_token") == issued["refresh_token"]
    assert grant.scopes == ["chat:write", "channels:read"]
    assert grant.access_expires_at is not None
    remaining = grant.access_expires_at - timezone.now()
    assert timedelta(hours=11, minutes=59) < remaining <= timedelta(hours=12)
    assert not Grant.objects.filter(installation=installation, subject_type="user").exists()
    assert flow_request(started).outcome == "completed"
    assert len(flow_events(started, "authorization.completed")) == 1
    assert len(flow_events(started, "installation.added")) == 1

    result = tenant.api.result(started["verifier"])
    assert result.status_code == 200, result.content
    assert result.json()["status"] == "completed"
    assert result.json()["installationId"] == installation.public_id
    assert result.json()["tenantId"] == "T9TK3CUKW"

    token = tenant.api.token(UID, APP, installationId=installation.public_id)
    assert token.status_code == 200, token.content
    body = token.json()
    assert body["token"] == issued["access_token"]
    assert body["installationId"] == installation.public_id
    assert body["tenantId"] == "T9TK3CUKW"
    assert body["name"] == "Slack Softball Team"
    assert body["metadata"]["enterpriseId"] == "E12345678"
    # A cached token: no further call to Slack.
    assert len(slack.calls_to("POST", "/api/oauth.v2.access")) == 1


def test_each_workspace_gets_its_own_bot_token(
    tenant: Tenant, connector: Connector, slack: SlackFake
) -> None:
    install(tenant, slack)
    slack.team = {"id": "T0OTHER01", "name": "Other Workspace"}
    slack.enterprise = None
    install(tenant, slack)

    first = Installation.objects.get(connector=connector, tenant_id="T9TK3CUKW")
    second = Installation.objects.get(connector=connector, tenant_id="T0OTHER01")
    assert first.is_default
    assert not second.is_default
    assert "enterpriseId" not in second.metadata  # none for a workspace outside a grid
    bot_tokens = [issued["access_token"] for issued in slack.issued]
    assert len(set(bot_tokens)) == 2
    for installation, expected in ((first, bot_tokens[0]), (second, bot_tokens[1])):
        response = tenant.api.token(UID, APP, installationId=installation.public_id)
        assert response.status_code == 200, response.content
        assert response.json()["token"] == expected
        assert response.json()["tenantId"] == installation.tenant_id
    # Without an installation id the default workspace answers.
    assert tenant.api.token(UID, APP).json()["token"] == bot_tokens[0]


def test_install_with_a_return_url_ends_there(
    tenant: Tenant, connector: Connector, slack: SlackFake
) -> None:
    started = tenant.api.install(UID, returnUrl="https://app.example.com/installed?x=1")
    response = walk(Client(), started)
    assert response.status_code == 302
    assert response["Location"] == (
        f"https://app.example.com/installed?x=1&request={started['request']}&status=completed"
    )


def test_an_expired_bot_token_is_refreshed_and_the_refresh_token_rotates(
    tenant: Tenant, connector: Connector, slack: SlackFake
) -> None:
    install(tenant, slack)
    installation = Installation.objects.get(connector=connector)
    grant = app_grant(installation)
    old_refresh = grant.reveal("refresh_token")
    Grant.objects.filter(pk=grant.pk).update(
        access_expires_at=timezone.now() - timedelta(minutes=1)
    )

    response = tenant.api.token(UID, APP, installationId=installation.public_id)

    assert response.status_code == 200, response.content
    refreshed = slack.issued[-1]
    assert response.json()["token"] == refreshed["access_token"]
    assert refreshed["access_token"].startswith("xoxe.xoxb-")
    refresh_call = slack.calls_to("POST", "/api/oauth.v2.access")[-1].form()
    assert refresh_call == {
        "grant_type": "refresh_token",
        "refresh_token": old_refresh,
        "client_id": slack.client_id,
        "client_secret": slack.client_secret,
    }
    grant.refresh_from_db()
    assert grant.reveal("refresh_token") == refreshed["refresh_token"] != old_refresh
    assert grant.access_expires_at is not None
    assert grant.access_expires_at > timezone.now() + timedelta(hours=11)
    # Fresh again: served from the grant, no second refresh.
    again = tenant.api.token(UID, APP, installationId=installation.public_id)
    assert again.json()["token"] == refreshed["access_token"]
    assert len(slack.calls_to("POST", "/api/oauth.v2.access")) == 2


def test_revoking_the_app_calls_auth_revoke_with_the_bot_token(
    tenant: Tenant, connector: Connector, slack: SlackFake
) -> None:
    install(tenant, slack)
    installation = Installation.objects.get(connector=connector)
    bot_token = app_grant(installation).reveal("access_token")

    response = tenant.api.revoke(UID, APP, installationId=installation.public_id)

    assert response.status_code == 200, response.content
    assert response.json() == {
        "tokensFound": 1,
        "deleted": 1,
        "providerRevoked": 1,
        "providerSkipped": 0,
        "providerFailed": 0,
    }
    [revoke] = slack.calls_to("POST", "/api/auth.revoke")
    assert revoke.headers["Authorization"] == f"Bearer {bot_token}"
    assert slack.access_family(bot_token) is None
    grant = app_grant(installation)
    assert not grant.has_secret("access_token")
    installation.refresh_from_db()
    assert installation.status == "active"


def test_user_consent_gives_that_user_a_token(
    tenant: Tenant, connector: Connector, slack: SlackFake
) -> None:
    install(tenant, slack)
    installation = Installation.objects.get(connector=connector)
    client = Client()
    started = tenant.api.consent(UID, "u-1")
    _, provider_url = install_page(client, started["url"])
    asked = query_of(provider_url)
    assert asked["user_scope"] == "search:read"
    assert "scope" not in asked

    done = callback(client, at_provider(provider_url))

    assert done.status_code == 200, done.content
    assert "Authorized" in done.content.decode()
    user_answer = slack.issued[-1]
    assert "access_token" not in user_answer  # a user-scopes-only install has no bot token
    grant = Grant.objects.get(installation=installation, subject_type="user", subject_id="u-1")
    assert grant.issuer == tenant.project.public_id
    assert grant.external_subject == "U1234"
    assert grant.reveal("access_token") == user_answer["authed_user"]["access_token"]
    assert grant.scopes == ["search:read"]
    # The bot token is untouched.
    assert app_grant(installation).reveal("access_token") == slack.issued[0]["access_token"]

    response = tenant.api.token(UID, USER)
    assert response.status_code == 200, response.content
    assert response.json()["token"] == user_answer["authed_user"]["access_token"]
    assert response.json()["installationId"] == installation.public_id


def test_a_user_token_refreshes_and_is_revoked_at_slack(
    tenant: Tenant, connector: Connector, slack: SlackFake
) -> None:
    install(tenant, slack)
    walk(Client(), tenant.api.consent(UID, "u-1"))
    grant = Grant.objects.get(subject_type="user", subject_id="u-1")
    Grant.objects.filter(pk=grant.pk).update(
        access_expires_at=timezone.now() - timedelta(seconds=1)
    )

    refreshed = tenant.api.token(UID, USER)

    assert refreshed.status_code == 200, refreshed.content
    answer = slack.issued[-1]
    assert answer["token_type"] == "user"
    assert refreshed.json()["token"] == answer["access_token"]
    assert answer["access_token"].startswith("xoxe.xoxp-")

    revoked = tenant.api.revoke(UID, USER)

    assert revoked.status_code == 200, revoked.content
    assert revoked.json()["providerRevoked"] == 1
    assert revoked.json()["deleted"] == 1
    [revoke] = slack.calls_to("POST", "/api/auth.revoke")
    assert revoke.headers["Authorization"] == f"Bearer {answer['access_token']}"
    assert not Grant.objects.filter(subject_type="user").exists()
    assert error_code(tenant.api.token(UID, USER)) == "user_authorization_required"


def test_a_denied_install_shows_a_clear_page_and_records_the_denial(
    tenant: Tenant, connector: Connector, slack: SlackFake
) -> None:
    slack.deny = True
    started = tenant.api.install(UID)

    response = walk(Client(), started)

    assert_refused_page(response, "Authorization was declined")
    assert slack.calls_to("POST", "/api/oauth.v2.access") == []
    request = flow_request(started)
    assert request.outcome == AuthorizationRequest.Outcome.DENIED
    [event] = flow_events(started, "authorization.failed")
    assert event.fields["outcome"] == "denied"
    assert event.team_id == tenant.team.pk
    assert not Installation.objects.filter(connector=connector).exists()
    assert error_code(tenant.api.result(started["verifier"])) == "access_denied"


def test_a_provider_error_on_the_exchange_fails_the_flow(
    tenant: Tenant, connector: Connector, slack: SlackFake
) -> None:
    slack.exchange_error = "invalid_team_for_non_distributed_app"
    started = tenant.api.install(UID)

    response = walk(Client(), started)

    assert_refused_page(response, "The provider did not complete the authorization")
    request = flow_request(started)
    assert request.outcome == AuthorizationRequest.Outcome.FAILED
    assert "invalid_team_for_non_distributed_app" in request.error
    [event] = flow_events(started, "authorization.failed")
    assert event.fields["outcome"] == "failed"
    assert not Installation.objects.filter(connector=connector).exists()
    assert not Grant.objects.exists()


def test_a_wrong_client_secret_is_refused_by_slack(
    tenant: Tenant, connector: Connector, slack: SlackFake
) -> None:
    connector.seal("client_secret", "not-the-secret")
    connector.save()
    started = tenant.api.install(UID)

    response = walk(Client(), started)

    assert_refused_page(response, "The provider did not complete the authorization")
    assert "bad_client_secret" in flow_request(started).error
    assert slack.rejections
    assert "bad client secret" in slack.rejections[-1]
    assert not Installation.objects.filter(connector=connector).exists()


def test_a_dead_refresh_token_answers_invalid_grant_and_marks_the_grant(
    tenant: Tenant, connector: Connector, slack: SlackFake
) -> None:
    install(tenant, slack)
    installation = Installation.objects.get(connector=connector)
    slack.revoke_all()  # the workspace admin removed the app's tokens
    Grant.objects.filter(installation=installation).update(
        access_expires_at=timezone.now() - timedelta(minutes=1)
    )

    response = tenant.api.token(UID, APP)

    assert response.status_code == 422, response.content
    assert error_code(response) == "invalid_grant"
    assert response.json()["error"]["vendor"] == {"error": "invalid_refresh_token"}
    assert app_grant(installation).status == "needs_reauth"
    installation.refresh_from_db()
    assert installation.status == "active"
    assert error_code(tenant.api.token(UID, APP)) == "no_token"


def test_removing_the_installation_revokes_its_tokens_at_slack(
    tenant: Tenant, connector: Connector, slack: SlackFake
) -> None:
    install(tenant, slack)
    walk(Client(), tenant.api.consent(UID, "u-1"))
    installation = Installation.objects.get(connector=connector)
    live = {grant.reveal("access_token") for grant in installation.grants.all()}
    assert len(live) == 2

    installation_remove(installation=installation, actor="test", delete=True)

    presented = {
        call.headers["Authorization"].removeprefix("Bearer ")
        for call in slack.calls_to("POST", "/api/auth.revoke")
    }
    assert presented == live  # the access tokens: a refresh token authenticates nothing
    assert all(slack.access_family(token) is None for token in live)
    assert not Installation.objects.filter(connector=connector).exists()
    [event] = AuditEvent.objects.filter(type="installation.removed")
    assert event.fields["providerRevoked"] == 2
