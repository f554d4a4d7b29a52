"""The proxy on a Discord connector, against the strict Discord fake: the app subject's token is
the bot token, which Discord takes as ``Bot …``; and ``@me`` is an ordinary path segment."""

import json
from collections.abc import Callable, Iterator

import pytest
from django.test import Client

from connect.models import Connector
from tests.fakes.discord import DiscordFake
from tests.providers.conftest import Tenant, fake_kwargs, running

BOT_TOKEN = "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs"


@pytest.fixture
def discord() -> Iterator[DiscordFake]:
    fake = DiscordFake(bot_token=BOT_TOKEN, **fake_kwargs("157730590492196864"))
    yield from running(fake)  # type: ignore[misc]


def test_the_bot_calls_users_me(
    tenant: Tenant, make_linked_connector: Callable[..., Connector], discord: DiscordFake
) -> None:
    make_linked_connector(
        tenant,
        uid="discord/acme",
        type="discord",
        client_id=discord.client_id,
        secrets={"client_secret": discord.client_secret, "api_key": BOT_TOKEN},
        config={"baseUrl": discord.url},
        default_scopes={"app": [], "user": ["identify"]},
    )

    answer = Client().get(
        "/v1/connect/proxy/discord/acme/users/@me",
        HTTP_AUTHORIZATION=f"Bearer {tenant.api.bearer}",
        HTTP_CONNECT_SUBJECT="app",
    )

    assert answer.status_code == 200
    assert json.loads(b"".join(answer.streaming_content))["id"]
    (call,) = discord.calls_to("GET", "/api/v10/users/@me")
    assert call.headers["Authorization"] == f"Bot {BOT_TOKEN}"
    assert answer["X-RateLimit-Bucket"] == "b1"
