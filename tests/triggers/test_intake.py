"""The intake, through HTTP: raw bytes in, a verified event and its deliveries stored, or a
clear rejection with nothing stored."""

import base64
import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery import current_app
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from nacl.signing import SigningKey

from connect import signatures
from connect.models import AuditEvent, Connector, ConnectorType, Delivery, InboundEvent
from connect.models.deliveries import DeliveryStatus
from tests.fixtures import webhook, webhook_body
from tests.triggers.conftest import (
    STANDARD_SECRET,
    Triggers,
    asgi_post,
    assert_nothing_stored,
    assert_rejected,
    discord_headers,
    error_of,
    github_headers,
    hex_hmac,
    linear_body,
    linear_headers,
    post_raw,
    slack_headers,
    standard_headers,
    trigger_url,
)

pytestmark = pytest.mark.django_db

SLACK_SECRET = "slack-signing-secret"


def slack_event(event_id: str = "Ev08MFMKH6", team_id: str = "T0001") -> bytes:
    return webhook_body("slack", "app_mention", {"event_id": event_id, "team_id": team_id})


def issue_of_size(size: int) -> bytes:
    """GitHub's recorded issues.opened with an issue body long enough to make ``size`` bytes."""
    bare = len(webhook_body("github", "issues.opened", {"issue.body": ""}))
    body = webhook_body("github", "issues.opened", {"issue.body": "x" * (size - bare)})
    assert len(body) == size
    return body


def ok_id(response: Any) -> str:
    assert response.status_code == 200, response.content
    payload = json.loads(response.content)
    assert set(payload) == {"ok", "id"}, payload
    assert payload["ok"] is True
    assert payload["id"].startswith("trq_")
    return str(payload["id"])


def assert_duplicate(response: Any) -> None:
    assert response.status_code == 200, response.content
    assert json.loads(response.content) == {"ok": True, "duplicate": True}


# --- Slack ---------------------------------------------------------------------------------------


