"""Whose grant a proxied call may use, and where it may go: the token endpoint's rules, the
SSRF guard, the team's own rate bucket and its calls in flight."""

import json
from collections.abc import Callable
from typing import Any

import pytest

from connect.models import Connector, Project, ProxyCall
from connect.services.connectors import connector_save
from tests.proxy.conftest import USER_ID, ProxyRig


def test_another_projects_user_is_not_reached(
    rig: ProxyRig,
    make_project: Callable[..., Project],
    make_link: Callable[..., Any],
    make_credential: Callable[..., str],
) -> None:
    other = make_project(rig.team, slug="other")
    make_link(rig.connector, other, ["production"])
    rig.user_grant(project=other)  # user-42 of the other project
    response = rig.call("GET", "/me", subject=f"user:{USER_ID}")
    assert response.status_code == 422
    assert response["Connect-Error"] == "1"
    assert response.json()["error"]["code"] == "user_authorization_required"
    # The rest of the API's envelope, byte for byte compact (no ", " / ": " spacing).
    assert response.content.startswith(b'{"error":{"code":"user_authorization_required",')
    refused = ProxyCall.objects.get()
    assert (refused.outcome, refused.connector) == (ProxyCall.Outcome.REFUSED, rig.connector)
    # The other project reaches its own user.
    theirs = rig.call("GET", "/me", subject=f"user:{USER_ID}", bearer=make_credential(other))
    assert theirs.status_code == 200
    assert len(rig.server.api_calls) == 1


def test_another_teams_connector_is_not_found(rig: ProxyRig, make_proxy_rig: Any) -> None:
    theirs = make_proxy_rig()
    response = rig.client.get(
        f"/v1/connect/proxy/{theirs.connector.public_id}/me",
        HTTP_AUTHORIZATION=f"Bearer {rig.bearer}",
        HTTP_CONNECT_SUBJECT="app",
    )
    assert response.status_code == 404
    assert response["Connect-Error"] == "1"
    assert rig.server.api_calls == []
    # ``oauth/acme`` is each team's own connector: the caller's, never the other team's.
    ours = rig.call("GET", "/me")
    assert json.loads(b"".join(ours.streaming_content))["client_id"] == rig.client_id


def test_an_unlinked_environment_is_refused(
    rig: ProxyRig, make_credential: Callable[..., str]
) -> None:
    rig.project.environments.create(slug="preview", base_url="")
    response = rig.call("GET", "/me", bearer=make_credential(rig.project, "preview"))
    assert response.status_code == 403
    assert response["Connect-Error"] == "1"
    assert rig.server.api_calls == []


def _with_api_base(connector: Connector, base: str, *, secret: str | None) -> None:
    """Move the API base, entering the client secret again (None: without it)."""
    connector.config = {**connector.config, "apiBaseUrl": base}
    if secret is not None:
        connector.seal("client_secret", secret)
    connector_save(connector=connector, actor="test")


def test_a_private_api_base_is_refused(rig: ProxyRig) -> None:
    _with_api_base(rig.connector, "http://10.255.255.1/api", secret=rig.client_secret)
    response = rig.call("GET", "/me")
    assert response.status_code == 403
    assert response["Connect-Error"] == "1"
    assert "may call" in response.json()["error"]["message"]
    assert ProxyCall.objects.get().outcome == ProxyCall.Outcome.REFUSED


def test_in_production_loopback_and_http_are_refused(rig: ProxyRig, settings: Any) -> None:
    port = rig.server.url.rsplit(":", 1)[1]
    _with_api_base(rig.connector, f"https://127.0.0.1:{port}/api", secret=rig.client_secret)
    rig.user_grant()  # fresh: no token endpoint call
    settings.PRODUCTION = True
    settings.CONNECT_ALLOW_LOOPBACK = True  # ignored in production
    response = rig.call("GET", "/me", subject=f"user:{USER_ID}")
    assert response.status_code == 403
    assert response["Connect-Error"] == "1"
    settings.PRODUCTION = False
    _with_api_base(rig.connector, f"{rig.server.url}/api", secret=rig.client_secret)
    settings.PRODUCTION = True
    response = rig.call("GET", "/me", subject=f"user:{USER_ID}")
    assert response.status_code == 400
    assert "https://" in response.json()["error"]["message"]
    assert rig.server.api_calls == []


def test_a_changed_api_base_does_not_receive_earlier_tokens(rig: ProxyRig) -> None:
    rig.user_grant()
    _with_api_base(
        rig.connector, f"{rig.server.url}/api/", secret=rig.client_secret
    )  # another URL, same server
    response = rig.call("GET", "/me", subject=f"user:{USER_ID}")
    assert response.status_code == 422
    assert response["Connect-Error"] == "1"
    assert rig.server.api_calls == []


def test_a_moved_api_base_gets_no_app_token_without_the_secret(rig: ProxyRig) -> None:
    """A member who points apiBaseUrl at their own server cannot have Connect mint an app
    token and send it there: moving it clears the client secret unless entered again."""
    assert rig.call("GET", "/me").status_code == 200  # an app token minted and cached
    _with_api_base(rig.connector, f"{rig.server.url}/api/echo", secret=None)
    rig.connector.refresh_from_db()
    assert not rig.connector.has_secret("client_secret")
    response = rig.call("GET", "/me")
    assert response["Connect-Error"] == "1"
    assert response.status_code == 422
    assert len(rig.server.api_calls) == 1  # only the call before the move


def test_a_type_without_api_base_says_so(rig: ProxyRig) -> None:
    _with_api_base(rig.connector, "", secret=rig.client_secret)
    response = rig.call("GET", "/me")
    assert response.status_code == 400
    assert "apiBaseUrl" in response.json()["error"]["message"]


def test_the_proxy_has_its_own_rate_bucket(rig: ProxyRig, settings: Any) -> None:
    settings.CONNECT_RATE_LIMIT_PROXY = 2
    settings.CONNECT_RATE_LIMIT_READS = 1000
    assert rig.call("GET", "/me").status_code == 200
    assert rig.call("GET", "/me").status_code == 200
    third = rig.call("GET", "/me")
    assert third.status_code == 429
    assert third["Connect-Error"] == "1"
    assert int(third["Retry-After"]) >= 1
    token = rig.client.post(
        f"/v1/connect/token/{rig.connector.uid}",
        data=json.dumps({"subject": {"type": "app"}}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {rig.bearer}",
    )
    assert token.status_code == 200  # the token endpoint's bucket is another


@pytest.mark.parametrize(
    "limit", ["CONNECT_PROXY_TEAM_CONCURRENCY", "CONNECT_PROXY_PROCESS_CONCURRENCY"]
)
def test_calls_in_flight_are_capped(rig: ProxyRig, settings: Any, limit: str) -> None:
    setattr(settings, limit, 1)
    held = rig.call("GET", "/stream?chunks=2", stream=True)  # not read yet: still in flight
    assert held.status_code == 200
    refused = rig.call("GET", "/me")
    assert refused.status_code == 429
    assert refused["Connect-Error"] == "1"
    rig.server.stream_step.set()
    assert b"".join(held.streaming_content) == b"chunk 0\nchunk 1\n"
    assert rig.call("GET", "/me").status_code == 200
