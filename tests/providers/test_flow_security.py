"""What the install and consent flows refuse: a tampered or replayed state, an expired request,
a code injected under another flow's PKCE verifier, a foreign return URL, a state of another
team's flow, unknown or used links; and what polling the result answers at each step.

Every refusal must leave no Installation and no Grant behind.
"""

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from connect.models import AuthorizationRequest, Connector, Grant, Installation
from tests.clock import ManualClock
from tests.fakes.oauth import OAuthFake
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
    local_path,
    query_of,
    walk,
)

UID = "slack/acme"


@pytest.fixture
def make_slack_connector(
    make_linked_connector: Callable[..., Connector],
) -> Callable[[Tenant, SlackFake], Connector]:
    def make(tenant: Tenant, slack: SlackFake) -> Connector:
        return make_linked_connector(
            tenant,
            uid=UID,
            type="slack",
            client_id=slack.client_id,
            secrets={"client_secret": slack.client_secret},
            config={"baseUrl": slack.url},
            default_scopes={"app": ["chat:write"], "user": ["search:read"]},
            allowed_return_origins=["https://app.example.com"],
        )

    return make


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    yield from running(SlackFake(**fake_kwargs("1111.2222")))  # type: ignore[misc]


@pytest.fixture
def connector(
    tenant: Tenant, slack: SlackFake, make_slack_connector: Callable[..., Connector]
) -> Connector:
    return make_slack_connector(tenant, slack)


def nothing_created() -> None:
    assert not Installation.objects.exists()
    assert not Grant.objects.exists()


def with_param(query: str, **changes: str) -> str:
    params = {**query_of("?" + query), **changes}
    return "&".join(f"{k}={v}" for k, v in params.items())


# The state ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda state: state + "x", id="appended"),
        pytest.param(lambda state: state[:-1], id="truncated"),
        pytest.param(lambda state: "", id="empty"),
    ],
)
def test_a_tampered_state_is_refused_and_burns_nothing(
    tenant: Tenant, connector: Connector, slack: SlackFake, tamper: Callable[[str], str]
) -> None:
    client = Client()
    started = tenant.api.install(UID)
    _, provider_url = install_page(client, started["url"])
    query = at_provider(provider_url)
    state = query_of("?" + query)["state"]

    response = callback(client, with_param(query, state=tamper(state)))

    assert_refused_page(response, "We could not match this sign-in")
    assert slack.calls_to("POST", "/api/oauth.v2.access") == []
    nothing_created()
    request = flow_request(started)
    assert request.outcome == "pending"
    assert request.consumed_at is None
    # The genuine callback still completes the flow it belongs to.
    assert callback(client, query).status_code == 200
    assert Installation.objects.filter(connector=connector).count() == 1


def test_a_callback_without_any_state_is_refused(
    tenant: Tenant, connector: Connector, slack: SlackFake
) -> None:
    response = Client().get("/connect/callback?code=" + slack.code_issued())

    assert_refused_page(response, "We could not match this sign-in")
    nothing_created()


def test_a_used_state_cannot_be_replayed(
    tenant: Tenant, connector: Connector, slack: SlackFake
) -> None:
    client = Client()
    started = tenant.api.install(UID)
    _, provider_url = install_page(client, started["url"])
    query = at_provider(provider_url)
    assert callback(client, query).status_code == 200
    grant = Grant.objects.get()
    version = grant.version

    replayed = callback(client, query)

    assert_refused_page(replayed, "This link was already used")
    assert len(slack.calls_to("POST", "/api/oauth.v2.access")) == 1
    assert Installation.objects.count() == 1
    grant.refresh_from_db()
    assert grant.version == version
    assert flow_request(started).outcome == "completed"
    # A fresh code under the spent state is refused just the same.
    fresh = callback(client, with_param(query, code=slack.code_issued(scope="chat:write")))
    assert_refused_page(fresh, "This link was already used")
    assert len(slack.calls_to("POST", "/api/oauth.v2.access")) == 1