def test_slack_url_verification_is_answered_only_when_signed(
    client: Client, triggers: Triggers
) -> None:
    connector = triggers.make(ConnectorType.SLACK, secret=SLACK_SECRET)
    triggers.destination(connector)
    body = webhook_body("slack", "url_verification")

    unsigned = post_raw(client, connector, body)
    assert_rejected(unsigned, connector)
    assert b"3eZbrw1a" not in unsigned.content

    forged = post_raw(client, connector, body, slack_headers("not-the-secret", body))
    assert_rejected(forged, connector, rejections=2)
    assert b"3eZbrw1a" not in forged.content

    signed = post_raw(client, connector, body, slack_headers(SLACK_SECRET, body))
    assert signed.status_code == 200
    assert signed["Content-Type"] == "application/json"
    assert json.loads(signed.content) == {
        "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    }
    # A handshake is answered, not recorded or forwarded.
    assert_nothing_stored()


def test_slack_event_callback_is_stored_with_its_ids_and_one_delivery_per_enabled_destination(
    client: Client, triggers: Triggers
) -> None:
    connector = triggers.make(ConnectorType.SLACK, secret=SLACK_SECRET)
    first = triggers.destination(connector, "production", "/api/slack")
    second = triggers.destination(connector, "preview", "/api/slack")
    triggers.destination(connector, "production", "/disabled", enabled=False)
    body = slack_event()

    response = post_raw(client, connector, body, slack_headers(SLACK_SECRET, body))

    event = InboundEvent.objects.get(public_id=ok_id(response))
    assert event.connector_id == connector.pk
    assert event.provider_event_id == "Ev08MFMKH6"
    assert event.tenant_id == "T0001"
    assert event.event_type == "app_mention"
    assert event.verified is True
    assert bytes(event.body) == body
    assert event.content_type == "application/json"
    deliveries = Delivery.objects.filter(event=event)
    assert {d.destination_id for d in deliveries} == {first.pk, second.pk}
    assert all(d.status == DeliveryStatus.PENDING and d.attempts == 0 for d in deliveries)
    assert len({d.webhook_id for d in deliveries}) == 2
    assert not AuditEvent.objects.filter(type="trigger.rejected").exists()


def test_slack_retry_of_the_same_event_is_acknowledged_once(
    client: Client, triggers: Triggers
) -> None:
    connector = triggers.make(ConnectorType.SLACK, secret=SLACK_SECRET)
    triggers.destination(connector)
    body = slack_event()
    ok_id(post_raw(client, connector, body, slack_headers(SLACK_SECRET, body)))
    retry = {
        **slack_headers(SLACK_SECRET, body),
        "X-Slack-Retry-Num": "1",
        "X-Slack-Retry-Reason": "http_timeout",
    }
    assert_duplicate(post_raw(client, connector, body, retry))
    assert InboundEvent.objects.count() == 1
    assert Delivery.objects.count() == 1


@pytest.mark.parametrize(
    "make_headers",
    [
        pytest.param(lambda body: slack_headers("wrong-secret", body), id="wrong-secret"),
        pytest.param(
            lambda body: slack_headers(SLACK_SECRET, body, int(time.time()) - 301), id="stale"
        ),
        pytest.param(
            lambda body: slack_headers(SLACK_SECRET, body, int(time.time()) + 310), id="future"
        ),
        pytest.param(
            lambda body: slack_headers(SLACK_SECRET, body + b" "), id="signed-another-body"
        ),
        pytest.param(
            lambda body: {**slack_headers(SLACK_SECRET, body), "X-Slack-Request-Timestamp": "1"},
            id="timestamp-swapped",
        ),
        pytest.param(lambda body: {}, id="unsigned"),
        pytest.param(
            lambda body: {
                **slack_headers(SLACK_SECRET, body),
                "X-Slack-Signature": "v0=" + "é" * 64,
            },
            id="non-ascii-signature",
        ),
    ],
)
def test_slack_rejections(client: Client, triggers: Triggers, make_headers: Any) -> None:
    connector = triggers.make(ConnectorType.SLACK, secret=SLACK_SECRET)
    triggers.destination(connector)
    body = slack_event()
    assert_rejected(post_raw(client, connector, body, make_headers(body)), connector)


def test_slack_signature_made_with_another_connectors_secret_is_rejected(
    client: Client, triggers: Triggers
) -> None:
    ours = triggers.make(ConnectorType.SLACK, uid="slack/ours", secret=SLACK_SECRET)
    theirs = triggers.make(ConnectorType.SLACK, uid="slack/theirs", secret="their-secret")
    triggers.destination(ours)
    triggers.destination(theirs)
    body = slack_event()
    headers = slack_headers("their-secret", body)
    assert_rejected(post_raw(client, ours, body, headers), ours)
    # The same request is genuine for the connector whose secret signed it.
    ok_id(post_raw(client, theirs, body, headers))
    assert InboundEvent.objects.get().connector_id == theirs.pk


# --- GitHub --------------------------------------------------------------------------------------


def test_github_delivery_is_stored_and_deduplicated_on_x_github_delivery(
    client: Client, triggers: Triggers
) -> None:
    connector = triggers.make(ConnectorType.GITHUB, secret="gh-secret")
    for path in ("/a", "/b", "/c"):
        triggers.destination(connector, path=path)
    body = webhook_body("github", "issues.opened", {"installation.id": 4242})
    headers = github_headers("gh-secret", body)

    event = InboundEvent.objects.get(public_id=ok_id(post_raw(client, connector, body, headers)))
    assert event.provider_event_id == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert event.event_type == "issues.opened"
    assert event.tenant_id == "4242"
    assert Delivery.objects.filter(event=event).count() == 3

    # GitHub's manual redelivery: same X-GitHub-Delivery, freshly signed.
    assert_duplicate(post_raw(client, connector, body, headers))
    assert InboundEvent.objects.count() == 1
    assert Delivery.objects.count() == 3

    # The same signed body under another delivery id is a replay (GitHub signs neither the id
    # nor a time): acknowledged, not stored or forwarded again.
    other = github_headers("gh-secret", body, delivery="0b6f7c5e-0000-11e3-81ab-4c9367dc0958")
    assert_duplicate(post_raw(client, connector, body, other))
    assert InboundEvent.objects.count() == 1
    assert Delivery.objects.count() == 3


def test_github_dedupe_is_per_connector(client: Client, triggers: Triggers) -> None:
    one = triggers.make(ConnectorType.GITHUB, uid="github/one", secret="s1")
    two = triggers.make(ConnectorType.GITHUB, uid="github/two", secret="s2")
    body = webhook_body("github", "ping")
    ok_id(post_raw(client, one, body, github_headers("s1", body, event="ping")))
    ok_id(post_raw(client, two, body, github_headers("s2", body, event="ping")))
    assert InboundEvent.objects.count() == 2


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"X-Hub-Signature-256": "sha256=" + "0" * 64}, id="wrong"),
        pytest.param({}, id="missing"),
        pytest.param({"X-Hub-Signature": "sha1=" + "0" * 40}, id="legacy-sha1-only"),
        pytest.param({"X-Hub-Signature-256": "sha256=" + "ÿ" * 64}, id="non-ascii"),
    ],
)
def test_github_rejections(client: Client, triggers: Triggers, headers: dict[str, str]) -> None:
    connector = triggers.make(ConnectorType.GITHUB, secret="gh-secret")
    triggers.destination(connector)
    body = webhook_body("github", "issues.opened")
    response = post_raw(client, connector, body, {"X-GitHub-Delivery": "d-1", **headers})
    assert_rejected(response, connector)


