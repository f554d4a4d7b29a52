"""Issue 8, point 8: stored webhooks cannot be replayed.

What the intake stores is read by viewers, admins and backups; a signature stored with its
body would let any of them send the request again while it verifies (for GitHub and plain
HMACs, which sign no timestamp: forever). And where the provider's delivery id is not signed
(GitHub, Linear, a custom connector's id header), a captured request sent again under a new id
must still be recognised: by the SHA-256 of its body on the same connector, within the replay
window of its scheme (5 minutes where a timestamp is signed, 4 days where none is).
"""

import importlib.util
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from nacl.signing import SigningKey

from connect.models import ConnectorType, Delivery, InboundEvent, Role
from connect.providers.base import TIMED_REPLAY_WINDOW, UNTIMED_REPLAY_WINDOW
from connect.services.triggers import TriggerReply, trigger_receive
from tests.fixtures import webhook_body
from tests.triggers.conftest import (  # noqa: F401
    STANDARD_SECRET,
    Triggers,
    discord_headers,
    discord_key,
    github_headers,
    hex_hmac,
    linear_body,
    linear_headers,
    post_raw,
    slack_headers,
    standard_headers,
    triggers,
)

pytestmark = pytest.mark.django_db

MIGRATIONS = Path(__file__).resolve().parents[2] / "connect" / "migrations"
CUSTOM = {
    "triggerScheme": "hmac-sha256",
    "signatureHeader": "X-Acme-Signature",
    "eventIdHeader": "X-Acme-Delivery",
}
DISCORD_EVENT = webhook_body("discord", "APPLICATION_AUTHORIZED")
SLACK_EVENT = webhook_body("slack", "app_mention")


def stored_id(response: Any) -> str:
    assert response.status_code == 200, response.content
    payload = json.loads(response.content)
    assert set(payload) == {"ok", "id"}, payload
    return str(payload["id"])


def assert_duplicate(response: Any) -> None:
    assert response.status_code == 200, response.content
    assert json.loads(response.content) == {"ok": True, "duplicate": True}