def test_an_expired_request_is_refused_at_the_page_and_at_the_callback(
    tenant: Tenant, connector: Connector, slack: SlackFake
) -> None:
    client = Client()
    started = tenant.api.install(UID)
    _, provider_url = install_page(client, started["url"])
    query = at_provider(provider_url)
    AuthorizationRequest.objects.filter(public_id=started["request"]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    page = client.get(local_path(started["url"]))
    response = callback(client, query)

    assert_refused_page(page, "This link has expired")
    assert_refused_page(response, "This link has expired")
    assert slack.calls_to("POST", "/api/oauth.v2.access") == []
    nothing_created()
    assert flow_request(started).outcome == "expired"
    [event] = flow_events(started, "authorization.failed")
    assert event.fields["outcome"] == "expired"
    assert error_code(tenant.api.result(started["verifier"])) == "expired_token"


# PKCE --------------------------------------------------------------------------------------------


@pytest.fixture
def oauth_connector(
    tenant: Tenant,
    make_linked_connector: Callable[..., Connector],
    oauth_server: OAuthFake,
) -> Connector:
    oauth_server.add_client("acme", method="client_secret_basic", secret="s3cret")
    oauth_server.register_redirect("acme", callback_url())
    return make_linked_connector(
        tenant,
        uid="oauth/acme",
        type="oauth",
        client_id="acme",
        secrets={"client_secret": "s3cret"},
        config={
            "authorizationEndpoint": oauth_server.authorization_endpoint,
            "tokenEndpoint": oauth_server.token_endpoint,
        },
        default_scopes={"user": ["read"]},
    )


def test_a_code_injected_under_another_flow_s_verifier_is_refused(
    tenant: Tenant, oauth_connector: Connector, oauth_server: OAuthFake
) -> None:
    """The attacker's code (bound to the attacker's challenge) pasted into the victim's
    callback: the victim's verifier does not match, the server refuses, nothing is stored."""
    client = Client()
    attacker = tenant.api.consent("oauth/acme", "attacker")
    victim = tenant.api.consent("oauth/acme", "victim")
    _, attacker_url = install_page(client, attacker["url"])
    attacker_code = query_of("?" + at_provider(attacker_url))["code"]
    _, victim_url = install_page(client, victim["url"])
    victim_state = query_of(victim_url)["state"]

    response = callback(client, f"code={attacker_code}&state={victim_state}")

    assert_refused_page(response, "The provider did not complete the authorization")
    assert oauth_server.rejections[-1]["description"] == (
        "code_verifier does not match the challenge"
    )
    assert flow_request(victim).outcome == "failed"
    assert len(flow_events(victim, "authorization.failed")) == 1
    assert flow_request(attacker).outcome == "pending"
    assert not Grant.objects.exists()


# Return URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "return_url",
    [
        "https://evil.example/installed",
        "http://app.example.com/installed",  # the allowed host, another scheme
        "https://app.example.com:8443/installed",  # another port
        "https://app.example.com.evil.example/installed",
        "javascript:alert(1)",
    ],
)
@pytest.mark.parametrize("kind", ["install", "authorize"])
def test_a_foreign_return_url_is_refused_at_the_start(
    tenant: Tenant, connector: Connector, return_url: str, kind: str
) -> None:
    body: dict[str, Any] = {"returnUrl": return_url}
    if kind == "authorize":
        body["subject"] = {"type": "user", "id": "u-1"}

    response = tenant.api.call("POST", f"/v1/connect/{kind}/{UID}", body)

    assert response.status_code == 400, response.content
    assert error_code(response) == "invalid_request"
    assert not AuthorizationRequest.objects.exists()


# Another team ------------------------------------------------------------------------------------


def test_a_state_of_another_team_s_flow_creates_nothing_for_this_team(
    make_tenant: Callable[[], Tenant],
    make_slack_connector: Callable[..., Connector],
) -> None:
    team_a, team_b = make_tenant(), make_tenant()
    with (
        SlackFake(**fake_kwargs("aaaa.1111")) as slack_a,
        SlackFake(**fake_kwargs("bbbb.2222")) as slack_b,
    ):
        slack_b.team = {"id": "T0BBBBBBB", "name": "Team B's workspace"}
        connector_a = make_slack_connector(team_a, slack_a)
        connector_b = make_slack_connector(team_b, slack_b)
        client = Client()
        flow_a = team_a.api.install(UID)
        flow_b = team_b.api.install(UID)
        _, a_url = install_page(client, flow_a["url"])
        code_a = query_of("?" + at_provider(a_url))["code"]
        _, b_url = install_page(client, flow_b["url"])
        b_query = at_provider(b_url)
        state_b = query_of("?" + b_query)["state"]

        # A's code under B's state: the state finds B's request, B's client cannot redeem A's
        # code at B's Slack app, and the flow fails.
        mixed = callback(client, f"code={code_a}&state={state_b}")

        assert_refused_page(mixed, "The provider did not complete the authorization")
        assert flow_request(flow_b).outcome == "failed"
        assert slack_a.calls_to("POST", "/api/oauth.v2.access") == []
        nothing_created()

        # A genuine callback of B's flow (second request) completes B's flow only.
        flow_b2 = team_b.api.install(UID)
        assert walk(client, flow_b2).status_code == 200

        assert not Installation.objects.filter(connector=connector_a).exists()
        assert not Grant.objects.filter(installation__connector=connector_a).exists()
        assert Installation.objects.get(connector=connector_b).tenant_id == "T0BBBBBBB"
        assert flow_request(flow_a).outcome == "pending"
        assert flow_request(flow_a).installation is None
        assert slack_a.bugs == []
        assert slack_b.bugs == []


