"""Importing grants cannot replace what another project receives (issue 8, point 3).

Projects A and B of one team are both linked to one custom OAuth connector. A relies on the
connector's app grant, a jwt-bearer grant, its own user 42 and user 42 of a shared identity
provider (a non-project issuer string). B's deployment imports a planted token for each of those
subjects; A must go on receiving its own tokens. A deployment imports only user grants under its
own issuer; app and jwt-bearer grants, and grants another project made, take a team member.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from connect import errors
from connect.models import Connector, Grant, Installation, Project, Role, Team
from connect.services import grants
from tests.api.wire import post_json

pytestmark = pytest.mark.django_db

SHARED_ISSUER = "https://idp.example.test"
PLANTED = "planted-by-b"


@dataclass
class Team2:
    team: Team
    connector: Connector
    installation: Installation
    a: Project
    b: Project
    a_auth: dict[str, str]
    b_auth: dict[str, str]
    relied_on: dict[str, Grant]  # subject name → the grant A receives


def subject_body(name: str, world: Team2) -> dict[str, Any]:
    return {
        "app": {"type": "app"},
        "jwt-bearer": {"type": "jwt-bearer", "sub": "svc-7"},
        "own-user": {"type": "user", "id": "42", "issuer": world.a.public_id},
        "shared-issuer-user": {"type": "user", "id": "42", "issuer": SHARED_ISSUER},
    }[name]


SUBJECTS = ["app", "jwt-bearer", "own-user", "shared-issuer-user"]


@pytest.fixture
def world(
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
    make_credential: Callable[..., str],
    make_grant: Callable[..., Grant],
) -> Team2:
    team = make_team()
    a = make_project(team, slug="a")
    b = make_project(team, slug="b")
    connector = make_connector(
        team,
        uid="oauth/shared",
        type="oauth",
        client_id="client-id",
        secrets={"client_secret": "client-secret"},
        # Never reached: every grant below holds a token valid for an hour.
        config={"tokenEndpoint": "https://auth.invalid/token", "jwtBearer": {"enabled": True}},
        default_scopes={"app": ["api"], "user": ["read"], "jwt-bearer": ["api"]},
    )
    make_link(connector, a, ["production"])
    make_link(connector, b, ["production"])
    installation = connector.installations.get()
    in_an_hour = timezone.now() + timedelta(hours=1)

    def grant(name: str, subject_type: str, **kw: Any) -> Grant:
        return make_grant(
            installation,
            subject_type=subject_type,
            secrets={"access_token": f"{name}-token-of-a", "refresh_token": f"{name}-refresh"},
            access_expires_at=in_an_hour,
            **kw,
        )

    relied_on = {
        "app": grant("app", "app", scopes=["api"]),
        "jwt-bearer": grant("jwt-bearer", "jwt-bearer", subject_id="svc-7", scopes=["api"]),
        "own-user": grant(
            "own-user", "user", subject_id="42", issuer=a.public_id, project=a, scopes=["read"]
        ),
        "shared-issuer-user": grant(
            "shared-issuer-user",
            "user",
            subject_id="42",
            issuer=SHARED_ISSUER,
            project=a,  # A's consent made it
            scopes=["read"],
        ),
    }
    return Team2(
        team=team,
        connector=connector,
        installation=installation,
        a=a,
        b=b,
        a_auth={"HTTP_AUTHORIZATION": f"Bearer {make_credential(a)}"},
        b_auth={"HTTP_AUTHORIZATION": f"Bearer {make_credential(b)}"},
        relied_on=relied_on,
    )


def stored(grant: Grant) -> dict[str, Any]:
    return (
        Grant.objects.filter(pk=grant.pk)
        .values("access_token_sealed", "refresh_token_sealed", "version", "status", "project_id")
        .get()
    )


def token_for(client: Client, world: Team2, name: str, auth: dict[str, str]) -> Any:
    return post_json(
        client, "/v1/connect/token/oauth%2Fshared", {"subject": subject_body(name, world)}, **auth
    )


def import_as(client: Client, world: Team2, auth: dict[str, str], *items: Any) -> Any:
    response = post_json(
        client, "/v1/connect/token/oauth%2Fshared/import", {"tokens": list(items)}, **auth
    )
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.parametrize("name", SUBJECTS)
def test_project_b_cannot_change_the_token_project_a_receives(
    client: Client, world: Team2, name: str
) -> None:
    grant = world.relied_on[name]
    assert token_for(client, world, name, world.a_auth).json()["token"] == f"{name}-token-of-a"
    before = stored(grant)

    # B names the subject outright, and again through the installation's id.
    item = {"subject": subject_body(name, world), "accessToken": PLANTED, "refreshToken": PLANTED}
    body = import_as(
        client,
        world,
        world.b_auth,
        item,
        {**item, "installationId": world.installation.public_id},
    )

    assert body["imported"] == 0
    assert [t["succeeded"] for t in body["tokens"]] == [False, False]
    assert all(t["error"] for t in body["tokens"])
    assert stored(grant) == before
    response = token_for(client, world, name, world.a_auth)
    assert response.status_code == 200, response.content
    assert response.json()["token"] == f"{name}-token-of-a"
    assert not Grant.objects.filter(project=world.b).exists()


@pytest.mark.parametrize("name", ["app", "jwt-bearer"])
def test_a_deployment_cannot_import_grants_every_project_shares(
    client: Client, world: Team2, name: str
) -> None:
    """Not even the project that uses them alone: an app or jwt-bearer grant serves every
    linked project, so only a team member may replace it."""
    world.relied_on[name].delete()
    item = {"subject": subject_body(name, world), "accessToken": PLANTED}

    body = import_as(client, world, world.a_auth, item)

    assert body["imported"] == 0
    assert "team member" in body["tokens"][0]["error"]
    assert not Grant.objects.filter(subject_type=name).exists()


def test_a_deployment_imports_its_own_users_under_its_own_issuer(
    client: Client, world: Team2
) -> None:
    body = import_as(
        client,
        world,
        world.b_auth,
        {"subject": {"type": "user", "id": "42"}, "accessToken": "b-user-42"},
        {"subject": {"type": "user", "id": "43", "issuer": world.b.public_id},
         "accessToken": "b-user-43"},
    )  # fmt: skip

    assert body["imported"] == 2, body
    imported = Grant.objects.filter(issuer=world.b.public_id)
    assert {(g.subject_id, g.project_id) for g in imported} == {
        ("42", world.b.pk),
        ("43", world.b.pk),
    }
    b42 = post_json(
        client,
        "/v1/connect/token/oauth%2Fshared",
        {"subject": {"type": "user", "id": "42"}},
        **world.b_auth,
    )
    assert b42.json()["token"] == "b-user-42"
    # Same user id, other project: A's user 42 is untouched.
    assert token_for(client, world, "own-user", world.a_auth).json()["token"] == (
        "own-user-token-of-a"
    )
    # And A may re-import its own user (a second migration run), which replaces its token.
    again = import_as(
        client,
        world,
        world.a_auth,
        {"subject": {"type": "user", "id": "42"}, "accessToken": "own-user-again"},
    )
    assert again["imported"] == 1
    assert token_for(client, world, "own-user", world.a_auth).json()["token"] == "own-user-again"


def test_a_deployment_cannot_import_a_shared_issuer_user_even_a_new_one(
    client: Client, world: Team2
) -> None:
    """A non-project issuer is shared by whoever names it: nobody's deployment writes there."""
    body = import_as(
        client,
        world,
        world.b_auth,
        {"subject": {"type": "user", "id": "99", "issuer": SHARED_ISSUER}, "accessToken": PLANTED},
    )

    assert body["imported"] == 0
    assert not Grant.objects.filter(subject_id="99").exists()


