"""The Discord driver against a strict Discord fake: the bot token for the app, OAuth user
authorization (consent, refresh, RFC 7009 revocation), and the failures."""

import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from connect.models import AuthorizationRequest, Connector, Grant, Installation
from tests.fakes.discord import DiscordFake
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

UID = "discord/acme"
APP = {"type": "app"}
USER = {"type": "user", "id": "u-1"}
BOT_TOKEN = "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs"


@pytest.fixture
def discord() -> Iterator[DiscordFake]:
    yield from running(DiscordFake(bot_token=BOT_TOKEN, **fake_kwargs("157730590492196864")))  # type: ignore[misc]


@pytest.fixture
def connector(
    tenant: Tenant, make_linked_connector: Callable[..., Connector], discord: DiscordFake
) -> Connector:
    return make_linked_connector(
        tenant,
        uid=UID,
        type="discord",
        client_id=discord.client_id,
        secrets={"client_secret": discord.client_secret, "api_key": BOT_TOKEN},
        config={"baseUrl": discord.url},
        default_scopes={"app": [], "user": ["identify", "guilds"]},
    )


def consented(tenant: Tenant) -> Grant:
    response = walk(Client(), tenant.api.consent(UID, "u-1"))
    assert response.status_code == 200, response.content
    return Grant.objects.get(subject_type="user", subject_id="u-1")


def test_the_app_token_is_the_bot_token(
    tenant: Tenant, connector: Connector, discord: DiscordFake
) -> None:
    response = tenant.api.token(UID, APP)

    assert response.status_code == 200, response.content
    assert response.json()["token"] == BOT_TOKEN
    assert 3500 < response.json()["expiresAt"] / 1000 - time.time() <= 3600
    assert (
        response.json()["installationId"] == Installation.objects.get(connector=connector).public_id
    )
    assert discord.calls == []  # a bot token is configured, never fetched


def test_user_consent_names_the_discord_user(
    tenant: Tenant, connector: Connector, discord: DiscordFake
) -> None:
    client = Client()
    started = tenant.api.consent(UID, "u-1")
    _, provider_url = install_page(client, started["url"])
    assert provider_url.startswith(f"{discord.url}/oauth2/authorize?")
    asked = query_of(provider_url)
    assert asked == {
        "response_type": "code",
        "client_id": discord.client_id,
        "redirect_uri": callback_url(),
        "state": asked["state"],
        "scope": "identify guilds",
    }

    done = callback(client, at_provider(provider_url))

    assert done.status_code == 200, done.content
    [exchange] = discord.calls_to("POST", "/api/oauth2/token")
    assert exchange.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = exchange.form()
    assert form["grant_type"] == "authorization_code"
    assert form["redirect_uri"] == callback_url()
    [answer] = discord.issued
    [me] = discord.calls_to("GET", "/api/users/@me")
    assert me.headers["Authorization"] == f"Bearer {answer['access_token']}"
    grant = Grant.objects.get(subject_type="user", subject_id="u-1")
    assert grant.external_subject == "80351110224678912"
    assert grant.scopes == ["identify", "guilds"]
    assert flow_request(started).outcome == "completed"

    response = tenant.api.token(UID, USER)
    assert response.status_code == 200, response.content
    assert response.json()["token"] == answer["access_token"]


def test_an_expired_user_token_is_refreshed(
    tenant: Tenant, connector: Connector, discord: DiscordFake
) -> None:
    grant = consented(tenant)
    old_refresh = grant.reveal("refresh_token")
    Grant.objects.filter(pk=grant.pk).update(
        access_expires_at=timezone.now() - timedelta(minutes=1)
    )

    response = tenant.api.token(UID, USER)

    assert response.status_code == 200, response.content
    answer = discord.issued[-1]
    assert response.json()["token"] == answer["access_token"]
    grant.refresh_from_db()
    assert grant.reveal("refresh_token") == answer["refresh_token"] != old_refresh


def test_revoking_a_user_revokes_the_refresh_token(
    tenant: Tenant, connector: Connector, discord: DiscordFake
) -> None:
    grant = consented(tenant)
    refresh = grant.reveal("refresh_token")

    response = tenant.api.revoke(UID, USER)

    assert response.status_code == 200, response.content
    assert response.json()["providerRevoked"] == 1
    [call] = discord.calls_to("POST", "/api/oauth2/token/revoke")
    form = call.form()
    assert form["token"] == refresh
    assert form["token_type_hint"] == "refresh_token"
    family = discord.family_of_refresh(refresh)
    assert family is not None
    assert not family.active
    assert not Grant.objects.filter(subject_type="user").exists()


def test_revoking_the_app_never_sends_the_bot_token_anywhere(
    tenant: Tenant, connector: Connector, discord: DiscordFake
) -> None:
    assert tenant.api.token(UID, APP).json()["token"] == BOT_TOKEN

    response = tenant.api.revoke(UID, APP)

    assert response.status_code == 200, response.content
    assert response.json() == {
        "tokensFound": 1,
        "deleted": 1,
        "providerRevoked": 0,
        "providerSkipped": 1,
        "providerFailed": 0,
    }
    assert not discord.bot_token_seen
    assert discord.calls == []
    # The configured bot token stays: the app still gets it.
    assert tenant.api.token(UID, APP).json()["token"] == BOT_TOKEN


def test_a_denied_consent_is_recorded(
    tenant: Tenant, connector: Connector, discord: DiscordFake
) -> None:
    discord.deny = True
    started = tenant.api.consent(UID, "u-1")

    response = walk(Client(), started)

    assert_refused_page(response, "Authorization was declined")
    assert flow_request(started).outcome == AuthorizationRequest.Outcome.DENIED
    assert len(flow_events(started, "authorization.failed")) == 1
    assert not Grant.objects.filter(subject_type="user").exists()


def test_a_provider_error_on_the_exchange_fails_the_consent(
    tenant: Tenant, connector: Connector, discord: DiscordFake
) -> None:
    client = Client()
    started = tenant.api.consent(UID, "u-1")
    _, provider_url = install_page(client, started["url"])
    query = at_provider(provider_url)
    discord.expire_codes()

    response = callback(client, query)

    assert_refused_page(response, "The provider did not complete the authorization")
    assert flow_request(started).outcome == "failed"
    assert discord.rejections[-1].endswith('invalid_grant: Invalid "code" in request.')
    assert not Grant.objects.filter(subject_type="user").exists()


def test_a_dead_refresh_token_answers_invalid_grant(
    tenant: Tenant, connector: Connector, discord: DiscordFake
) -> None:
    grant = consented(tenant)
    discord.revoke_all()
    Grant.objects.filter(pk=grant.pk).update(
        access_expires_at=timezone.now() - timedelta(minutes=1)
    )

    response = tenant.api.token(UID, USER)

    assert response.status_code == 422, response.content
    assert error_code(response) == "invalid_grant"
    grant.refresh_from_db()
    assert grant.status == "needs_reauth"
