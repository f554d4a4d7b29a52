"""Trigger destinations: the signing secret once, rotation with overlap, a test event."""

from connect.models import Delivery, TriggerDestination
from tests.resources.conftest import Api, World

V = "/v1/connect"


def _create(api: Api, world: World, **body: str) -> dict:
    answer = api.post(
        f"{V}/destinations",
        world.member,
        {
            "connector": world.connector.uid,
            "projectId": "web",
            "environment": "production",
            "path": "/hooks",
            **body,
        },
    )
    assert answer.status == 201, answer.body
    return answer.body


def test_the_signing_secret_is_shown_once(api: Api, acme: World) -> None:
    created = _create(api, acme)
    secret = created["signingSecret"]
    assert secret.startswith("whsec_")
    row = TriggerDestination.objects.get(public_id=created["id"])
    assert row.reveal("signing_secret") == secret
    assert secret not in str(api.get(f"{V}/destinations", acme.viewer).body)
    assert secret not in str(api.get(f"{V}/destinations/{created['id']}", acme.viewer).body)


def test_rotation_keeps_the_old_secret_signing_for_a_while(api: Api, acme: World) -> None:
    before = acme.destination.reveal("signing_secret")
    rotated = api.post(f"{V}/destinations/{acme.destination.public_id}/rotate-secret", acme.member)
    assert rotated.status == 200
    acme.destination.refresh_from_db()
    assert acme.destination.reveal("signing_secret") == rotated.body["signingSecret"] != before
    assert acme.destination.reveal("previous_signing_secret") == before
    assert rotated.body["previousExpiresAt"] > 0


def test_a_test_event_is_queued_for_that_destination_only(api: Api, acme: World) -> None:
    second = _create(api, acme, path="/other")
    sent = api.post(f"{V}/destinations/{acme.destination.public_id}/test", acme.member)
    assert sent.status == 201, sent.body
    deliveries = Delivery.objects.filter(event__public_id=sent.body["eventId"])
    assert [d.destination.public_id for d in deliveries] == [acme.destination.public_id]
    assert deliveries.get().webhook_id == sent.body["deliveryId"]
    shown = api.get(f"{V}/deliveries/{sent.body['deliveryId']}", acme.viewer)
    assert shown.body["status"] == "pending"
    assert second["id"] != acme.destination.public_id


def test_paths_and_projects_are_checked(api: Api, acme: World, globex: World) -> None:
    bad_path = api.post(
        f"{V}/destinations",
        acme.member,
        {"connector": acme.connector.uid, "projectId": "web", "environment": "production",
         "path": "hooks"},
    )
    assert bad_path.status == 400
    assert bad_path.body["error"]["message"].startswith("path:")
    foreign = api.post(
        f"{V}/destinations",
        acme.member,
        {"connector": acme.connector.uid, "projectId": globex.project.public_id,
         "environment": "production"},
    )
    assert foreign.status == 404
    foreign_connector = api.post(
        f"{V}/destinations",
        acme.member,
        {"connector": globex.connector.uid, "projectId": "web", "environment": "production"},
    )
    assert foreign_connector.status == 404


def test_the_per_connector_limit_holds(api: Api, acme: World, settings: object) -> None:
    settings.CONNECT_MAX_DESTINATIONS = 2  # type: ignore[attr-defined]
    _create(api, acme, path="/two")
    third = api.post(
        f"{V}/destinations",
        acme.member,
        {"connector": acme.connector.uid, "projectId": "web", "environment": "production",
         "path": "/three"},
    )
    assert third.status == 400
    assert "At most 2" in third.body["error"]["message"]
