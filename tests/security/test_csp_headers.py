"""Every page sends a strict Content-Security-Policy (issue 8, point 1).

No inline script anywhere, no framing, no plugins, forms only to us, images from us or https
origins; the flow pages (whose URLs carry ``code``, ``state`` and request ids) also send
``Referrer-Policy: no-referrer``, their redirects included. Their branding is a ``<style>``
element carrying the request's nonce, not a ``style`` attribute the policy would block.
"""

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from connect.models import AuthorizationRequest, Connector, ConnectorType, Role, Team

STRICT = {
    "default-src": "'self'",
    "script-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def policy(response: Any) -> dict[str, str]:
    header = response.headers.get("Content-Security-Policy", "")
    directives = (part.strip().split(" ", 1) for part in header.split(";") if part.strip())
    return {name: value for name, value in ((d[0], d[1] if len(d) > 1 else "") for d in directives)}


def assert_strict(response: Any) -> dict[str, str]:
    found = policy(response)
    for name, value in STRICT.items():
        assert found.get(name) == value, (name, found)
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert "unsafe-eval" not in response.headers["Content-Security-Policy"]
    assert found["img-src"].split()[:2] == ["'self'", "https:"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    return found


@pytest.fixture
def connector(
    make_team: Callable[..., Team], make_connector: Callable[..., Connector]
) -> Connector:
    return make_connector(
        make_team(slug="acme"),
        uid="oauth/acme",
        type=ConnectorType.OAUTH,
        client_id="acme-client",
        config={
            "authorizationEndpoint": "https://idp.example/authorize",
            "tokenEndpoint": "https://idp.example/token",
        },
        icon_url="https://cdn.example/acme.png",
        background_color="#4a154b",
        accent_color="#ecb22e",
        allowed_return_origins=["https://app.example.com"],
    )


@pytest.fixture
def member(make_member: Callable[..., User], connector: Connector) -> Client:
    client = Client()
    client.force_login(make_member(connector.team, Role.MEMBER))
    return client


@pytest.fixture
def flow(
    connector: Connector, make_authorization_request: Callable[..., AuthorizationRequest]
) -> AuthorizationRequest:
    return make_authorization_request(
        connector,
        kind="consent",
        subject_type="user",
        return_url="https://app.example.com/done",
    )


def install_path(flow: AuthorizationRequest) -> str:
    return f"/connect/install/{flow.connector.public_id}?request={flow.public_id}"


def test_admin_pages_send_a_strict_policy(member: Client, connector: Connector) -> None:
    for path in (
        reverse("admin:index"),
        reverse("admin:connect_connector_changelist"),
        reverse("admin:connect_connector_change", args=[connector.pk]),
        reverse("admin:connect_connector_add"),
    ):
        response = member.get(path)
        assert response.status_code == 200, path
        assert_strict(response)


def test_the_sign_in_page_sends_a_strict_policy(db: None) -> None:
    assert_strict(Client().get(reverse("account_login")))


def test_the_flow_start_page_sends_a_strict_policy_and_no_referrer(
    flow: AuthorizationRequest,
) -> None:
    response = Client().get(install_path(flow))

    assert response.status_code == 200
    assert_strict(response)
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_the_flow_pages_run_no_inline_script_and_style_only_under_the_nonce(
    flow: AuthorizationRequest,
) -> None:
    response = Client().get(install_path(flow))
    html = response.content.decode()

    assert "<script" not in html
    assert not re.search(r"\sstyle=", html), "a style attribute is blocked by the policy"
    assert not re.search(r"\son[a-z]+=", html), "an inline event handler is script"
    styles = re.findall(r'<style nonce="([^"]+)">([^<]*)</style>', html)
    assert len(styles) == 1
    nonce, css = styles[0]
    assert f"'nonce-{nonce}'" in policy(response)["style-src"].split()
    assert "--brand-bg: #4a154b" in css
    assert "--brand-accent: #ecb22e" in css


def test_each_flow_page_has_its_own_nonce(flow: AuthorizationRequest) -> None:
    first = policy(Client().get(install_path(flow)))["style-src"]
    second = policy(Client().get(install_path(flow)))["style-src"]

    assert first != second


@pytest.mark.parametrize("query", ["?state=unknown&code=abc", "?error=access_denied"])
def test_the_callback_error_page_sends_no_referrer(db: None, query: str) -> None:
    response = Client().get(f"/connect/callback{query}")

    assert response.status_code == 400
    assert_strict(response)
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_a_declined_consent_links_back_to_the_app_without_a_referrer(
    flow: AuthorizationRequest,
) -> None:
    # The callback URL carried the state: the link back to the app must not send it along.
    response = Client().get(f"/connect/callback?state={flow.state}&error=access_denied")

    assert response.status_code == 400
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "https://app.example.com/done?request=" in response.content.decode()


def test_admin_pages_carry_no_inline_script_or_style_attribute(
    member: Client, connector: Connector
) -> None:
    for path in (
        reverse("admin:connect_connector_change", args=[connector.pk]),
        reverse("admin:connect_connector_install_link", args=[connector.pk]),
    ):
        html = member.get(path).content.decode()
        assert not re.search(r"\sstyle=", html), path
        assert not re.search(r"\son[a-z]+=", html), path
        for script in re.findall(r"<script[^>]*>", html):
            assert "src=" in script or 'type="application/json"' in script, (path, script)
