"""The official Python SDK against a live server, for an OAuth client-credentials connector whose
provider tokens live four seconds: cached while valid, a new one (and a new ``tokenId``) once
the old one has expired (the test moves the expiry instead of waiting for it)."""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from vercel.api import session
from vercel.connect import ConnectAppTokenSubject, ConnectOptions, ConnectServiceOptions
from vercel.connect import sync as connect

from connect.models import Connector, Grant, Project, Team, TokenIssue
from tests.fakes.oauth import OAuthFake

pytestmark = pytest.mark.django_db(transaction=True)

LIFETIME = 4


def seconds_left(expires_at: datetime) -> float:
    return (expires_at - datetime.now(UTC)).total_seconds()


def test_sdk_gets_a_new_token_after_the_provider_token_expired(
    live_server: Any,
    oauth_server: OAuthFake,
    settings: Any,
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
    make_credential: Callable[..., str],
) -> None:
    settings.CONNECT_REFRESH_MARGIN_SECONDS = 1
    oauth_server.expires_in = LIFETIME
    team = make_team()
    project = make_project(team)
    client_id = f"connect-{uuid.uuid4().hex[:8]}"
    connector = make_connector(
        team,
        uid="oauth/short-lived",
        type="oauth",
        client_id=client_id,
        secrets={"client_secret": "s3cr3t"},
        config={
            "tokenEndpoint": oauth_server.token_endpoint,
            "tokenEndpointAuthMethod": "client_secret_post",
        },
        default_scopes={"app": ["reports:read"]},
    )
    make_link(connector, project, ["production"])
    oauth_server.add_client(client_id, method="client_secret_post", secret="s3cr3t")
    options = ConnectOptions(vercel_token=make_credential(project))
    app = ConnectAppTokenSubject()

    with session(service_options=[ConnectServiceOptions(base_url=live_server.url)]):
        first = connect.get_token_response("oauth/short-lived", subject=app, options=options)
        assert oauth_server.calls == {"client_credentials": 1}
        assert oauth_server.access_token_active(first.token)
        assert first.token_id is not None
        assert first.token_id.startswith("stk_")
        assert first.connector.id == connector.public_id
        assert first.connector.uid == "oauth/short-lived"
        assert LIFETIME - 2 <= seconds_left(first.expires_at) <= LIFETIME

        # Still valid: the server hands out the cached provider token under a new tokenId.
        again = connect.get_token_response(
            "oauth/short-lived",
            subject=app,
            options=ConnectOptions(vercel_token=options.vercel_token, force_refresh=True),
        )
        assert again.token == first.token
        assert again.token_id != first.token_id
        assert again.expires_at == first.expires_at
        assert oauth_server.calls == {"client_credentials": 1}

        # The provider's token expires: a second on, the provider refuses it, and the grant says
        # so (moved there rather than waited for).
        a_second_on = first.expires_at.timestamp() + 1
        assert not oauth_server.access_token_active(first.token, at=a_second_on), "expired there"
        Grant.objects.filter(installation__connector=connector, subject_type="app").update(
            access_expires_at=timezone.now() - timedelta(seconds=1)
        )

        later = connect.get_token_response("oauth/short-lived", subject=app, options=options)
        assert later.token != first.token
        assert later.token_id not in (first.token_id, again.token_id)
        assert later.expires_at > first.expires_at
        assert oauth_server.access_token_active(later.token)
        assert oauth_server.calls == {"client_credentials": 2}
        assert oauth_server.rejections == []
        assert {f["scope"] for f in oauth_server.forms} == {"reports:read"}

    grant = Grant.objects.get(installation__connector=connector, subject_type="app")
    assert grant.reveal("access_token") == later.token
    assert set(TokenIssue.objects.filter(grant=grant).values_list("public_id", flat=True)) == {
        first.token_id,
        again.token_id,
        later.token_id,
    }
