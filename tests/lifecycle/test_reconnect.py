"""Reconnect in place: a grant that needs re-authorization is authorized again by the same
account, keeping its installation's and its own ids; another account is refused clearly."""

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client

from connect.models import Grant, Installation, LifecycleEvent, Role
from tests.fakes.slack import SlackFake
from tests.lifecycle.conftest import SLACK_UID, World
from tests.providers.flow import assert_refused_page, local_path, walk

pytestmark = pytest.mark.django_db

USER = {"type": "user", "id": "u-1"}


def broken_user_grant(world: World) -> Grant:
    """Slack installed, u-1 consented, and the grant since found dead."""
    assert walk(Client(), world.owner.api.install(SLACK_UID)).status_code in (200, 302)
    assert walk(Client(), world.owner.api.consent(SLACK_UID, "u-1")).status_code == 200
    grant = Grant.objects.get(installation__connector=world.slack, subject_type="user")
    Grant.objects.filter(pk=grant.pk).update(status="needs_reauth", last_error="invalid_auth")
    grant.refresh_from_db()
    return grant


def test_reconnecting_keeps_every_id_and_makes_the_grant_active(
    world: World, slack: SlackFake
) -> None:
    grant = broken_user_grant(world)
    installation = grant.installation
    old_token = grant.reveal("access_token")

    started = world.owner.api.consent(SLACK_UID, "u-1", installationId=installation.public_id)
    assert walk(Client(), started).status_code == 200

    again = Grant.objects.get(installation__connector=world.slack, subject_type="user")
    assert (again.pk, again.public_id, again.status) == (grant.pk, grant.public_id, "active")
    assert again.installation.public_id == installation.public_id
    assert again.reveal("access_token") != old_token
    assert again.last_error == ""
    assert Installation.objects.filter(connector=world.slack).count() == 1
    answer = world.owner.api.token(SLACK_UID, USER)
    assert answer.status_code == 200, answer.content
    assert answer.json()["token"] == again.reveal("access_token")
    assert LifecycleEvent.objects.filter(type="grant.recovered").count() == 1


def test_reconnecting_as_another_account_is_refused_and_changes_nothing(
    world: World, slack: SlackFake
) -> None:
    grant = broken_user_grant(world)
    slack.user_id = "U9999"  # someone else signs in at Slack

    started = world.owner.api.consent(SLACK_UID, "u-1", installationId=grant.installation.public_id)
    response = walk(Client(), started)

    assert_refused_page(response, "This is a different account")
    assert "nothing was changed" in response.content.decode()
    after = Grant.objects.get(pk=grant.pk)
    assert after.status == "needs_reauth"
    assert after.external_subject == "U1234"
    assert after.access_token_sealed == grant.access_token_sealed
    assert not LifecycleEvent.objects.filter(type="grant.recovered").exists()


def test_reconnecting_into_another_workspace_is_refused(world: World, slack: SlackFake) -> None:
    grant = broken_user_grant(world)
    slack.team = {"id": "T-OTHER", "name": "Another workspace"}
    started = world.owner.api.consent(SLACK_UID, "u-1", installationId=grant.installation.public_id)
    response = walk(Client(), started)
    assert response.status_code == 400
    assert Grant.objects.get(pk=grant.pk).status == "needs_reauth"
    assert Installation.objects.filter(connector=world.slack).count() == 1


# --- The admin's Reconnect link ------------------------------------------------------------------


@pytest.fixture
def member(world: World, make_member: Callable[..., User]) -> Client:
    client = Client()
    client.force_login(make_member(world.team, Role.MEMBER))
    return client


def test_the_admin_makes_a_reconnect_link_that_keeps_the_ids(
    world: World, slack: SlackFake, member: Client
) -> None:
    grant = broken_user_grant(world)
    page = member.get(f"/admin/connect/grant/{grant.pk}/change/").content.decode()
    url = f"/admin/connect/grant/{grant.pk}/reconnect/"
    assert f'href="{url}">Reconnect</a>' in page

    made = member.post(url)
    assert made.status_code == 200
    link = made.context["link"]
    assert "invalid_auth" not in link

    response = Client().get(local_path(link))
    assert response.status_code == 200
    started = {"url": link}
    assert walk(Client(), started).status_code == 200
    again = Grant.objects.get(pk=grant.pk)
    assert (again.public_id, again.status) == (grant.public_id, "active")


def test_an_active_grant_offers_no_reconnect(
    world: World, slack: SlackFake, member: Client
) -> None:
    grant = broken_user_grant(world)
    Grant.objects.filter(pk=grant.pk).update(status="active")
    page = member.get(f"/admin/connect/grant/{grant.pk}/change/").content.decode()
    assert "/reconnect/" not in page
    assert member.post(f"/admin/connect/grant/{grant.pk}/reconnect/").status_code == 404


def test_viewers_and_other_teams_cannot_make_reconnect_links(
    world: World,
    slack: SlackFake,
    make_member: Callable[..., User],
    make_team: Callable[..., object],
) -> None:
    grant = broken_user_grant(world)
    url = f"/admin/connect/grant/{grant.pk}/reconnect/"
    viewer = Client()
    viewer.force_login(make_member(world.team, Role.VIEWER))
    assert viewer.post(url).status_code == 403
    stranger = Client()
    stranger.force_login(make_member(make_team(), Role.OWNER))
    assert stranger.post(url).status_code == 404
    from connect.models import AuthorizationRequest

    assert not AuthorizationRequest.objects.filter(reconnect_grant=grant).exists()