def lowered(headers: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


# --- Redaction ------------------------------------------------------------------------------------


def signed(kind: str, key: SigningKey) -> tuple[str, str, dict[str, Any], bytes, dict[str, str]]:
    """(type, secret, config, body, headers) of a genuine request of each scheme."""
    if kind == "github":
        body = webhook_body("github", "issues.opened")
        headers = github_headers("gh-secret", body)
        # The legacy SHA-1 signature comes along with the SHA-256 one.
        headers["X-Hub-Signature"] = "sha1=" + "ab" * 20
        return ConnectorType.GITHUB, "gh-secret", {}, body, headers
    if kind == "slack":
        return (
            ConnectorType.SLACK,
            "slack-secret",
            {},
            SLACK_EVENT,
            slack_headers("slack-secret", SLACK_EVENT),
        )
    if kind == "linear":
        body = linear_body()
        return ConnectorType.LINEAR, "lin-secret", {}, body, linear_headers("lin-secret", body)
    if kind == "discord":
        return ConnectorType.DISCORD, "", {}, DISCORD_EVENT, discord_headers(key, DISCORD_EVENT)
    if kind == "standard-webhooks":
        body = webhook_body("standard-webhooks", "contact.created")
        return (
            ConnectorType.OAUTH,
            STANDARD_SECRET,
            {},
            body,
            standard_headers(STANDARD_SECRET, body),
        )
    assert kind == "custom-header"
    body = webhook_body("standard-webhooks", "contact.created")  # any provider's JSON event
    headers = {"X-Acme-Signature": hex_hmac("acme-secret", body), "X-Acme-Delivery": "d-1"}
    return ConnectorType.OAUTH, "acme-secret", CUSTOM, body, headers


SIGNATURES = {
    "github": ["x-hub-signature-256", "x-hub-signature"],
    "slack": ["x-slack-signature"],
    "linear": ["linear-signature"],
    "discord": ["x-signature-ed25519"],
    "standard-webhooks": ["webhook-signature"],
    "custom-header": ["x-acme-signature"],
}
KEPT = {
    "github": ["x-github-delivery", "x-github-event"],
    "slack": ["x-slack-request-timestamp"],
    "linear": ["linear-event"],
    "discord": ["x-signature-timestamp"],
    "standard-webhooks": ["webhook-id", "webhook-timestamp"],
    "custom-header": ["x-acme-delivery"],
}


@pytest.mark.parametrize("kind", sorted(SIGNATURES))
def test_no_signature_is_stored_that_could_replay_the_request(
    client: Client,
    triggers: Triggers,  # noqa: F811
    discord_key: SigningKey,  # noqa: F811
    kind: str,
) -> None:
    type, secret, config, body, headers = signed(kind, discord_key)
    connector = triggers.make(type, secret=secret or None, config=config)

    event = InboundEvent.objects.get(
        public_id=stored_id(post_raw(client, connector, body, headers))
    )

    sent = lowered(headers)
    for name in SIGNATURES[kind]:
        assert event.headers[name] == "[redacted]"
        assert sent[name] not in json.dumps(event.headers)
    # What proves nothing alone stays readable.
    for name in KEPT[kind]:
        assert event.headers[name] == sent[name]


@pytest.fixture
def member_client(client: Client, triggers: Triggers, make_member: Callable[..., User]) -> Client:  # noqa: F811
    client.force_login(make_member(triggers.team, Role.VIEWER))
    return client


def test_the_event_page_shows_no_signature_not_even_of_rows_stored_before(
    member_client: Client,
    triggers: Triggers,  # noqa: F811
) -> None:
    custom = triggers.make(ConnectorType.OAUTH, uid="acme/hooks", secret="s", config=CUSTOM)
    # As rows stored before redaction look (and as no code writes them any more).
    old = InboundEvent.objects.create(
        connector=custom,
        provider_event_id="d-old",
        headers={
            "x-acme-signature": "acme-signature-value-0123",
            "webhook-signature": "v1,standard-signature-value-4567",
            "x-acme-delivery": "d-old",
        },
        body=b"{}",
        verified=True,
    )

    html = member_client.get(f"/admin/connect/inboundevent/{old.pk}/change/").content.decode()

    assert "d-old" in html
    assert "[redacted]" in html
    assert "acme-signature-value-0123" not in html
    assert "standard-signature-value-4567" not in html


def test_the_migration_redacts_signatures_stored_before(triggers: Triggers) -> None:  # noqa: F811
    custom = triggers.make(ConnectorType.OAUTH, uid="acme/hooks", secret="s", config=CUSTOM)
    github = triggers.make(ConnectorType.GITHUB, secret="gh")
    rows = {
        "custom": InboundEvent.objects.create(
            connector=custom,
            provider_event_id="c-1",
            headers={"x-acme-signature": "custom-sig", "x-acme-delivery": "c-1"},
            body=b"{}",
        ),
        "github": InboundEvent.objects.create(
            connector=github,
            provider_event_id="g-1",
            headers={"x-hub-signature-256": "sha256=gh-sig", "x-github-delivery": "g-1"},
            body=b"{}",
        ),
        "other": InboundEvent.objects.create(
            connector=github,
            provider_event_id="g-2",
            headers={"x-acme-signature": "not-this-connectors-header", "user-agent": "ua"},
            body=b"{}",
        ),
    }
    # Found by name, not number: migrations are renumbered when branches merge.
    [path] = MIGRATIONS.glob("*_redact_stored_signature_headers.py")
    spec = importlib.util.spec_from_file_location("redact_migration", path)
    assert spec is not None
    assert spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)

    migration.redact_signatures(django_apps, None)

    for row in rows.values():
        row.refresh_from_db()
    assert rows["custom"].headers == {"x-acme-signature": "[redacted]", "x-acme-delivery": "c-1"}
    assert rows["github"].headers == {
        "x-hub-signature-256": "[redacted]",
        "x-github-delivery": "g-1",
    }
    # Another connector's custom header name means nothing on this one.
    assert rows["other"].headers == {
        "x-acme-signature": "not-this-connectors-header",
        "user-agent": "ua",
    }


