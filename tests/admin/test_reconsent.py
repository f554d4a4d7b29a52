"""'Must consent again': grants issued before a connector's default scopes grew, found by the
service and named on the connector page, in one query however many grants there are."""

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from connect.models import Connector, Grant, Installation, Role, Team
from connect.services.connectors import connector_reconsent_needed


@pytest.fixture
def team(make_team: Callable[..., Team]) -> Team:
    return make_team("acme")


@pytest.fixture
def connector(team: Team, make_connector: Callable[..., Connector]) -> Connector:
    return make_connector(
        team,
        uid="api-key/scoped",
        secrets={"api_key": "the-key"},
        default_scopes={"user": ["read", "write"], "app": []},
    )


@pytest.fixture
def installation(
    connector: Connector, make_installation: Callable[..., Installation]
) -> Installation:
    return make_installation(connector, tenant_id="T1", display_name="Acme workspace")


def test_grants_without_a_default_scope_must_consent_again(
    connector: Connector, installation: Installation, make_grant: Callable[..., Grant]
) -> None:
    make_grant(installation, Grant.SubjectType.USER, "u_old", scopes=["read"])
    make_grant(installation, Grant.SubjectType.USER, "u_new", scopes=["read", "write", "x"])
    # Scopes not recorded: nothing to compare, so not named.
    make_grant(installation, Grant.SubjectType.USER, "u_unknown", scopes=[])
    # The app has no default scopes: it lacks none.
    make_grant(installation, Grant.SubjectType.APP, "", scopes=["other"])
    revoked = make_grant(installation, Grant.SubjectType.USER, "u_gone", scopes=["read"])
    revoked.status = Grant.Status.REVOKED
    revoked.save()

    stale = connector_reconsent_needed(connector=connector)

    assert [str(grant) for grant in stale] == ["user:u_old"]
    assert stale[0].installation_name == "Acme workspace"


def test_no_default_scopes_reads_no_grant(
    team: Team,
    make_connector: Callable[..., Connector],
    make_installation: Callable[..., Installation],
    make_grant: Callable[..., Grant],
    django_assert_num_queries: Any,
) -> None:
    bare = make_connector(team, uid="api-key/bare", secrets={"api_key": "k"})
    make_grant(make_installation(bare), Grant.SubjectType.USER, "u_1", scopes=["read"])
    with django_assert_num_queries(0):
        assert connector_reconsent_needed(connector=bare) == []


def test_one_query_however_many_grants(
    connector: Connector,
    installation: Installation,
    make_grant: Callable[..., Grant],
    django_assert_num_queries: Any,
) -> None:
    for n in range(30):
        make_grant(installation, Grant.SubjectType.USER, f"u_{n}", scopes=["read"])
    with django_assert_num_queries(1):
        assert len(connector_reconsent_needed(connector=connector)) == 30


def test_the_connector_page_names_who_must_consent_again(
    team: Team,
    connector: Connector,
    installation: Installation,
    make_grant: Callable[..., Grant],
    make_member: Callable[..., Any],
) -> None:
    for n in range(22):
        make_grant(installation, Grant.SubjectType.USER, f"u_{n:02}", scopes=["read"])
    client = Client()
    client.force_login(make_member(team, Role.OWNER))

    page = client.get(reverse("admin:connect_connector_change", args=[connector.pk]))

    text = page.content.decode()
    assert page.status_code == 200
    assert "22 grant(s) predate the current default scopes" in text
    assert "user:u_00, user:u_01" in text
    assert "user:u_19 and 2 more" in text


def test_another_teams_grants_are_not_counted(
    connector: Connector,
    make_team: Callable[..., Team],
    make_connector: Callable[..., Connector],
    make_installation: Callable[..., Installation],
    make_grant: Callable[..., Grant],
) -> None:
    other = make_connector(
        make_team("other"),
        uid="api-key/scoped",
        secrets={"api_key": "k"},
        default_scopes={"user": ["read", "write"]},
    )
    make_grant(make_installation(other), Grant.SubjectType.USER, "u_theirs", scopes=["read"])
    assert connector_reconsent_needed(connector=connector) == []
    assert [str(g) for g in connector_reconsent_needed(connector=other)] == ["user:u_theirs"]