# --- Linear --------------------------------------------------------------------------------------


def test_linear_event_within_the_window_is_stored(client: Client, triggers: Triggers) -> None:
    connector = triggers.make(ConnectorType.LINEAR, secret="lin-secret")
    triggers.destination(connector)
    body = linear_body(offset_ms=-55_000)
    response = post_raw(client, connector, body, linear_headers("lin-secret", body, "dl-1"))
    event = InboundEvent.objects.get(public_id=ok_id(response))
    assert event.event_type == "Issue.create"
    assert event.tenant_id == "8b1d07f4-1f4b-4f4f-9c38-b69e3c0d2a4d"  # its organizationId
    assert event.provider_event_id == "dl-1"
    assert Delivery.objects.filter(event=event).count() == 1
    assert_duplicate(post_raw(client, connector, body, linear_headers("lin-secret", body, "dl-1")))


@pytest.mark.parametrize("offset_ms", [-61_000, 65_000, -3_600_000])
def test_linear_outside_sixty_seconds_is_rejected(
    client: Client, triggers: Triggers, offset_ms: int
) -> None:
    connector = triggers.make(ConnectorType.LINEAR, secret="lin-secret")
    body = linear_body(offset_ms=offset_ms)
    response = post_raw(client, connector, body, linear_headers("lin-secret", body))
    assert_rejected(response, connector)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(linear_body(), id="valid-json"),
        pytest.param(b"{not json", id="malformed"),
        pytest.param(b'{"webhookTimestamp": 1' + b"0" * 400 + b"}", id="huge-timestamp"),
        pytest.param(b"[" * 50_000 + b"]" * 50_000, id="deeply-nested"),
    ],
)
def test_linear_with_a_bad_signature_is_rejected_whatever_the_body(
    client: Client, triggers: Triggers, body: bytes
) -> None:
    """The signature is checked on the raw bytes before the body is read at all."""
    connector = triggers.make(ConnectorType.LINEAR, secret="lin-secret")
    response = post_raw(client, connector, body, {"Linear-Signature": hex_hmac("other", body)})
    assert_rejected(response, connector)


def test_linear_signed_without_a_timestamp_is_rejected(client: Client, triggers: Triggers) -> None:
    connector = triggers.make(ConnectorType.LINEAR, secret="lin-secret")
    body = webhook_body("linear", "Issue.create", {"webhookTimestamp": None})
    assert_rejected(
        post_raw(client, connector, body, linear_headers("lin-secret", body)), connector
    )


# --- Discord -------------------------------------------------------------------------------------


def test_discord_ping_answers_204_and_stores_nothing(
    client: Client, triggers: Triggers, discord_key: SigningKey
) -> None:
    connector = triggers.make(ConnectorType.DISCORD)
    triggers.destination(connector)
    body = webhook_body("discord", "ping")
    response = post_raw(client, connector, body, discord_headers(discord_key, body))
    assert response.status_code == 204
    assert response.content == b""
    assert_nothing_stored()


def test_discord_event_is_stored_and_a_replayed_request_dedupes(
    client: Client, triggers: Triggers, discord_key: SigningKey
) -> None:
    connector = triggers.make(ConnectorType.DISCORD)
    triggers.destination(connector)
    body = webhook_body("discord", "APPLICATION_AUTHORIZED")
    headers = discord_headers(discord_key, body)
    event = InboundEvent.objects.get(public_id=ok_id(post_raw(client, connector, body, headers)))
    assert event.event_type == "APPLICATION_AUTHORIZED"
    assert event.tenant_id == "81384788765712384"
    assert Delivery.objects.filter(event=event).count() == 1
    assert_duplicate(post_raw(client, connector, body, headers))
    assert Delivery.objects.count() == 1