# --- GitHub needs its delivery id -----------------------------------------------------------------


def test_a_github_event_without_its_delivery_id_is_refused_and_not_stored(
    client: Client,
    triggers: Triggers,  # noqa: F811
) -> None:
    connector = triggers.make(ConnectorType.GITHUB, secret="gh-secret")
    triggers.destination(connector)
    body = webhook_body("github", "issues.opened")
    headers = github_headers("gh-secret", body)
    del headers["X-GitHub-Delivery"]

    response = post_raw(client, connector, body, headers)

    assert response.status_code == 400
    assert json.loads(response.content)["error"]["code"] == "invalid_request"
    assert "X-GitHub-Delivery" in json.loads(response.content)["error"]["message"]
    assert InboundEvent.objects.count() == 0
    assert Delivery.objects.count() == 0
    # Unsigned as well: the signature is checked first, so that is a 401.
    unsigned = {k: v for k, v in headers.items() if k != "X-Hub-Signature-256"}
    assert post_raw(client, connector, body, unsigned).status_code == 401


# --- Replays under a new id -----------------------------------------------------------------------


def replayable(
    kind: str,
) -> tuple[str, str, dict[str, Any], bytes, Callable[[str], dict[str, str]]]:
    """Schemes whose delivery id travels outside the signature: (type, secret, config, body,
    headers for a given id)."""
    if kind == "github":
        body = webhook_body("github", "issues.opened", {"issue.number": 7})
        return (
            ConnectorType.GITHUB,
            "gh-secret",
            {},
            body,
            lambda id: github_headers("gh-secret", body, delivery=id),
        )
    if kind == "linear":
        body = linear_body()
        return (
            ConnectorType.LINEAR,
            "lin-secret",
            {},
            body,
            lambda id: linear_headers("lin-secret", body, delivery=id),
        )
    assert kind == "custom-header"
    body = webhook_body("standard-webhooks", "contact.created")  # any provider's JSON event
    return (
        ConnectorType.OAUTH,
        "acme-secret",
        CUSTOM,
        body,
        lambda id: {"X-Acme-Signature": hex_hmac("acme-secret", body), "X-Acme-Delivery": id},
    )


@pytest.mark.parametrize("kind", ["github", "linear", "custom-header"])
def test_a_captured_request_sent_again_under_a_new_delivery_id_is_forwarded_once(
    client: Client,
    triggers: Triggers,  # noqa: F811
    kind: str,
) -> None:
    type, secret, config, body, headers_for = replayable(kind)
    connector = triggers.make(type, secret=secret, config=config)
    triggers.destination(connector, path="/a")
    triggers.destination(connector, path="/b")
    stored_id(post_raw(client, connector, body, headers_for("original-id")))

    for n in range(3):
        assert_duplicate(post_raw(client, connector, body, headers_for(f"forged-id-{n}")))

    assert InboundEvent.objects.count() == 1
    assert Delivery.objects.count() == 2
    # Per connector: another connector may well receive the same bytes.
    other = triggers.make(type, uid=f"{type}/other", secret=secret, config=config)
    stored_id(post_raw(client, other, body, headers_for("original-id")))


@pytest.mark.django_db(transaction=True)
def test_copies_of_one_request_racing_each_other_are_stored_once(
    require_postgres: None,
    triggers: Triggers,  # noqa: F811
) -> None:
    connector = triggers.make(ConnectorType.GITHUB, secret="gh-secret")
    triggers.destination(connector)
    body = webhook_body("github", "issues.opened", {"issue.number": 8})
    copies = 8
    start = threading.Barrier(copies)
    replies: list[TriggerReply] = []

    def send(n: int) -> None:
        try:
            start.wait(timeout=10)
            replies.append(
                trigger_receive(
                    connector_id=connector.public_id,
                    headers=lowered(github_headers("gh-secret", body, delivery=f"copy-{n}")),
                    query={},
                    body=body,
                    content_type="application/json",
                )
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(n,)) for n in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert [r.status for r in replies] == [200] * copies
    assert sum(b"duplicate" in r.body for r in replies) == copies - 1
    assert InboundEvent.objects.count() == 1
    assert Delivery.objects.count() == 1


