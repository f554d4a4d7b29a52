"""A grant ends one way wherever it is ended: its tokens revoked at the provider, the app told
(``grant.revoked``) once, the change audited. The admin's deletes used to drop the row alone,
leaving a live refresh token at the provider and the app none the wiser."""

from collections.abc import Callable

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from connect.models import AuditEvent, Grant, LifecycleEvent, TeamApiToken
from connect.models.teams import Role
from connect.services.api_tokens import api_token_create
from connect.services.audit import actor_label
from tests.admin.pages import form_data
from tests.fakes.oauth import OAuthFake
from tests.lifecycle.conftest import OAUTH_UID, World, delivered, types
from tests.providers.flow import walk

pytestmark = pytest.mark.django_db


def consented(world: World) -> Grant:
    assert walk(Client(), world.owner.api.consent(OAUTH_UID, "u-1")).status_code == 200
    return Grant.objects.get(installation__connector=world.oauth, subject_type="user")


def admin_client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def delete_in_admin(client: Client, grant: Grant, where: str) -> int:
    if where == "grant page":
        url = reverse("admin:connect_grant_delete", args=[grant.pk])
        return client.post(url, {"post": "yes"}).status_code
    if where == "grant list":
        data = {"action": "delete_selected", ACTION_CHECKBOX_NAME: [grant.pk], "post": "yes"}
        return client.post(reverse("admin:connect_grant_changelist"), data).status_code
    assert where == "installation page"
    url = reverse("admin:connect_installation_change", args=[grant.installation_id])
    data = form_data(client.get(url), "installation_form")
    total = int(data["grants-TOTAL_FORMS"][0])
    index = next(i for i in range(total) if data.get(f"grants-{i}-id") == [str(grant.pk)])
    data[f"grants-{index}-DELETE"] = ["on"]
    return client.post(url, data).status_code


@pytest.mark.parametrize("where", ["grant page", "grant list", "installation page"])
def test_a_grant_deleted_in_the_admin_is_revoked_at_the_provider_and_told(
    world: World, oauth_server: OAuthFake, make_member: Callable[..., User], where: str
) -> None:
    hook = world.hear(world.oauth, world.owner, "/hooks/lifecycle")
    grant = consented(world)
    tokens = {grant.reveal("access_token"), grant.reveal("refresh_token")}
    owner = make_member(world.team, Role.OWNER)

    assert delete_in_admin(admin_client(owner), grant, where) == 302

    assert not Grant.objects.filter(pk=grant.pk).exists()
    # At the provider: one of its tokens revoked, as this client, and known there.
    assert len(oauth_server.revocations) == 1
    revoked = oauth_server.revocations[0]
    assert revoked["token"] in tokens
    assert (revoked["client_id"], revoked["known"]) == (world.oauth.client_id, True)
    # The app: told once, about this grant.
    got = delivered(world, [hook])["/hooks/lifecycle"]
    assert types(got) == ["grant.created", "grant.revoked"]
    assert got[1]["data"]["grantId"] == grant.public_id
    assert got[1]["data"]["subject"] == "user:u-1"
    # The log: one event, by the owner, naming the grant, with no token in it.
    event = AuditEvent.objects.get(type=AuditEvent.Type.GRANT_DELETED)
    assert event.actor == actor_label(owner)
    assert event.targets == {
        "connectorId": world.oauth.public_id,
        "installationId": grant.installation.public_id,
        "grantId": grant.public_id,
    }
    assert event.fields == {"subject": "user", "providerRevoked": True}
    assert not any(token in str(event.fields) for token in tokens)


def test_a_member_of_another_team_cannot_delete_the_grant(
    world: World,
    oauth_server: OAuthFake,
    make_team: Callable[..., object],
    make_member: Callable[..., User],
) -> None:
    grant = consented(world)
    outsider = make_member(make_team(slug="globex"), Role.OWNER)
    client = admin_client(outsider)

    for where in ("grant page", "grant list"):
        assert delete_in_admin(client, grant, where) in (200, 302, 404)

    assert Grant.objects.filter(pk=grant.pk, status="active").exists()
    assert oauth_server.revocations == []
    assert not LifecycleEvent.objects.filter(type="grant.revoked").exists()


