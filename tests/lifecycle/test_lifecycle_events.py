"""Each transition of a connection reaches the app once, end to end: written with the
transition, sent through the outbox, signed and bearer-authenticated like triggers."""

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from connect import errors
from connect.models import Delivery, Grant, Installation, LifecycleEvent
from connect.services.connectors import connector_save
from connect.services.installations import installation_remove
from connect.services.lifecycle import lifecycle_destination_set, lifecycle_emit
from tests.fakes.oauth import OAuthFake
from tests.fakes.slack import SlackFake
from tests.lifecycle.conftest import OAUTH_UID, SLACK_UID, World, delivered, recorded, types
from tests.providers.flow import walk

pytestmark = pytest.mark.django_db

USER = {"type": "user", "id": "u-1"}


def test_installation_and_grant_transitions_each_arrive_once(
    world: World, slack: SlackFake
) -> None:
    mine = world.hear(world.slack, world.owner, "/mine/connect")
    theirs = world.hear(world.slack, world.other, "/theirs/connect")

    assert walk(Client(), world.owner.api.install(SLACK_UID)).status_code in (200, 302)
    installation = Installation.objects.get(connector=world.slack)
    app = Grant.objects.get(installation=installation, subject_type="app")
    assert walk(Client(), world.owner.api.consent(SLACK_UID, "u-1")).status_code == 200
    user = Grant.objects.get(installation=installation, subject_type="user")
    # Consenting again changes nothing worth telling.
    assert walk(Client(), world.owner.api.consent(SLACK_UID, "u-1")).status_code == 200
    assert world.owner.api.revoke(SLACK_UID, USER).status_code == 200
    installation_remove(installation=installation, actor="test", delete=False)
    # Removing it again is no transition.
    installation_remove(installation=installation, actor="test", delete=False)

    got = delivered(world, [mine, theirs])

    assert types(got["/mine/connect"]) == [
        "installation.created",
        "grant.created",
        "grant.created",
        "grant.revoked",
        "grant.revoked",
        "installation.removed",
    ]
    # The user's grant is the owning project's business only.
    assert types(got["/theirs/connect"]) == [
        "installation.created",
        "grant.created",
        "grant.revoked",
        "installation.removed",
    ]
    created_user = got["/mine/connect"][2]
    assert created_user["id"].startswith("evt_")
    assert isinstance(created_user["timestamp"], int)
    assert created_user["data"] == {
        "connectorId": world.slack.public_id,
        "installationId": installation.public_id,
        "tenantId": installation.tenant_id,
        "grantId": user.public_id,
        "subject": "user:u-1",
    }
    assert got["/theirs/connect"][1]["data"]["grantId"] == app.public_id
    assert got["/theirs/connect"][1]["data"]["subject"] == "app"
    # The same transition is one event: the same id at every destination.
    assert got["/mine/connect"][0]["id"] == got["/theirs/connect"][0]["id"]
    assert LifecycleEvent.objects.filter(connector=world.slack).count() == 6
    assert not Delivery.objects.exclude(status="succeeded").exists()


def dead_refresh(world: World, oauth_server: OAuthFake) -> Grant:
    """A consented user whose refresh token the provider has since revoked."""
    assert walk(Client(), world.owner.api.consent(OAUTH_UID, "u-1")).status_code == 200
    grant = Grant.objects.get(installation__connector=world.oauth, subject_type="user")
    oauth_server.grant_revoke(next(iter(oauth_server._families)), because="password changed")
    Grant.objects.filter(pk=grant.pk).update(
        access_expires_at=timezone.now() - timedelta(minutes=1)
    )
    return grant