# --- The window -----------------------------------------------------------------------------------


def receive_at(connector_id: str, body: bytes, headers: dict[str, str], moment: float) -> bytes:
    reply = trigger_receive(
        connector_id=connector_id,
        headers=lowered(headers),
        query={},
        body=body,
        content_type="application/json",
        now=moment,
    )
    assert reply.status == 200, reply.body
    return reply.body


def test_the_same_body_is_a_new_event_two_windows_later_not_within_one(
    triggers: Triggers,  # noqa: F811
) -> None:
    """Where a timestamp is signed (Standard Webhooks here) the window is 5 minutes: by then a
    captured request no longer verifies, so the same bytes are a new message (a new signed
    webhook-id), as a sender that repeats a payload means them to be. A duplicate within one
    window, a new event from two on; in between it depends on where the window's slots fall."""
    connector = triggers.make(ConnectorType.OAUTH, secret=STANDARD_SECRET)
    triggers.destination(connector)
    body = webhook_body("standard-webhooks", "contact.created")
    t0 = float(int(time.time()))

    def message(id: str, moment: float) -> bytes:
        headers = standard_headers(STANDARD_SECRET, body, message_id=id, timestamp=int(moment))
        return receive_at(connector.public_id, body, headers, moment)

    assert b"trq_" in message("msg_first", t0)
    assert b"duplicate" in message("msg_second", t0 + TIMED_REPLAY_WINDOW - 1)
    assert b"trq_" in message("msg_third", t0 + 2 * TIMED_REPLAY_WINDOW)
    assert InboundEvent.objects.count() == 2
    assert Delivery.objects.count() == 2


def test_where_no_timestamp_is_signed_the_window_is_four_days(
    triggers: Triggers,  # noqa: F811
) -> None:
    connector = triggers.make(ConnectorType.GITHUB, secret="gh-secret")
    body = webhook_body("github", "issues.opened", {"issue.number": 9})
    t0 = time.time()

    def delivery(id: str, moment: float) -> bytes:
        return receive_at(connector.public_id, body, github_headers("gh-secret", body, id), moment)

    assert UNTIMED_REPLAY_WINDOW == 4 * 24 * 3600
    assert b"trq_" in delivery("one", t0)
    # GitHub signs no time: a day later the captured request still verifies, and is a replay.
    assert b"duplicate" in delivery("two", t0 + 24 * 3600)
    assert b"duplicate" in delivery("three", t0 + UNTIMED_REPLAY_WINDOW - 1)
    assert b"trq_" in delivery("four", t0 + 2 * UNTIMED_REPLAY_WINDOW)


# --- Cost -----------------------------------------------------------------------------------------

TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")


@pytest.mark.django_db(transaction=True)
def test_the_replay_check_adds_no_query_to_an_ingest(
    client: Client,
    triggers: Triggers,  # noqa: F811
) -> None:
    """SPEC section 12 allows 5; the body-hash check rides on the INSERT (two unique
    constraints), so an ingest stays at 4 and a replay costs 2."""
    connector = triggers.make(ConnectorType.GITHUB, secret="gh-secret")
    for path in ("/a", "/b", "/c"):
        triggers.destination(connector, path=path)
    body = webhook_body("github", "issues.opened", {"issue.number": 10})

    def statements(delivery: str, check: Callable[[Any], None]) -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            check(post_raw(client, connector, body, github_headers("gh-secret", body, delivery)))
        return [
            q["sql"]
            for q in captured.captured_queries
            if not q["sql"].upper().startswith(TRANSACTION_CONTROL)
        ]

    fresh = statements("fresh", stored_id)
    replay = statements("replayed", assert_duplicate)

    assert len(fresh) <= 4, "\n".join(fresh)
    assert len(replay) <= 2, "\n".join(replay)
    assert Delivery.objects.count() == 3