@pytest.mark.parametrize("case", ["other-key", "stale", "tampered", "unsigned", "garbage"])
def test_discord_rejections(
    client: Client, triggers: Triggers, discord_key: SigningKey, case: str
) -> None:
    connector = triggers.make(ConnectorType.DISCORD)
    triggers.destination(connector)
    body = webhook_body("discord", "ping")
    headers = {
        "other-key": discord_headers(SigningKey(b"e" * 32), body),
        "stale": discord_headers(discord_key, body, int(time.time()) - 301),
        "tampered": discord_headers(discord_key, webhook_body("discord", "ping", {"type": 1})),
        "unsigned": {},
        "garbage": {"X-Signature-Ed25519": "zz" * 64, "X-Signature-Timestamp": "soon"},
    }[case]
    # Discord probes endpoints with bad signatures and drops those that answer 2xx.
    assert_rejected(post_raw(client, connector, body, headers), connector)


# --- Microsoft Graph -----------------------------------------------------------------------------


def test_microsoft_validation_token_is_echoed_as_plain_text_without_a_signature(
    client: Client, triggers: Triggers
) -> None:
    connector = triggers.make(ConnectorType.MICROSOFT, secret="client-state-secret")
    triggers.destination(connector)
    response = post_raw(
        client,
        connector,
        b"",
        query="validationToken=Validation%3A%20Testing%20client%20app",
        content_type="text/plain",
    )
    assert response.status_code == 200
    assert response["Content-Type"].split(";")[0] == "text/plain"
    assert response.content == b"Validation: Testing client app"
    assert_nothing_stored()


def test_microsoft_blank_validation_token_is_rejected(client: Client, triggers: Triggers) -> None:
    connector = triggers.make(ConnectorType.MICROSOFT, secret="client-state-secret")
    response = post_raw(client, connector, b"", query="validationToken=", content_type="text/plain")
    assert_rejected(response, connector)


def graph_notification(client_state: str, *states: str) -> bytes:
    """Graph's recorded notification, one per client state (Graph batches them in ``value``)."""
    [recorded] = webhook("microsoft", "change_notification")["value"]
    notifications = [{**recorded, "clientState": s} for s in (client_state, *states)]
    return json.dumps({"value": notifications}).encode()


def test_microsoft_notification_with_the_client_state_is_stored(
    client: Client, triggers: Triggers
) -> None:
    connector = triggers.make(ConnectorType.MICROSOFT, secret="client-state-secret")
    triggers.destination(connector)
    body = graph_notification("client-state-secret")
    event = InboundEvent.objects.get(public_id=ok_id(post_raw(client, connector, body)))
    assert event.event_type == "created"
    assert event.tenant_id == "84bd8158-6d4d-4958-8b9f-9d6445542f95"
    assert Delivery.objects.filter(event=event).count() == 1


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(graph_notification("wrong"), id="mismatch"),
        pytest.param(graph_notification(""), id="blank"),
        pytest.param(graph_notification("client-state-secret", "wrong"), id="one-of-two-wrong"),
        pytest.param(graph_notification("client-state-secreT"), id="case"),
        pytest.param(graph_notification("client-state-secret\u00e9"), id="non-ascii"),
    ],
)
def test_microsoft_client_state_mismatch_is_rejected(
    client: Client, triggers: Triggers, body: bytes
) -> None:
    connector = triggers.make(ConnectorType.MICROSOFT, secret="client-state-secret")
    triggers.destination(connector)
    assert_rejected(post_raw(client, connector, body), connector)


# --- Custom connectors: Standard Webhooks and generic HMAC ---------------------------------------


def test_standard_webhooks_signed_by_the_library_is_stored_and_deduplicated(
    client: Client, triggers: Triggers
) -> None:
    connector = triggers.make(ConnectorType.OAUTH, secret=STANDARD_SECRET)
    triggers.destination(connector)
    body = webhook_body("standard-webhooks", "contact.created")
    headers = standard_headers(STANDARD_SECRET, body, message_id="msg_2KWPBgLlAfxdpx2AI54pPJ85f4W")
    event = InboundEvent.objects.get(public_id=ok_id(post_raw(client, connector, body, headers)))
    assert event.provider_event_id == "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
    assert event.event_type == "contact.created"
    assert_duplicate(post_raw(client, connector, body, headers))
    assert Delivery.objects.count() == 1