# Links -------------------------------------------------------------------------------------------


def test_unknown_and_used_links_show_a_clear_page(
    tenant: Tenant,
    connector: Connector,
    slack: SlackFake,
    make_slack_connector: Callable[..., Connector],
    make_tenant: Callable[[], Tenant],
) -> None:
    client = Client()
    started = tenant.api.install(UID)
    path = f"/connect/install/{connector.public_id}"
    other = make_slack_connector(make_tenant(), slack)

    assert_refused_page(client.get(f"{path}?request=sca_unknown"), "This link is not valid")
    assert_refused_page(client.get(path), "This link is not valid")
    assert_refused_page(
        client.get(f"/connect/install/{other.public_id}?request={started['request']}"),
        "This link is not valid",
    )
    assert walk(client, started).status_code == 200
    assert_refused_page(
        client.get(f"{path}?request={started['request']}"), "This link was already used"
    )


# Polling the result ------------------------------------------------------------------------------


def test_the_result_is_pending_then_completed(
    tenant: Tenant, connector: Connector, slack: SlackFake, cache_clock: ManualClock
) -> None:
    started = tenant.api.install(UID)
    pending = tenant.api.result(started["verifier"])
    assert pending.status_code == 400
    assert error_code(pending) == "authorization_pending"

    assert walk(Client(), started).status_code == 200
    cache_clock.advance(1.05)  # one poll a second
    done = tenant.api.result(started["verifier"])

    assert done.status_code == 200, done.content
    installation = Installation.objects.get(connector=connector)
    assert done.json() == {
        "status": "completed",
        "request": started["request"],
        "kind": "install",
        "connector": started["connector"],
        "installationId": installation.public_id,
        "tenantId": "T9TK3CUKW",
        "subject": {"type": "app", "id": None},
    }


def test_polling_twice_within_a_second_is_told_to_slow_down(
    tenant: Tenant, connector: Connector
) -> None:
    started = tenant.api.install(UID)

    first = tenant.api.result(started["verifier"])
    second = tenant.api.result(started["verifier"])

    assert error_code(first) == "authorization_pending"
    assert second.status_code == 400
    assert error_code(second) == "slow_down"


def test_the_result_of_a_denial_is_access_denied(
    tenant: Tenant, connector: Connector, slack: SlackFake
) -> None:
    slack.deny = True
    started = tenant.api.consent(UID, "u-1")
    walk(Client(), started)

    response = tenant.api.result(started["verifier"])

    assert response.status_code == 400
    assert error_code(response) == "access_denied"


def test_the_result_after_expiry_is_expired_token(tenant: Tenant, connector: Connector) -> None:
    started = tenant.api.install(UID, expiresInMs=60_000)
    AuthorizationRequest.objects.filter(public_id=started["request"]).update(
        expires_at=timezone.now() - timedelta(milliseconds=1)
    )

    response = tenant.api.result(started["verifier"])

    assert response.status_code == 400
    assert error_code(response) == "expired_token"
    assert flow_request(started).outcome == "expired"


def test_another_team_polling_the_verifier_finds_nothing(
    tenant: Tenant, connector: Connector, make_tenant: Callable[[], Tenant]
) -> None:
    started = tenant.api.install(UID)
    stranger = make_tenant()

    response = stranger.api.result(started["verifier"])

    assert response.status_code == 404
    assert error_code(response) == "not_found"
    # Nor does the request id stand in for the verifier.
    assert error_code(tenant.api.result(started["request"])) == "not_found"
