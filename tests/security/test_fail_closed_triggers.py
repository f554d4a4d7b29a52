"""Fail closed on missing secrets (issue 8, point 5).

Anyone can compute an HMAC under the empty key. A connector whose signing secret was never set
must therefore not receive webhooks at all: triggers cannot be enabled without what verifies
them, and every verifier refuses an empty secret instead of computing with it, so even a row
written around validation accepts no forged event.
"""

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from nacl.signing import SigningKey

from connect import signatures
from connect.models import AuditEvent, Connector, ConnectorType, InboundEvent, Role, Team
from connect.providers.base import InvalidWebhook, ProviderCredentials, WebhookRequest
from connect.providers.microsoft import MicrosoftProvider
from connect.services.connectors import connector_save
from tests.admin.pages import form_data
from tests.fixtures import webhook_body
from tests.triggers.conftest import linear_body

EMPTY = b""
NOW = time.time()


def empty_key_hex(message: bytes) -> str:
    """What a forger sends: the HMAC under the key a connector without a secret would use."""
    return hmac.new(EMPTY, message, hashlib.sha256).hexdigest()


@pytest.fixture
def team(make_team: Callable[..., Team]) -> Team:
    return make_team(slug="acme")


# Triggers need what verifies them ----------------------------------------------------------


SECRET_VERIFIED_TYPES = [
    ConnectorType.SLACK,
    ConnectorType.GITHUB,
    ConnectorType.LINEAR,
    ConnectorType.MICROSOFT,
    ConnectorType.OAUTH,
]


@pytest.mark.parametrize("kind", SECRET_VERIFIED_TYPES)
def test_member_cannot_enable_triggers_without_a_signing_secret_through_the_service(
    db: None, team: Team, kind: str
) -> None:
    connector = Connector(
        team=team, uid=f"{kind}/hooks", type=kind, service=kind, name="Hooks", triggers_enabled=True
    )

    with pytest.raises(ValidationError) as refused:
        connector_save(connector=connector, actor="test")

    assert refused.value.message_dict["triggers_enabled"] == [
        "Set the webhook signing secret before enabling triggers: without it no webhook can be "
        "verified."
    ]
    assert not Connector.objects.filter(uid=f"{kind}/hooks").exists()


def test_member_cannot_enable_triggers_without_a_signing_secret_through_the_admin(
    db: None, team: Team, make_member: Callable[..., User], make_connector: Callable[..., Connector]
) -> None:
    connector = make_connector(team, uid="github/acme", type=ConnectorType.GITHUB)
    member = Client()
    member.force_login(make_member(team, Role.MEMBER))
    url = reverse("admin:connect_connector_change", args=[connector.pk])
    data = form_data(member.get(url), "connector_form")
    data["triggers_enabled"] = ["on"]

    refused = member.post(url, data)

    assert refused.status_code == 200
    assert "Set the webhook signing secret before enabling triggers" in refused.content.decode()
    connector.refresh_from_db()
    assert not connector.triggers_enabled

    # Typing the secret in the same save is what it takes.
    data["trigger_signing_secret"] = ["gh-webhook-secret"]
    assert member.post(url, data).status_code == 302
    connector.refresh_from_db()
    assert connector.triggers_enabled
    assert connector.reveal("trigger_signing_secret") == "gh-webhook-secret"


@pytest.mark.parametrize("public_key", [None, "", "zz" * 32, "ab" * 31])
def test_member_cannot_enable_discord_triggers_without_its_public_key(
    db: None, team: Team, public_key: str | None
) -> None:
    # Discord signs with its own Ed25519 key: the public half in `config` is what verifies.
    config = {} if public_key is None else {"publicKey": public_key}
    connector = Connector(
        team=team,
        uid="discord/hooks",
        type=ConnectorType.DISCORD,
        service="discord",
        name="Hooks",
        triggers_enabled=True,
        config=config,
    )

    with pytest.raises(ValidationError) as refused:
        connector_save(connector=connector, actor="test")

    assert "publicKey" in refused.value.message_dict["triggers_enabled"][0]
    connector.config = {"publicKey": SigningKey.generate().verify_key.encode().hex()}
    connector_save(connector=connector, actor="test")
    assert Connector.objects.get(uid="discord/hooks").triggers_enabled


@pytest.mark.parametrize("kind", [ConnectorType.SALESFORCE, ConnectorType.API_KEY])
def test_triggers_cannot_be_enabled_on_a_type_that_receives_no_webhooks(
    db: None, team: Team, kind: str
) -> None:
    connector = Connector(
        team=team, uid=f"{kind}/hooks", type=kind, service=kind, name="Hooks", triggers_enabled=True
    )
    connector.seal("trigger_signing_secret", "whatever")

    with pytest.raises(ValidationError) as refused:
        connector_save(connector=connector, actor="test")

    assert "do not receive webhooks" in refused.value.message_dict["triggers_enabled"][0]


# Every verifier refuses the empty key --------------------------------------------------------


def slack_forgery(body: bytes, now: float = NOW) -> dict[str, Any]:
    ts = str(int(now))
    return {
        "timestamp": ts,
        "signature": "v0=" + empty_key_hex(b"v0:" + ts.encode() + b":" + body),
        "now": now,
    }