@pytest.mark.parametrize("case", ["other-secret", "stale", "tampered", "unsigned", "id-swapped"])
def test_standard_webhooks_rejections(client: Client, triggers: Triggers, case: str) -> None:
    connector = triggers.make(ConnectorType.OAUTH, secret=STANDARD_SECRET)
    body = webhook_body("standard-webhooks", "contact.created")
    tampered = webhook_body("standard-webhooks", "contact.created", {"type": "contact.deleted"})
    other_secret = "whsec_" + "A" * 43 + "="
    headers = {
        "other-secret": standard_headers(other_secret, body),
        "stale": standard_headers(STANDARD_SECRET, body, timestamp=int(time.time()) - 301),
        "tampered": standard_headers(STANDARD_SECRET, tampered),
        "unsigned": {},
        "id-swapped": {**standard_headers(STANDARD_SECRET, body), "webhook-id": "msg_other"},
    }[case]
    assert_rejected(post_raw(client, connector, body, headers), connector)


GENERIC = {
    "triggerScheme": "hmac-sha256",
    "signatureHeader": "X-Acme-Signature",
    "signaturePrefix": "sha256=",
    "signatureEncoding": "base64",
    "eventIdHeader": "X-Acme-Delivery",
}


def generic_signature(secret: str, body: bytes, encoding: str) -> str:
    digest = bytes.fromhex(hex_hmac(secret, body))
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()


@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_generic_hmac_is_stored_with_the_configured_event_id(
    client: Client, triggers: Triggers, encoding: str
) -> None:
    connector = triggers.make(
        ConnectorType.OAUTH, secret="acme-secret", config={**GENERIC, "signatureEncoding": encoding}
    )
    triggers.destination(connector)
    body = webhook_body("standard-webhooks", "contact.created")  # any provider's JSON event
    headers = {
        "X-Acme-Signature": "sha256=" + generic_signature("acme-secret", body, encoding),
        "X-Acme-Delivery": "del-7",
    }
    event = InboundEvent.objects.get(public_id=ok_id(post_raw(client, connector, body, headers)))
    assert event.provider_event_id == "del-7"
    assert event.event_type == "contact.created"
    assert_duplicate(post_raw(client, connector, body, headers))
    assert Delivery.objects.count() == 1


@pytest.mark.parametrize("case", ["other-secret", "no-prefix", "wrong-header", "tampered"])
def test_generic_hmac_rejections(client: Client, triggers: Triggers, case: str) -> None:
    connector = triggers.make(ConnectorType.OAUTH, secret="acme-secret", config=GENERIC)
    body = webhook_body("standard-webhooks", "contact.created")
    good = generic_signature("acme-secret", body, "base64")
    headers = {
        "other-secret": {"X-Acme-Signature": "sha256=" + generic_signature("x", body, "base64")},
        "no-prefix": {"X-Acme-Signature": good},
        "wrong-header": {"X-Signature": "sha256=" + good},
        "tampered": {
            "X-Acme-Signature": "sha256=" + generic_signature("acme-secret", body + b"\n", "base64")
        },
    }[case]
    assert_rejected(post_raw(client, connector, body, headers), connector)


# --- Bad input -----------------------------------------------------------------------------------


def standard_raw(body: bytes) -> dict[str, str]:
    """Standard Webhooks headers over arbitrary bytes (the library only signs text)."""
    now = int(time.time())
    return {
        "webhook-id": "msg_raw",
        "webhook-timestamp": str(now),
        "webhook-signature": signatures.standard_sign(
            secret=STANDARD_SECRET, message_id="msg_raw", timestamp=now, body=body
        ),
    }


def signed_for(kind: str, body: bytes, discord_key: SigningKey) -> dict[str, str]:
    return {
        "slack": lambda: slack_headers(SLACK_SECRET, body),
        "github": lambda: github_headers("gh-secret", body),
        "linear": lambda: linear_headers("lin-secret", body),
        "discord": lambda: discord_headers(discord_key, body),
        "oauth": lambda: standard_raw(body),
        "generic": lambda: {
            "X-Acme-Signature": "sha256=" + generic_signature("acme-secret", body, "base64")
        },
    }[kind]()


RECEIVERS = {
    "slack": (ConnectorType.SLACK, SLACK_SECRET, None),
    "github": (ConnectorType.GITHUB, "gh-secret", None),
    "linear": (ConnectorType.LINEAR, "lin-secret", None),
    "discord": (ConnectorType.DISCORD, None, None),
    "oauth": (ConnectorType.OAUTH, STANDARD_SECRET, None),
    "generic": (ConnectorType.OAUTH, "acme-secret", GENERIC),
}