def test_needs_reauth_arrives_once_with_the_provider_error_and_recovery_once(
    world: World, oauth_server: OAuthFake
) -> None:
    hook = world.hear(world.oauth, world.owner, "/hooks/lifecycle")
    grant = dead_refresh(world, oauth_server)

    for _ in range(3):
        answer = world.owner.api.token(OAUTH_UID, USER)
        assert answer.status_code == 422, answer.content
    grant.refresh_from_db()
    assert grant.status == "needs_reauth"
    assert "invalid_grant" in grant.last_error
    assert recorded("grant.needs_reauth") == 1

    # Reconnected in place: the same grant, active again, told once.
    started = world.owner.api.consent(OAUTH_UID, "u-1", installationId=grant.installation.public_id)
    assert walk(Client(), started).status_code == 200
    again = Grant.objects.get(installation__connector=world.oauth, subject_type="user")
    assert (again.pk, again.public_id, again.status) == (grant.pk, grant.public_id, "active")
    assert world.owner.api.token(OAUTH_UID, USER).status_code == 200

    got = delivered(world, [hook])["/hooks/lifecycle"]
    assert types(got) == ["grant.created", "grant.needs_reauth", "grant.recovered"]
    assert "invalid_grant" in got[1]["data"]["error"]
    assert got[1]["data"]["grantId"] == grant.public_id
    assert "error" not in got[2]["data"]


def test_a_refresh_that_merely_succeeds_tells_nothing(
    world: World, oauth_server: OAuthFake
) -> None:
    world.hear(world.oauth, world.owner, "/hooks/lifecycle")
    assert walk(Client(), world.owner.api.consent(OAUTH_UID, "u-1")).status_code == 200
    before = LifecycleEvent.objects.count()
    for _ in range(2):
        Grant.objects.filter(subject_type="user").update(
            access_expires_at=timezone.now() - timedelta(minutes=1)
        )
        assert world.owner.api.token(OAUTH_UID, USER).status_code == 200
    assert oauth_server.calls["refresh_token"] == 2
    assert LifecycleEvent.objects.count() == before


@pytest.mark.django_db(transaction=True)
def test_an_event_is_written_only_inside_its_transition(world: World) -> None:
    with pytest.raises(RuntimeError):
        lifecycle_emit("grant.created", connector=world.oauth)
    assert not LifecycleEvent.objects.filter(type="grant.created").exists()


def test_a_disabled_or_unset_destination_receives_nothing(world: World, slack: SlackFake) -> None:
    hook = world.hear(world.slack, world.owner, "/gone")
    lifecycle_destination_set(
        connector=world.slack,
        project=world.owner.project,
        environment="production",
        path=None,
        actor="test",
    )
    assert walk(Client(), world.owner.api.install(SLACK_UID)).status_code in (200, 302)
    assert recorded("installation.created", world.slack) == 1  # recorded for the log
    assert delivered(world, [hook]) == {"/gone": []}


def test_a_lifecycle_destination_needs_the_link_and_the_team(
    world: World, make_team: Any, make_project: Any
) -> None:
    with pytest.raises(errors.InvalidRequest):
        lifecycle_destination_set(
            connector=world.slack,
            project=world.owner.project,
            environment="preview",
            path="/x",
            actor="test",
        )
    stranger = make_project(make_team(), slug="stranger")
    with pytest.raises(errors.NotFound):
        lifecycle_destination_set(
            connector=world.slack, project=stranger, environment="production", path="/x", actor="t"
        )
    with pytest.raises(errors.InvalidRequest):
        lifecycle_destination_set(
            connector=world.slack,
            project=world.owner.project,
            environment="production",
            path="no-slash",
            actor="test",
        )
    # One per link and environment: setting it again moves it.
    first = world.hear(world.slack, world.owner, "/a")
    second = world.hear(world.slack, world.owner, "/b")
    assert (first.pk, second.path) == (second.pk, "/b")


def test_a_connector_that_installs_itself_tells_its_installation_once(world: World) -> None:
    # Client credentials: saving the connector made its one installation.
    assert world.oauth.is_single_account
    installation = Installation.objects.get(connector=world.oauth)
    [told] = LifecycleEvent.objects.filter(connector=world.oauth, type="installation.created")
    assert told.installation_public_id == installation.public_id

    connector_save(connector=world.oauth, actor="test")  # saved again: nothing new to tell

    assert recorded("installation.created", world.oauth) == 1