# A team member (the admin or the management API, through the same service) ------------------


@pytest.fixture
def importing_member(make_member: Callable[..., User], world: Team2) -> User:
    return make_member(world.team, Role.MEMBER)


def member_import(
    world: Team2, user: User, name: str, token: str, project: Project | None = None
) -> grants.ImportResult:
    return grants.grants_import(
        importer=grants.Importer.member(user=user, team_id=world.team.pk, project=project),
        connector=world.connector,
        items=[{"subject": subject_body(name, world), "accessToken": token}],
    )


@pytest.mark.parametrize("name", ["app", "jwt-bearer"])
def test_a_member_imports_the_teams_shared_grants(
    client: Client, world: Team2, importing_member: User, name: str
) -> None:
    result = member_import(world, importing_member, name, f"{name}-from-member")

    assert result.imported == 1, result.items[0].error
    assert token_for(client, world, name, world.b_auth).json()["token"] == f"{name}-from-member"


@pytest.mark.parametrize("name", ["own-user", "shared-issuer-user"])
def test_a_member_does_not_replace_a_projects_active_user_grant_unasked(
    client: Client, world: Team2, importing_member: User, name: str
) -> None:
    before = stored(world.relied_on[name])

    result = member_import(world, importing_member, name, PLANTED)

    assert result.imported == 0
    assert "another project" in result.items[0].error
    assert stored(world.relied_on[name]) == before
    # Importing for that project (or once the grant is no longer active) replaces it.
    assert member_import(world, importing_member, name, "fresh", project=world.a).imported == 1
    assert token_for(client, world, name, world.a_auth).json()["token"] == "fresh"


def test_a_member_may_replace_a_grant_that_needs_reauthorization(
    client: Client, world: Team2, importing_member: User
) -> None:
    Grant.objects.filter(pk=world.relied_on["shared-issuer-user"].pk).update(
        status=Grant.Status.NEEDS_REAUTH
    )

    result = member_import(world, importing_member, "shared-issuer-user", "re-imported")

    assert result.imported == 1
    grant = Grant.objects.get(pk=world.relied_on["shared-issuer-user"].pk)
    assert (grant.status, grant.project_id) == (Grant.Status.ACTIVE, None)
    assert grant.reveal("access_token") == "re-imported"
    assert grant.reveal("refresh_token") == "", "the previous holder's refresh token is gone"


@pytest.mark.parametrize("role", [Role.VIEWER, None])
def test_a_viewer_or_outsider_cannot_import(
    world: Team2,
    make_member: Callable[..., User],
    make_user: Callable[..., User],
    make_team: Callable[..., Team],
    role: Role | None,
) -> None:
    # The outsider is a member, but of another team.
    user = make_member(world.team, role) if role else make_member(make_team(), Role.OWNER)
    before = stored(world.relied_on["app"])

    with pytest.raises(errors.Forbidden):
        member_import(world, user, "app", PLANTED)

    assert stored(world.relied_on["app"]) == before