@pytest.mark.parametrize("kind", list(RECEIVERS))
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"type": "event_callback",', id="truncated"),
        pytest.param(b"\xff\xfe not utf-8", id="not-utf8"),
        pytest.param(b'["a", "list"]', id="not-an-object"),
        pytest.param(b"", id="empty"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="deeply-nested"),
    ],
)
def test_malformed_body_with_a_valid_signature_is_400_and_stores_nothing(
    client: Client, triggers: Triggers, discord_key: SigningKey, kind: str, body: bytes
) -> None:
    type, secret, config = RECEIVERS[kind]
    connector = triggers.make(type, secret=secret, config=config)
    triggers.destination(connector)
    headers = signed_for(kind, body, discord_key)
    response = post_raw(client, connector, body, headers)
    assert response.status_code == 400, response.content
    assert error_of(response)["code"] == "invalid_request"
    assert_nothing_stored()


def test_declared_length_beyond_the_limit_is_413_before_reading(
    client: Client, triggers: Triggers, settings: Any
) -> None:
    settings.CONNECT_TRIGGER_MAX_BYTES = 1024
    connector = triggers.make(ConnectorType.SLACK, secret=SLACK_SECRET)
    triggers.destination(connector)
    body = slack_event()
    response = post_raw(
        client, connector, body, slack_headers(SLACK_SECRET, body), CONTENT_LENGTH="1025"
    )
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"
    assert_nothing_stored()


def test_honest_oversized_body_is_413(client: Client, triggers: Triggers, settings: Any) -> None:
    """The default limit, 1 MiB, with a correctly signed body one byte over it."""
    assert settings.CONNECT_TRIGGER_MAX_BYTES == 1024 * 1024
    connector = triggers.make(ConnectorType.GITHUB, secret="gh-secret")
    triggers.destination(connector)
    body = issue_of_size(1024 * 1024 + 1)
    response = post_raw(client, connector, body, github_headers("gh-secret", body))
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"
    assert_nothing_stored()


def test_body_exactly_at_the_limit_is_accepted(
    client: Client, triggers: Triggers, settings: Any
) -> None:
    settings.CONNECT_TRIGGER_MAX_BYTES = 2048
    connector = triggers.make(ConnectorType.GITHUB, secret="gh-secret")
    body = issue_of_size(2048)
    ok_id(post_raw(client, connector, body, github_headers("gh-secret", body)))


@pytest.mark.parametrize("declared", [None, "10"], ids=["no-content-length", "lying-smaller"])
def test_body_beyond_the_limit_is_413_while_reading(
    triggers: Triggers, settings: Any, declared: str | None
) -> None:
    """Under ASGI the stream is not cut at Content-Length: the view's read limit decides."""
    settings.CONNECT_TRIGGER_MAX_BYTES = 1024
    connector = triggers.make(ConnectorType.GITHUB, secret="gh-secret")
    triggers.destination(connector)
    body = issue_of_size(3000)
    headers = {**github_headers("gh-secret", body), "Content-Type": "application/json"}
    if declared is not None:
        headers["Content-Length"] = declared
    response = asgi_post(trigger_url(connector), body, headers)
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"
    assert_nothing_stored()


def test_lying_smaller_content_length_under_wsgi_reads_only_what_was_declared(
    client: Client, triggers: Triggers
) -> None:
    """WSGI cuts the stream at the declared length: the truncated body fails its signature."""
    connector = triggers.make(ConnectorType.GITHUB, secret="gh-secret")
    triggers.destination(connector)
    body = issue_of_size(3000)
    response = post_raw(
        client, connector, body, github_headers("gh-secret", body), CONTENT_LENGTH="10"
    )
    assert_rejected(response, connector)


