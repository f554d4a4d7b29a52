"""``connect credentials`` and ``connect events`` against our own resources under
/v1/connect/… (gunicorn, the test database): a credential made by the CLI asks for a token, and
is refused once revoked; events are listed and replayed."""

import json
from collections.abc import Callable

import pytest
from click.testing import Result

from connect.models import (
    Connector,
    Delivery,
    DeploymentCredential,
    InboundEvent,
    TriggerDestination,
)
from connect.models.deliveries import DeliveryStatus
from tests.cli.conftest import Live

live_db = pytest.mark.django_db(transaction=True)


def parsed(result: Result) -> dict:  # type: ignore[type-arg]
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert isinstance(answer, dict)
    return answer


@live_db
def test_credentials_create_list_revoke(live: Live) -> None:
    live.run("create", "api-key", "--uid", "acme/key", "--name", "Acme",
             "--data", '{"values": [{"value": "k-9"}]}', "--project", "web",
             "-e", "production")  # fmt: skip
    made = parsed(live.run("credentials", "create", "--project", "web", "--name", "ci",
                           "--format", "json"))  # fmt: skip
    secret = made["token"]
    assert made["id"].startswith("dpc_")
    assert made["environment"] == "production"

    got = live.run("token", "acme/key", "--credential", secret)
    assert got.exit_code == 0, got.output
    assert got.stdout == "k-9\n"

    listed = parsed(live.run("credentials", "list", "--project", "web", "--format", "json"))
    assert made["id"] in [c["id"] for c in listed["credentials"]]
    assert secret not in json.dumps(listed)  # the secret was shown once
    table = live.run("credentials", "list")
    assert table.exit_code == 0
    assert made["id"] in table.output

    assert live.run("credentials", "revoke", made["id"]).exit_code == 2  # no --yes off a tty
    assert parsed(live.run("credentials", "revoke", made["id"], "--yes", "--format", "json"))
    assert DeploymentCredential.objects.get(public_id=made["id"]).revoked_at is not None
    refused = live.run("token", "acme/key", "--credential", secret)
    assert refused.exit_code == 1
    assert "HTTP 401" in refused.output


@live_db
def test_events_list_and_replay(
    live: Live,
    make_connector: Callable[..., Connector],
    make_destination: Callable[..., TriggerDestination],
) -> None:
    empty = live.run("events", "list")
    assert empty.exit_code == 0
    assert "No events received." in empty.output
    assert parsed(live.run("events", "list", "--format", "json")) == {"events": []}

    connector = make_connector(live.team, uid="github/app")
    destination = make_destination(connector, live.project)
    event = InboundEvent.objects.create(
        connector=connector, provider_event_id="ev-1", event_type="push", headers={}, body=b"{}"
    )
    Delivery.objects.create(event=event, destination=destination, status=DeliveryStatus.FAILED)
    listed = parsed(live.run("events", "list", "--connector", "github/app", "--format", "json"))
    assert [e["id"] for e in listed["events"]] == [event.public_id]
    table = live.run("events", "list", "--type", "push")
    assert table.exit_code == 0
    assert event.public_id in table.output
    assert "push" in table.output
    assert parsed(live.run("events", "replay", event.public_id, "--format", "json")) == {
        "replayed": 1
    }
    missing = live.run("events", "replay", "trq_missing")
    assert missing.exit_code == 1
    assert "HTTP 404" in missing.output
    viewer = live.run("credentials", "create", "--project", "web", token=live.viewer_token)
    assert viewer.exit_code == 1
    assert "HTTP 403" in viewer.output
