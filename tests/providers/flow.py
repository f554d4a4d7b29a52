"""Walking an install or consent flow the way a browser does, and calling the runtime API.

The start goes through the API with a deployment credential; the install page is fetched with
Django's test client; its Continue link is followed with ``requests`` to the provider fake
(without following its redirect); the redirect's query string is then handed to
``/connect/callback``, exactly as the browser would.
"""

import html
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from django.conf import settings
from django.test import Client

from connect.models import AuditEvent, AuthorizationRequest

CONTINUE = re.compile(r'<a class="button" id="continue" href="([^"]+)"')


def callback_url() -> str:
    return f"{settings.PUBLIC_URL}/connect/callback"


def local_path(url: str) -> str:
    """A URL under PUBLIC_URL as the path the test client asks for."""
    assert url.startswith(settings.PUBLIC_URL + "/"), url
    return url[len(settings.PUBLIC_URL) :]


@dataclass
class Api:
    """A deployment calling the runtime API with its bearer credential."""

    client: Client
    bearer: str

    def call(self, method: str, path: str, body: Any = None) -> Any:
        return self.client.generic(
            method,
            path,
            data=json.dumps(body) if body is not None else "",
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {self.bearer}",
        )

    def install(self, connector: str, **body: Any) -> dict[str, Any]:
        response = self.call("POST", f"/v1/connect/install/{connector}", body)
        assert response.status_code == 200, response.content
        return dict(response.json())

    def consent(self, connector: str, user: str, **body: Any) -> dict[str, Any]:
        body = {"subject": {"type": "user", "id": user}, **body}
        response = self.call("POST", f"/v1/connect/authorize/{connector}", body)
        assert response.status_code == 200, response.content
        return dict(response.json())

    def token(self, connector: str, subject: dict[str, Any] | None = None, **body: Any) -> Any:
        body = {"subject": subject or {"type": "app"}, **body}
        return self.call("POST", f"/v1/connect/token/{connector}", body)

    def revoke(self, connector: str, subject: dict[str, Any], **body: Any) -> Any:
        return self.call(
            "DELETE", f"/v1/connect/connectors/{connector}/tokens", {"subject": subject, **body}
        )

    def result(self, verifier: str) -> Any:
        return self.call("GET", f"/v1/connect/result/{verifier}")


def install_page(client: Client, url: str) -> tuple[Any, str]:
    """The install page behind a flow's ``url``, and where its Continue link points."""
    response = client.get(local_path(url))
    assert response.status_code == 200, response.content
    found = CONTINUE.search(response.content.decode())
    assert found, response.content
    return response, html.unescape(found.group(1))


def at_provider(provider_url: str) -> str:
    """Open the provider's page; it sends the browser back to our callback. Returns the
    callback's query string (code and state, or the error)."""
    answer = requests.get(provider_url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, (answer.status_code, answer.text[:500])
    location = answer.headers["Location"]
    assert location.startswith(callback_url() + "?"), location
    return urlsplit(location).query


def callback(client: Client, query: str) -> Any:
    return client.get("/connect/callback?" + query)


def walk(client: Client, started: dict[str, Any]) -> Any:
    """The whole browser round trip of a started flow; the callback's response."""
    _, provider_url = install_page(client, started["url"])
    return callback(client, at_provider(provider_url))


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def error_code(response: Any) -> str:
    assert response["Content-Type"] == "application/json", response.content
    return str(response.json()["error"]["code"])


def flow_request(started: dict[str, Any]) -> AuthorizationRequest:
    return AuthorizationRequest.objects.get(public_id=started["request"])


def flow_events(started: dict[str, Any], type: str) -> list[AuditEvent]:
    """The audit events of one flow of that type."""
    return list(
        AuditEvent.objects.filter(type=type, correlation__authorizationId=started["request"])
    )


def assert_refused_page(response: Any, title: str) -> None:
    """The flow's clear error page: 400, the title shown, no redirect anywhere."""
    assert response.status_code == 400, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("text/html"), response["Content-Type"]
    assert title in response.content.decode(), response.content.decode()
