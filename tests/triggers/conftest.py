"""Fixtures for the trigger intake: a team with connectors of every receiving type, signers
that sign the way each provider does, and helpers to post raw bodies."""

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.http import HttpResponse
from django.test import Client
from django.test.client import AsyncClientHandler, FakePayload
from nacl.signing import SigningKey
from standardwebhooks.webhooks import Webhook

from connect.models import (
    AuditEvent,
    Connector,
    ConnectorType,
    Delivery,
    InboundEvent,
    Project,
    Team,
    TriggerDestination,
)
from tests.fixtures import webhook_body

STANDARD_SECRET = "whsec_" + base64.b64encode(b"standard-webhooks-test-key-32byt").decode()


def trigger_url(connector: Connector | str) -> str:
    public_id = connector if isinstance(connector, str) else connector.public_id
    return f"/connect/trigger/{public_id}"


def post_raw(
    client: Client,
    connector: Connector | str,
    body: bytes,
    headers: dict[str, str] | None = None,
    *,
    query: str = "",
    content_type: str = "application/json",
    **extra: Any,
) -> HttpResponse:
    """POST exactly these bytes, with these headers (Content-Length from the body, unless
    ``extra`` overrides ``CONTENT_LENGTH``)."""
    path = trigger_url(connector) + (f"?{query}" if query else "")
    return client.generic(
        "POST", path, data=body, content_type=content_type, headers=headers or {}, **extra
    )


def asgi_post(path: str, body: bytes, headers: dict[str, str]) -> HttpResponse:
    """POST through Django's ASGI request: there, unlike WSGI, the body stream is not cut at a
    declared Content-Length, so the view's own read limit is what stands between a chunked or
    lying request and memory."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
        "headers": [(b"host", b"testserver")]
        + [(name.lower().encode(), value.encode("latin-1")) for name, value in headers.items()],
        "_body_file": FakePayload(body),
    }
    response: HttpResponse = async_to_sync(AsyncClientHandler(enforce_csrf_checks=False))(scope)
    return response


def error_of(response: HttpResponse) -> dict[str, Any]:
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    payload = json.loads(response.content)
    assert set(payload) == {"error"}, payload
    assert set(payload["error"]) == {"code", "message"}, payload
    assert isinstance(payload["error"]["message"], str)
    assert payload["error"]["message"]
    return dict(payload["error"])


def assert_nothing_stored() -> None:
    assert InboundEvent.objects.count() == 0
    assert Delivery.objects.count() == 0


def assert_rejected(response: HttpResponse, connector: Connector, *, rejections: int = 1) -> None:
    """401 in the envelope, one more recorded ``trigger.rejected`` and nothing stored."""
    assert response.status_code == 401, response.content
    assert error_of(response)["code"] == "unauthorized"
    recorded = AuditEvent.objects.filter(type="trigger.rejected", team_id=connector.team_id)
    assert recorded.count() == rejections
    assert all(e.targets == {"connectorId": connector.public_id} for e in recorded)
    assert all(e.fields.get("reason") for e in recorded)
    assert_nothing_stored()


# --- Signers: each the way its provider signs ----------------------------------------------------


def hex_hmac(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def slack_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + body
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}


def github_headers(
    secret: str,
    body: bytes,
    delivery: str = "72d3162e-cc78-11e3-81ab-4c9367dc0958",
    event: str = "issues",
) -> dict[str, str]:
    return {
        "X-Hub-Signature-256": "sha256=" + hex_hmac(secret, body),
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Event": event,
    }


def linear_body(offset_ms: int = 0, changes: Mapping[str, Any] | None = None) -> bytes:
    """Linear's recorded Issue create, stamped ``offset_ms`` from now."""
    stamp = {"webhookTimestamp": int(time.time() * 1000) + offset_ms}
    return webhook_body("linear", "Issue.create", {**stamp, **(changes or {})})


def linear_headers(secret: str, body: bytes, delivery: str = "") -> dict[str, str]:
    headers = {"Linear-Signature": hex_hmac(secret, body), "Linear-Event": "Issue"}
    if delivery:
        headers["Linear-Delivery"] = delivery
    return headers


def discord_headers(key: SigningKey, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = key.sign(ts.encode() + body).signature.hex()
    return {"X-Signature-Ed25519": signature, "X-Signature-Timestamp": ts}


def standard_headers(
    secret: str, body: bytes, message_id: str = "msg_2a8Ce3OMBJ4oL6", timestamp: int | None = None
) -> dict[str, str]:
    """Signed by the ``standardwebhooks`` library itself."""
    moment = datetime.fromtimestamp(int(time.time()) if timestamp is None else timestamp, tz=UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, moment, body.decode()),
    }


# --- The tenant ----------------------------------------------------------------------------------


@dataclass
class Triggers:
    team: Team
    project: Project
    make: Callable[..., Connector]
    destination: Callable[..., TriggerDestination]


@pytest.fixture
def discord_key() -> SigningKey:
    return SigningKey(b"d" * 32)


@pytest.fixture
def triggers(
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_destination: Callable[..., TriggerDestination],
    discord_key: SigningKey,
) -> Triggers:
    """A team, a project with production and preview, and a factory for receiving connectors:
    ``triggers.make("slack", secret=...)``; Discord gets ``discord_key``'s public half."""
    team = make_team()
    project = make_project(team, environments=("production", "preview"))

    def make(
        type: str,
        uid: str | None = None,
        secret: str | None = None,
        config: dict[str, Any] | None = None,
        triggers_enabled: bool = True,
    ) -> Connector:
        config = dict(config or {})
        if type == ConnectorType.DISCORD:
            config.setdefault("publicKey", discord_key.verify_key.encode().hex())
        if secret is None:
            secret = STANDARD_SECRET if type == ConnectorType.OAUTH else f"{type}-signing-secret"
        return make_connector(
            team,
            uid=uid or f"{type}/acme",
            type=type,
            secrets={"trigger_signing_secret": secret},
            triggers_enabled=triggers_enabled,
            config=config,
        )

    def destination(
        connector: Connector,
        environment: str = "production",
        path: str = "/hooks",
        enabled: bool = True,
    ) -> TriggerDestination:
        made = make_destination(connector, project, environment, path)
        if not enabled:
            made.enabled = False
            made.save(update_fields=["enabled"])
        return made

    return Triggers(team=team, project=project, make=make, destination=destination)
