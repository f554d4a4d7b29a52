"""A caller of team A never obtains, reads or revokes anything of team B, whatever id it sends.

Both teams hold connectors of the same uids, with grants; A's caller (a deployment credential or
an OIDC token of the app's issuer) sends every id of B it could learn.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from connect.models import Connector, Grant, Installation, TokenIssue
from connect.oidc import oidc_token_mint
from tests.api.conftest import Tenant
from tests.api.wire import APP, assert_error, delete_json, post_json

pytestmark = pytest.mark.django_db


@dataclass
class World:
    """One team's connectors and grants."""

    tenant: Tenant
    oauth: Connector
    installation: Installation  # the oauth connector's only one
    app_grant: Grant
    user_grant: Grant


@pytest.fixture
def make_world(
    make_tenant: Callable[..., Tenant],
    make_oauth_connector: Callable[..., Connector],
    make_grant: Callable[..., Grant],
) -> Callable[[str], World]:
    def make(name: str) -> World:
        tenant = make_tenant(api_key=f"key-{name}")
        oauth = make_oauth_connector(tenant)
        installation = oauth.installations.get()
        in_an_hour = timezone.now() + timedelta(hours=1)
        app_grant = make_grant(
            installation,
            secrets={"access_token": f"app-token-{name}"},
            access_expires_at=in_an_hour,
            scopes=["api"],
        )
        user_grant = make_grant(
            installation,
            subject_type=Grant.SubjectType.USER,
            subject_id="42",
            issuer=tenant.project.public_id,
            secrets={"access_token": f"user-token-{name}", "refresh_token": f"refresh-{name}"},
            access_expires_at=in_an_hour,
            scopes=["read"],
        )
        return World(tenant, oauth, installation, app_grant, user_grant)

    return make


@pytest.fixture(params=["credential", "oidc"])
def a(request: pytest.FixtureRequest, make_world: Callable[[str], World]) -> World:
    world = make_world("a")
    if request.param == "oidc":
        token = oidc_token_mint(project=world.tenant.project, environment="production")
        world.tenant = replace(world.tenant, token=token)
    return world


@pytest.fixture
def b(make_world: Callable[[str], World], make_connector: Callable[..., Connector]) -> World:
    world = make_world("b")
    make_connector(world.tenant.team, uid="api-key/b-only", secrets={"api_key": "key-b-only"})
    return world


def snapshot(world: World) -> list[dict[str, Any]]:
    """Every grant row of the team, as stored."""
    return list(
        Grant.objects.filter(installation__connector__team=world.tenant.team)
        .order_by("pk")
        .values()
    )


USER_42 = {"type": "user", "id": "42"}


def test_b_connectors_do_not_exist_for_a(client: Client, a: World, b: World) -> None:
    refs = [
        b.tenant.connector.public_id,
        b.oauth.public_id,
        b.tenant.team.connectors.get(uid="api-key/b-only").public_id,
        "api-key%2Fb-only",
    ]
    auth = a.tenant.auth
    for ref in refs:
        for body in (APP, {"subject": USER_42}, {"subject": USER_42, "installationId": "*"}):
            assert_error(
                post_json(client, f"/v1/connect/token/{ref}", body, **auth), 404, "not_found"
            )
        assert_error(client.get(f"/v1/connect/connectors/{ref}", **auth), 404, "not_found")
        for body in (APP, {"subject": USER_42}):
            assert_error(
                delete_json(client, f"/v1/connect/connectors/{ref}/tokens", body, **auth),
                404,
                "not_found",
            )
        imported = {"tokens": [{"subject": USER_42, "accessToken": "planted"}]}
        assert_error(
            post_json(client, f"/v1/connect/token/{ref}/import", imported, **auth),
            404,
            "not_found",
        )
    assert not TokenIssue.objects.filter(grant__installation__connector__team=b.tenant.team)
    assert not Grant.objects.filter(installation__connector__team=b.tenant.team).filter(
        subject_id="42", issuer=a.tenant.project.public_id
    )


