"""The delivery log in the admin: scoped change lists with filters, an event's page, and the
replay actions."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from connect.models import (
    AuditEvent,
    Connector,
    ConnectorType,
    Delivery,
    DeliveryAttempt,
    InboundEvent,
    Project,
    Role,
    Team,
    TriggerDestination,
)
from connect.models.deliveries import DeliveryStatus
from tests.fixtures import webhook_body
from tests.triggers.conftest import github_headers, post_raw

pytestmark = pytest.mark.django_db


@dataclass
class World:
    team: Team
    project: Project
    connector: Connector
    other_connector: Connector
    destination: TriggerDestination
    other_destination: TriggerDestination
    event: InboundEvent
    other_event: InboundEvent  # of other_connector
    failed: Delivery  # event → destination
    succeeded: Delivery  # event → other_destination
    pending: Delivery  # other_event → destination
    attempt_500: DeliveryAttempt
    attempt_200: DeliveryAttempt


@pytest.fixture
def make_world(
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_destination: Callable[..., TriggerDestination],
) -> Callable[[str], World]:
    def make(name: str) -> World:
        team = make_team(f"team-{name}")
        project = make_project(team, slug=f"app-{name}")
        connector = make_connector(
            team,
            uid=f"github/{name}-main",
            type=ConnectorType.GITHUB,
            triggers_enabled=True,
            secrets={"trigger_signing_secret": f"secret-{name}"},
        )
        other_connector = make_connector(
            team,
            uid=f"github/{name}-side",
            type=ConnectorType.GITHUB,
            triggers_enabled=True,
            secrets={"trigger_signing_secret": f"secret-{name}-side"},
        )
        destination = make_destination(connector, project, "production", f"/{name}/one")
        other_destination = make_destination(connector, project, "production", f"/{name}/two")
        side_destination = make_destination(other_connector, project, "production", "/side")

        def event(on: Connector, marker: str) -> InboundEvent:
            return InboundEvent.objects.create(
                connector=on,
                provider_event_id=marker,
                event_type=f"issues.{marker}",
                headers={"x-github-delivery": marker},
                content_type="application/json",
                body=webhook_body("github", "issues.opened", {"issue.title": marker}),
                verified=True,
            )

        main_event = event(connector, f"{name}-main-event")
        side_event = event(other_connector, f"{name}-side-event")
        past = timezone.now() - timedelta(hours=3)
        failed = Delivery.objects.create(
            event=main_event,
            destination=destination,
            status=DeliveryStatus.FAILED,
            attempts=8,
            last_status_code=500,
            next_attempt_at=past,
        )
        succeeded = Delivery.objects.create(
            event=main_event,
            destination=other_destination,
            status=DeliveryStatus.SUCCEEDED,
            attempts=1,
            last_status_code=200,
            next_attempt_at=past,
        )
        pending = Delivery.objects.create(
            event=side_event,
            destination=side_destination,
            status=DeliveryStatus.PENDING,
            attempts=2,
            next_attempt_at=past,
        )
        attempt_500 = DeliveryAttempt.objects.create(
            delivery=failed, status_code=500, latency_ms=4321, error=""
        )
        attempt_200 = DeliveryAttempt.objects.create(
            delivery=succeeded, status_code=200, latency_ms=1234, error=""
        )
        return World(
            team=team,
            project=project,
            connector=connector,
            other_connector=other_connector,
            destination=destination,
            other_destination=other_destination,
            event=main_event,
            other_event=side_event,
            failed=failed,
            succeeded=succeeded,
            pending=pending,
            attempt_500=attempt_500,
            attempt_200=attempt_200,
        )

    return make


@pytest.fixture
def ours(make_world: Callable[[str], World]) -> World:
    return make_world("ours")


@pytest.fixture
def theirs(make_world: Callable[[str], World]) -> World:
    return make_world("theirs")


@pytest.fixture
def member(ours: World, make_member: Callable[..., User]) -> User:
    return make_member(ours.team, Role.MEMBER)


@pytest.fixture
def admin_client(client: Client, member: User) -> Client:
    client.force_login(member)
    return client


def page(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode()


# --- Change lists --------------------------------------------------------------------------------


def test_event_changelist_is_scoped_and_filters_by_connector(
    admin_client: Client, ours: World, theirs: World
) -> None:
    html = page(admin_client, "/admin/connect/inboundevent/")
    assert ours.event.public_id in html
    assert ours.other_event.public_id in html
    assert theirs.event.public_id not in html
    assert theirs.other_event.public_id not in html
    # The connector filter offers our connectors only.
    assert str(ours.connector) in html
    assert str(theirs.connector) not in html

    html = page(
        admin_client, f"/admin/connect/inboundevent/?connector__id__exact={ours.connector.pk}"
    )
    assert ours.event.public_id in html
    assert ours.other_event.public_id not in html

    # Filtering by another team's connector shows nothing of theirs.
    html = page(
        admin_client, f"/admin/connect/inboundevent/?connector__id__exact={theirs.connector.pk}"
    )
    assert theirs.event.public_id not in html
    assert ours.event.public_id not in html


def test_delivery_changelist_is_scoped_and_filters_by_status_and_destination(
    admin_client: Client, ours: World, theirs: World
) -> None:
    html = page(admin_client, "/admin/connect/delivery/")
    for delivery in (ours.failed, ours.succeeded, ours.pending):
        assert delivery.webhook_id in html
    for delivery in (theirs.failed, theirs.succeeded, theirs.pending):
        assert delivery.webhook_id not in html

    html = page(admin_client, "/admin/connect/delivery/?status__exact=failed")
    assert ours.failed.webhook_id in html
    assert ours.succeeded.webhook_id not in html
    assert ours.pending.webhook_id not in html
    assert theirs.failed.webhook_id not in html

    html = page(
        admin_client, f"/admin/connect/delivery/?destination__id__exact={ours.other_destination.pk}"
    )
    assert ours.succeeded.webhook_id in html
    assert ours.failed.webhook_id not in html
    assert ours.pending.webhook_id not in html

    html = page(
        admin_client, f"/admin/connect/delivery/?destination__id__exact={theirs.destination.pk}"
    )
    assert theirs.failed.webhook_id not in html


def test_attempt_changelist_is_scoped_and_filters_by_status_code(
    admin_client: Client, ours: World, theirs: World
) -> None:
    html = page(admin_client, "/admin/connect/deliveryattempt/")
    assert "4321" in html
    assert "1234" in html
    assert ours.failed.webhook_id in html
    assert theirs.failed.webhook_id not in html
    assert theirs.succeeded.webhook_id not in html

    html = page(admin_client, "/admin/connect/deliveryattempt/?status_code__exact=500")
    assert ours.failed.webhook_id in html
    assert ours.succeeded.webhook_id not in html


def test_destination_changelist_is_scoped(admin_client: Client, ours: World, theirs: World) -> None:
    html = page(admin_client, "/admin/connect/triggerdestination/")
    assert "/ours/one" in html
    assert "/theirs/one" not in html


# --- An event's page -----------------------------------------------------------------------------


def test_event_page_shows_body_and_redacted_headers_and_its_deliveries(
    admin_client: Client, ours: World
) -> None:
    body = webhook_body("github", "issues.opened", {"issue.title": "visible-body-marker"})
    headers = {
        **github_headers("secret-ours", body, delivery="admin-view-delivery"),
        "Authorization": "Bearer hidden-bearer-value",
        "Cookie": "session=hidden-cookie-value",
    }
    response = post_raw(admin_client, ours.connector, body, headers)
    assert response.status_code == 200, response.content
    event = InboundEvent.objects.get(provider_event_id="admin-view-delivery")
    deliveries = list(Delivery.objects.filter(event=event))
    assert len(deliveries) == 2

    html = page(admin_client, f"/admin/connect/inboundevent/{event.pk}/change/")

    assert "visible-body-marker" in html
    assert "admin-view-delivery" in html
    assert "[redacted]" in html
    assert "hidden-bearer-value" not in html
    assert "hidden-cookie-value" not in html
    for delivery in deliveries:
        assert delivery.webhook_id in html


def test_delivery_page_shows_attempts(admin_client: Client, ours: World) -> None:
    html = page(admin_client, f"/admin/connect/delivery/{ours.failed.pk}/change/")
    assert ours.failed.webhook_id in html
    assert "4321" in html
    assert "500" in html


@pytest.mark.parametrize("model", ["inboundevent", "delivery", "deliveryattempt"])
def test_other_teams_pages_are_404(admin_client: Client, theirs: World, model: str) -> None:
    pk = {
        "inboundevent": theirs.event.pk,
        "delivery": theirs.failed.pk,
        "deliveryattempt": theirs.attempt_500.pk,
    }[model]
    response = admin_client.get(f"/admin/connect/{model}/{pk}/change/")
    assert response.status_code == 404


# --- Replay actions ------------------------------------------------------------------------------


def action(client: Client, model: str, name: str, *pks: int) -> None:
    response = client.post(
        f"/admin/connect/{model}/",
        {"action": name, "_selected_action": [str(pk) for pk in pks], "index": "0"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]


def state(delivery: Delivery) -> tuple[str, int]:
    delivery.refresh_from_db()
    return delivery.status, delivery.attempts


def test_replay_event_action_resets_its_deliveries(
    admin_client: Client, ours: World, member: User
) -> None:
    since = timezone.now()
    action(admin_client, "inboundevent", "replay", ours.event.pk)
    for delivery in (ours.failed, ours.succeeded):
        assert state(delivery) == (DeliveryStatus.PENDING, 0)
        assert delivery.next_attempt_at >= since
        assert delivery.lease_until is None
    assert state(ours.pending) == (DeliveryStatus.PENDING, 2)  # another event: untouched
    recorded = AuditEvent.objects.get(type="trigger.replayed", team=ours.team)
    assert recorded.actor == f"user:{member.pk}:{member.get_username()}"
    assert recorded.correlation == {"triggerRequestId": ours.event.public_id}


def test_replay_failed_action_resets_only_failed_deliveries_of_the_destination(
    admin_client: Client, ours: World
) -> None:
    # Another failed delivery, of the other destination: not selected.
    ours.succeeded.status = DeliveryStatus.FAILED
    ours.succeeded.save(update_fields=["status"])
    since = timezone.now()
    action(admin_client, "triggerdestination", "replay_failed", ours.destination.pk)
    assert state(ours.failed) == (DeliveryStatus.PENDING, 0)
    assert ours.failed.next_attempt_at >= since
    assert state(ours.succeeded) == (DeliveryStatus.FAILED, 1)
    recorded = AuditEvent.objects.get(type="destination.replayed", team=ours.team)
    assert recorded.fields == {"deliveries": 1}


def test_replay_failed_leaves_succeeded_deliveries_alone(admin_client: Client, ours: World) -> None:
    action(admin_client, "triggerdestination", "replay_failed", ours.other_destination.pk)
    assert state(ours.succeeded) == (DeliveryStatus.SUCCEEDED, 1)
    assert AuditEvent.objects.get(type="destination.replayed").fields == {"deliveries": 0}


def test_actions_cannot_reach_another_teams_rows(
    admin_client: Client, ours: World, theirs: World
) -> None:
    admin_client.post(
        "/admin/connect/inboundevent/",
        {"action": "replay", "_selected_action": [str(theirs.event.pk)], "index": "0"},
    )
    admin_client.post(
        "/admin/connect/triggerdestination/",
        {"action": "replay_failed", "_selected_action": [str(theirs.destination.pk)], "index": "0"},
    )
    assert state(theirs.failed) == (DeliveryStatus.FAILED, 8)
    assert state(theirs.succeeded) == (DeliveryStatus.SUCCEEDED, 1)
    assert not AuditEvent.objects.filter(type__endswith=".replayed").exists()


def test_viewers_cannot_replay(
    client: Client, ours: World, make_member: Callable[..., User]
) -> None:
    client.force_login(make_member(ours.team, Role.VIEWER))
    html = page(client, "/admin/connect/inboundevent/")
    assert ours.event.public_id in html
    assert 'value="replay"' not in html
    client.post(
        "/admin/connect/inboundevent/",
        {"action": "replay", "_selected_action": [str(ours.event.pk)], "index": "0"},
    )
    client.post(
        "/admin/connect/triggerdestination/",
        {"action": "replay_failed", "_selected_action": [str(ours.destination.pk)], "index": "0"},
    )
    assert state(ours.failed) == (DeliveryStatus.FAILED, 8)
    assert state(ours.succeeded) == (DeliveryStatus.SUCCEEDED, 1)
    assert not AuditEvent.objects.filter(type__endswith=".replayed").exists()


def test_members_see_the_replay_actions(admin_client: Client, ours: World) -> None:
    assert 'value="replay"' in page(admin_client, "/admin/connect/inboundevent/")
    assert 'value="replay_failed"' in page(admin_client, "/admin/connect/triggerdestination/")