def test_content_length_that_is_not_a_number_is_400(client: Client, triggers: Triggers) -> None:
    connector = triggers.make(ConnectorType.GITHUB, secret="gh-secret")
    body = webhook_body("github", "issues.opened")
    response = post_raw(
        client, connector, body, github_headers("gh-secret", body), CONTENT_LENGTH="ten"
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_request"
    assert_nothing_stored()


def test_unknown_connector_is_404(client: Client, triggers: Triggers) -> None:
    body = slack_event()
    response = post_raw(client, "scl_doesnotexist000000", body, slack_headers(SLACK_SECRET, body))
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
    assert_nothing_stored()
    assert not AuditEvent.objects.filter(type="trigger.rejected").exists()


def test_connector_with_triggers_disabled_is_404(client: Client, triggers: Triggers) -> None:
    connector = triggers.make(ConnectorType.SLACK, secret=SLACK_SECRET, triggers_enabled=False)
    triggers.destination(connector)
    body = slack_event()
    response = post_raw(client, connector, body, slack_headers(SLACK_SECRET, body))
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
    assert_nothing_stored()


def test_connector_type_without_webhooks_is_404(client: Client, triggers: Triggers) -> None:
    connector = triggers.make(ConnectorType.API_KEY, uid="api-key/k", triggers_enabled=False)
    # Validation refuses triggers on a type without webhooks; a row written around it (older
    # data, a raw write) must still find nothing here.
    Connector.objects.filter(pk=connector.pk).update(triggers_enabled=True)
    response = post_raw(client, connector, webhook_body("github", "issues.opened"), {})
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
    assert_nothing_stored()


def test_get_is_405_in_the_envelope(client: Client, triggers: Triggers) -> None:
    connector = triggers.make(ConnectorType.SLACK, secret=SLACK_SECRET)
    response = client.get(trigger_url(connector))
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
    assert response["Allow"] == "POST"
    assert_nothing_stored()


# --- What is stored ------------------------------------------------------------------------------


def test_stored_headers_have_credentials_redacted(client: Client, triggers: Triggers) -> None:
    connector = triggers.make(ConnectorType.GITHUB, secret="gh-secret")
    body = webhook_body("github", "installation.created")
    headers = {
        **github_headers("gh-secret", body),
        "Authorization": "Bearer very-secret-token",
        "Cookie": "sessionid=very-secret-cookie",
        "Proxy-Authorization": "Basic very-secret-proxy",
        "X-Api-Key": "very-secret-key",
        "User-Agent": "GitHub-Hookshot/abc123",
    }
    event = InboundEvent.objects.get(public_id=ok_id(post_raw(client, connector, body, headers)))
    stored = event.headers
    assert stored["authorization"] == "[redacted]"
    assert stored["cookie"] == "[redacted]"
    assert stored["proxy-authorization"] == "[redacted]"
    assert stored["x-api-key"] == "[redacted]"
    assert stored["user-agent"] == "GitHub-Hookshot/abc123"
    assert stored["x-github-delivery"] == headers["X-GitHub-Delivery"]
    # A stored signature would let whoever reads the log replay the request.
    assert stored["x-hub-signature-256"] == "[redacted]"
    assert "very-secret" not in json.dumps(stored)


@pytest.mark.parametrize(
    ("body", "event_type", "tenant_id"),
    [
        pytest.param(
            # json.dumps writes these as \u0000 and \ud800 escapes, as providers do.
            webhook_body(
                "github", "issues.opened", {"action": "open\x00ed", "installation.id": "1\x002"}
            ),
            "issues.opened",
            "12",
            id="nul",
        ),
        pytest.param(
            webhook_body(
                "github", "issues.opened", {"action": "\ud800", "installation.id": "\udfff"}
            ),
            "issues.?",
            "?",
            id="lone-surrogates",
        ),
    ],
)
def test_genuine_event_with_unstorable_text_is_stored_not_a_500(
    client: Client, triggers: Triggers, body: bytes, event_type: str, tenant_id: str
) -> None:
    """Valid JSON escapes that no text column takes must not turn a genuine event into a 500
    the provider retries forever."""
    connector = triggers.make(ConnectorType.GITHUB, secret="gh-secret")
    triggers.destination(connector)
    response = post_raw(client, connector, body, github_headers("gh-secret", body))
    event = InboundEvent.objects.get(public_id=ok_id(response))
    assert event.event_type == event_type
    assert event.tenant_id == tenant_id
    assert bytes(event.body) == body  # forwarded exactly as sent
    assert Delivery.objects.filter(event=event).count() == 1


def test_only_enabled_destinations_get_a_delivery(client: Client, triggers: Triggers) -> None:
    connector = triggers.make(ConnectorType.GITHUB, secret="gh-secret")
    enabled = {triggers.destination(connector, path=f"/on/{i}").pk for i in range(3)}
    for i in range(2):
        triggers.destination(connector, path=f"/off/{i}", enabled=False)
    other = triggers.make(ConnectorType.GITHUB, uid="github/other", secret="gh-secret")
    triggers.destination(other, path="/other")
    body = webhook_body("github", "issues.opened")
    event = InboundEvent.objects.get(
        public_id=ok_id(post_raw(client, connector, body, github_headers("gh-secret", body)))
    )
    assert set(Delivery.objects.values_list("destination_id", flat=True)) == enabled
    assert Delivery.objects.filter(event=event).count() == 3


def test_event_without_destinations_is_still_stored(client: Client, triggers: Triggers) -> None:
    connector = triggers.make(ConnectorType.GITHUB, secret="gh-secret")
    body = webhook_body("github", "issues.opened")
    ok_id(post_raw(client, connector, body, github_headers("gh-secret", body)))
    assert InboundEvent.objects.count() == 1
    assert Delivery.objects.count() == 0


@contextlib.contextmanager
def celery_broker(url: str) -> Iterator[None]:
    """Ring this process's doorbells through ``url`` for a while, not eagerly.

    Set on Celery's own configuration (other tests pin it there, so Django's settings may no
    longer reach it), and the pools built for the previous broker are forgotten, as Celery does
    in a forked child."""
    conf = current_app.conf
    saved = conf.broker_url, conf.broker_transport_options, conf.task_always_eager

    def use(url: str, transport_options: dict[str, Any], eager: bool) -> None:
        conf.broker_url = url
        conf.broker_transport_options = transport_options
        conf.task_always_eager = eager
        current_app._pool = None
        current_app.amqp._producer_pool = None

    use(url, {}, False)
    in_use = current_app.amqp.producer_pool.connections.connection.as_uri()
    assert in_use.split("://")[0] == url.split("://")[0], in_use
    try:
        yield
    finally:
        use(*saved)


@pytest.fixture
def memory_broker() -> Iterator[None]:
    """The on-commit doorbell rings into kombu's in-memory transport: nothing leaves the test."""
    with celery_broker("memory://"):
        yield


@pytest.fixture
def broker_down() -> Iterator[None]:
    """Celery pointed at a port nothing listens on."""
    with celery_broker("redis://127.0.0.1:1/0"):
        yield


TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("memory_broker")
def test_ingest_takes_at_most_five_queries(client: Client, triggers: Triggers) -> None:
    """Outside a test transaction, as in production. PostgreSQL sends BEGIN/COMMIT implicitly;
    SQLite's ``BEGIN IMMEDIATE`` and ``COMMIT`` are statements, so they are not counted."""
    connector = triggers.make(ConnectorType.GITHUB, secret="gh-secret")
    for path in ("/a", "/b", "/c"):
        triggers.destination(connector, path=path)
    body = webhook_body("github", "issues.opened")
    headers = github_headers("gh-secret", body)
    with CaptureQueriesContext(connection) as captured:
        ok_id(post_raw(client, connector, body, headers))
    statements = [
        q["sql"]
        for q in captured.captured_queries
        if not q["sql"].upper().startswith(TRANSACTION_CONTROL)
    ]
    assert len(statements) <= 5, "\n".join(statements)
    # One INSERT for all the deliveries, not one per destination.
    delivery_inserts = [s for s in statements if s.startswith('INSERT INTO "connect_delivery"')]
    assert len(delivery_inserts) == 1
    assert Delivery.objects.count() == 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("broker_down")
def test_broker_down_still_answers_fast_and_keeps_the_event(
    client: Client, triggers: Triggers, caplog: pytest.LogCaptureFixture
) -> None:
    assert current_app.conf.broker_url == "redis://127.0.0.1:1/0"
    connector = triggers.make(ConnectorType.GITHUB, secret="gh-secret")
    for path in ("/a", "/b", "/c"):
        triggers.destination(connector, path=path)
    body = webhook_body("github", "issues.opened")
    started = time.monotonic()
    response = post_raw(client, connector, body, github_headers("gh-secret", body))
    elapsed = time.monotonic() - started
    event = InboundEvent.objects.get(public_id=ok_id(response))
    assert elapsed < 5, f"took {elapsed:.1f} s with the broker down"
    deliveries = Delivery.objects.filter(event=event)
    assert deliveries.count() == 3
    # Nothing sent them: they wait, due, for the sweeper.
    assert all(d.status == DeliveryStatus.PENDING and d.attempts == 0 for d in deliveries)
    # The doorbell was tried after the commit, and its failure only logged.
    warnings = [r for r in caplog.records if r.name == "connect.services.deliveries"]
    assert [r.getMessage() for r in warnings] == [
        "could not enqueue deliveries; the sweeper will pick them up"
    ]