def test_a_shared_uid_means_a_own_connector(client: Client, a: World, b: World) -> None:
    response = post_json(client, "/v1/connect/token/api-key%2Fkey", APP, **a.tenant.auth)
    assert response.status_code == 200
    assert response.json()["token"] == "key-a"
    assert response.json()["connector"]["id"] == a.tenant.connector.public_id

    for subject, expected in ((APP["subject"], "app-token-a"), (USER_42, "user-token-a")):
        response = post_json(
            client, "/v1/connect/token/oauth%2Facme", {"subject": subject}, **a.tenant.auth
        )
        assert response.status_code == 200, response.content
        assert response.json()["token"] == expected
        assert response.json()["installationId"] == a.installation.public_id

    metadata = client.get("/v1/connect/connectors/oauth%2Facme", **a.tenant.auth)
    assert metadata.json()["id"] == a.oauth.public_id


def test_b_installation_id_on_a_connector(client: Client, a: World, b: World) -> None:
    for subject in (APP["subject"], USER_42):
        body = {"subject": subject, "installationId": b.installation.public_id}
        for ref in ("oauth%2Facme", a.oauth.public_id):
            assert_error(
                post_json(client, f"/v1/connect/token/{ref}", body, **a.tenant.auth),
                422,
                "connector_installation_required",
            )
    assert not TokenIssue.objects.filter(grant__installation=b.installation)


def test_b_project_as_the_user_issuer(client: Client, a: World, b: World) -> None:
    # Naming any other project as the issuer is refused outright, before any lookup.
    subject = {**USER_42, "issuer": b.tenant.project.public_id}
    for body in ({"subject": subject}, {"subject": subject, "installationId": "*"}):
        assert_error(
            post_json(client, "/v1/connect/token/oauth%2Facme", body, **a.tenant.auth),
            403,
            "forbidden",
        )


def test_a_revocations_never_touch_b(client: Client, a: World, b: World) -> None:
    before = snapshot(b)
    assert len(before) == 2
    nothing = {"tokensFound": 0, "deleted": 0, "providerSkipped": 0}
    one = {"tokensFound": 1, "deleted": 1, "providerSkipped": 1}  # no revocation endpoint
    assert_error(
        delete_json(
            client,
            "/v1/connect/connectors/oauth%2Facme/tokens",
            {"subject": {**USER_42, "issuer": b.tenant.project.public_id}},
            **a.tenant.auth,
        ),
        403,
        "forbidden",
    )
    cases: list[tuple[dict[str, Any], dict[str, int]]] = [
        ({"subject": USER_42, "installationId": b.installation.public_id}, nothing),
        ({"subject": APP["subject"], "installationId": b.installation.public_id}, nothing),
        ({"subject": APP["subject"], "installationId": "*"}, one),
        ({"subject": USER_42, "installationId": "*"}, one),
    ]
    for body, counts in cases:
        response = delete_json(
            client, "/v1/connect/connectors/oauth%2Facme/tokens", body, **a.tenant.auth
        )
        assert response.status_code == 200, (body, response.content)
        assert response.json() == {**counts, "providerRevoked": 0, "providerFailed": 0}, body
    assert snapshot(b) == before

    # A's own revocations did happen: its user grant is gone, its app token dropped.
    assert not Grant.objects.filter(pk=a.user_grant.pk).exists()
    a.app_grant.refresh_from_db()
    assert not a.app_grant.has_secret("access_token")
    # And B still gets its tokens.
    for subject, expected in ((APP["subject"], "app-token-b"), (USER_42, "user-token-b")):
        response = post_json(
            client, "/v1/connect/token/oauth%2Facme", {"subject": subject}, **b.tenant.auth
        )
        assert response.json()["token"] == expected


def test_a_cannot_import_into_b(client: Client, a: World, b: World) -> None:
    before = snapshot(b)
    body = {
        "tokens": [
            {"subject": USER_42, "accessToken": "planted", "installationId": b_id}
            for b_id in (b.installation.public_id, b.oauth.public_id)
        ]
    }
    response = post_json(client, "/v1/connect/token/oauth%2Facme/import", body, **a.tenant.auth)
    assert response.status_code == 200, response.content
    assert response.json()["imported"] == 0
    assert [item["succeeded"] for item in response.json()["tokens"]] == [False, False]
    assert snapshot(b) == before
    assert not Grant.objects.filter(installation=b.installation, subject_id="42").exclude(
        pk=b.user_grant.pk
    )