def test_a_viewer_cannot_delete_the_grant(
    world: World, oauth_server: OAuthFake, make_member: Callable[..., User]
) -> None:
    grant = consented(world)
    client = admin_client(make_member(world.team, Role.VIEWER))

    assert delete_in_admin(client, grant, "grant page") == 403

    assert Grant.objects.filter(pk=grant.pk, status="active").exists()
    assert oauth_server.revocations == []


def test_a_grant_revoked_through_the_api_is_told_once(
    world: World, oauth_server: OAuthFake
) -> None:
    hook = world.hear(world.oauth, world.owner, "/hooks/lifecycle")
    grant = consented(world)
    token = TeamApiToken(team=world.team, name="ops", role=Role.MEMBER)
    secret = api_token_create(token=token, created_by=None, actor="test")
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    path = f"/v1/connect/grants/{grant.public_id}"

    assert Client().delete(path, **bearer).status_code == 204
    assert Client().delete(path, **bearer).status_code == 204  # again: nothing left to do

    grant.refresh_from_db()
    assert (grant.status, grant.reveal("access_token")) == ("revoked", "")
    assert len(oauth_server.revocations) == 1
    got = delivered(world, [hook])["/hooks/lifecycle"]
    assert types(got) == ["grant.created", "grant.revoked"]
    revoked = AuditEvent.objects.get(type=AuditEvent.Type.GRANT_REVOKED)
    assert revoked.fields == {"subject": "user", "providerRevoked": True}


def test_the_admin_says_before_a_delete_that_it_ends_at_the_provider(
    world: World, make_member: Callable[..., User]
) -> None:
    grant = consented(world)
    client = admin_client(make_member(world.team, Role.OWNER))
    pages = {
        "grant.revoked": [
            client.get(reverse("admin:connect_grant_delete", args=[grant.pk])),
            client.post(
                reverse("admin:connect_grant_changelist"),
                {"action": "delete_selected", ACTION_CHECKBOX_NAME: [grant.pk]},
            ),
        ],
        "installation.removed": [
            client.get(reverse("admin:connect_installation_delete", args=[grant.installation_id])),
            client.post(
                reverse("admin:connect_installation_changelist"),
                {"action": "delete_selected", ACTION_CHECKBOX_NAME: [grant.installation_id]},
            ),
        ],
    }
    for told, responses in pages.items():
        for response in responses:
            html = response.content.decode()
            assert response.status_code == 200
            assert "revoked at the provider first" in html
            assert f"<code>{told}</code>" in html
    # Asking is not deleting.
    assert Grant.objects.filter(pk=grant.pk, status="active").exists()


def test_a_grant_set_to_revoked_on_its_page_is_revoked_at_the_provider_and_told(
    world: World, oauth_server: OAuthFake, make_member: Callable[..., User]
) -> None:
    hook = world.hear(world.oauth, world.owner, "/hooks/lifecycle")
    grant = consented(world)
    owner = make_member(world.team, Role.OWNER)
    client = admin_client(owner)
    url = reverse("admin:connect_grant_change", args=[grant.pk])
    data = form_data(client.get(url), "grant_form")
    data["status"] = ["revoked"]

    assert client.post(url, data).status_code == 302

    grant.refresh_from_db()
    assert (grant.status, grant.reveal("access_token"), grant.reveal("refresh_token")) == (
        "revoked",
        "",
        "",
    )
    assert len(oauth_server.revocations) == 1
    assert oauth_server.revocations[0]["known"] is True
    got = delivered(world, [hook])["/hooks/lifecycle"]
    assert types(got) == ["grant.created", "grant.revoked"]
    event = AuditEvent.objects.get(type=AuditEvent.Type.GRANT_REVOKED)
    assert event.actor == actor_label(owner)
    assert not AuditEvent.objects.filter(type=AuditEvent.Type.GRANT_UPDATED).exists()