def standard_forgery(body: bytes, now: float = NOW) -> dict[str, Any]:
    ts = str(int(now))
    digest = hmac.new(EMPTY, b"msg_1." + ts.encode() + b"." + body, hashlib.sha256).digest()
    return {
        "message_id": "msg_1",
        "timestamp": ts,
        "signature": "v1," + base64.b64encode(digest).decode(),
        "now": now,
    }


BODY = webhook_body("linear", "Issue.create", {"webhookTimestamp": int(NOW * 1000)})
FORGERIES = [
    pytest.param(signatures.slack_v0, "", slack_forgery(BODY), id="slack"),
    pytest.param(
        signatures.github_sha256, "", {"signature": "sha256=" + empty_key_hex(BODY)}, id="github"
    ),
    pytest.param(
        signatures.linear,
        "",
        {"signature": empty_key_hex(BODY), "timestamp_ms": int(NOW * 1000), "now": NOW},
        id="linear",
    ),
    pytest.param(signatures.standard_verify, "", standard_forgery(BODY), id="standard"),
    # A bare prefix decodes to the empty key as well.
    pytest.param(signatures.standard_verify, "whsec_", standard_forgery(BODY), id="standard-bare"),
    pytest.param(signatures.generic_hmac, "", {"signature": empty_key_hex(BODY)}, id="hmac-hex"),
    pytest.param(
        signatures.generic_hmac,
        "",
        {
            "signature": base64.b64encode(hmac.new(EMPTY, BODY, hashlib.sha256).digest()).decode(),
            "encoding": "base64",
        },
        id="hmac-base64",
    ),
]


@pytest.mark.parametrize(("verify", "secret", "forged"), FORGERIES)
def test_a_body_signed_with_the_empty_key_is_refused_by_every_verifier(
    verify: Callable[..., bool], secret: str, forged: dict[str, Any]
) -> None:
    assert verify(secret=secret, body=BODY, **forged) is False


def test_no_hmac_is_ever_computed_with_the_empty_key() -> None:
    with pytest.raises(signatures.EmptyKey):
        signatures.hmac_sha256(EMPTY, BODY)
    # Nor are outgoing deliveries signed with it.
    with pytest.raises(signatures.EmptyKey):
        signatures.standard_signature_header(secrets=[""], message_id="m", timestamp=1, body=BODY)


def test_microsoft_refuses_even_the_handshake_without_a_client_state() -> None:
    credentials = ProviderCredentials(type="microsoft", client_id="", config={}, webhook_secret="")
    handshake = WebhookRequest(headers={}, query={"validationToken": "x"}, body=b"", now=NOW)
    notification = WebhookRequest(
        headers={},
        query={},
        body=webhook_body("microsoft", "change_notification", {"value.0.clientState": ""}),
        now=NOW,
    )

    for request in (handshake, notification):
        with pytest.raises(InvalidWebhook):
            MicrosoftProvider().verify_webhook(credentials, request)


# End to end: a row written around validation still accepts nothing ---------------------------


def forged_headers(kind: str, body: bytes) -> dict[str, str]:
    """Signed just now, so only the empty key can make a refusal."""
    if kind == ConnectorType.SLACK:
        slack = slack_forgery(body, time.time())
        return {
            "HTTP_X_SLACK_REQUEST_TIMESTAMP": slack["timestamp"],
            "HTTP_X_SLACK_SIGNATURE": slack["signature"],
        }
    if kind == ConnectorType.GITHUB:
        return {
            "HTTP_X_HUB_SIGNATURE_256": "sha256=" + empty_key_hex(body),
            "HTTP_X_GITHUB_DELIVERY": "forged-delivery",
            "HTTP_X_GITHUB_EVENT": "issues",
        }
    if kind == ConnectorType.LINEAR:
        return {"HTTP_LINEAR_SIGNATURE": empty_key_hex(body)}
    standard = standard_forgery(body, time.time())
    return {
        "HTTP_WEBHOOK_ID": standard["message_id"],
        "HTTP_WEBHOOK_TIMESTAMP": standard["timestamp"],
        "HTTP_WEBHOOK_SIGNATURE": standard["signature"],
    }


@pytest.mark.parametrize(
    "kind",
    [ConnectorType.SLACK, ConnectorType.GITHUB, ConnectorType.LINEAR, ConnectorType.OAUTH],
)
def test_a_forged_webhook_to_a_connector_without_a_secret_is_refused(
    db: None, team: Team, make_connector: Callable[..., Connector], kind: str
) -> None:
    connector = make_connector(team, uid=f"{kind}/hooks", type=kind)
    # Enabled by a raw write (older data, or a path around validation), secret never set.
    Connector.objects.filter(pk=connector.pk).update(triggers_enabled=True)
    body = {
        ConnectorType.SLACK: webhook_body("slack", "app_mention"),
        ConnectorType.GITHUB: webhook_body("github", "issues.opened"),
        ConnectorType.LINEAR: linear_body(),
        ConnectorType.OAUTH: webhook_body("standard-webhooks", "contact.created"),
    }[kind]

    response = Client().post(
        f"/connect/trigger/{connector.public_id}",
        data=body,
        content_type="application/json",
        **forged_headers(kind, body),
    )

    assert response.status_code == 401, response.content
    assert not InboundEvent.objects.exists()
    assert AuditEvent.objects.filter(type="trigger.rejected").count() == 1
