"""Trigger destinations: the signing secret once, rotation with overlap, a test event."""

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction

from connect.models import Delivery, TriggerDestination
from connect.models.deliveries import LifecycleEventType
from connect.models.destinations import DestinationKind
from connect.services import lifecycle
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
        {
            "connector": acme.connector.uid,
            "projectId": "web",
            "environment": "production",
            "path": "hooks",
        },
    )
    assert bad_path.status == 400
    assert bad_path.body["error"]["message"].startswith("path:")
    foreign = api.post(
        f"{V}/destinations",
        acme.member,
        {
            "connector": acme.connector.uid,
            "projectId": globex.project.public_id,
            "environment": "production",
        },
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
        {
            "connector": acme.connector.uid,
            "projectId": "web",
            "environment": "production",
            "path": "/three",
        },
    )
    assert third.status == 400
    assert "At most 2" in third.body["error"]["message"]


def test_a_lifecycle_destination_is_set_once_per_link_and_environment(
    api: Api, acme: World
) -> None:
    created = _create(api, acme, kind="lifecycle", path="/connect/lifecycle")
    assert created["kind"] == "lifecycle"
    secret = created["signingSecret"]
    assert secret.startswith("whsec_")
    row = TriggerDestination.objects.get(public_id=created["id"])
    assert row.kind == DestinationKind.LIFECYCLE
    assert row.reveal("signing_secret") == secret

    moved = api.post(
        f"{V}/destinations",
        acme.member,
        {
            "connector": acme.connector.uid,
            "projectId": "web",
            "environment": "production",
            "path": "/connect/moved",
            "kind": "lifecycle",
        },
    )
    assert moved.status == 200, moved.body
    assert moved.body["id"] == created["id"]
    assert moved.body["path"] == "/connect/moved"
    assert "signingSecret" not in moved.body
    assert TriggerDestination.objects.filter(kind=DestinationKind.LIFECYCLE).count() == 1

    with transaction.atomic():
        lifecycle.lifecycle_emit(
            LifecycleEventType.INSTALLATION_CREATED,
            connector=acme.connector,
            installation=acme.installation,
        )
    delivered = Delivery.objects.get(destination__public_id=created["id"])
    assert delivered.lifecycle_event is not None
    assert delivered.lifecycle_event.type == "installation.created"


def test_a_viewer_or_an_unlinked_environment_sets_no_lifecycle_destination(
    api: Api, acme: World
) -> None:
    body = {
        "connector": acme.connector.uid,
        "projectId": "web",
        "environment": "production",
        "path": "/connect/lifecycle",
        "kind": "lifecycle",
    }
    assert api.post(f"{V}/destinations", acme.viewer, body).status == 403
    unlinked = api.post(f"{V}/destinations", acme.member, {**body, "environment": "preview"})
    assert unlinked.status in (400, 404), unlinked.body
    assert not TriggerDestination.objects.filter(kind=DestinationKind.LIFECYCLE).exists()


def test_no_destination_on_an_environment_without_a_base_url(api: Api, acme: World) -> None:
    """A member could otherwise point deliveries at nowhere: every attempt would fail, silently,
    for days. Trigger and lifecycle destinations alike are refused with the reason."""
    acme.project.environments.filter(slug="production").update(base_url="")
    before = TriggerDestination.objects.count()
    for kind in ("trigger", "lifecycle"):
        answer = api.post(
            f"{V}/destinations",
            acme.member,
            {"connector": acme.connector.uid, "projectId": "web", "environment": "production",
             "path": "/elsewhere", "kind": kind},
        )  # fmt: skip
        assert answer.status == 400, (kind, answer.body)
        assert answer.body["error"]["code"] == "invalid_request"
        assert "has no base URL" in answer.body["error"]["message"]
    assert TriggerDestination.objects.count() == before


def test_the_admins_form_check_refuses_enabling_one_without_a_base_url(acme: World) -> None:
    """The model's clean() (which the admin's forms and every service save run)."""
    acme.project.environments.filter(slug="production").update(base_url="")
    destination = TriggerDestination.objects.get(pk=acme.destination.pk)
    with pytest.raises(ValidationError) as raised:
        destination.full_clean()
    assert "has no base URL" in str(raised.value.message_dict["environment"])
    destination.enabled = False
    destination.full_clean()  # a disabled one may stay, to keep its history
