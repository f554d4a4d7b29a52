"""The inlines of a connector page: project links offer environments as checkboxes (a linked row
its own project's, a new row every project's, the first 200, read once for the whole formset),
and a type that receives no webhooks is offered no trigger destinations."""

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from connect.admin.connectors import EnvironmentNames
from connect.models import Connector, Environment, Project, ProjectLink, Role, Team
from tests.admin.pages import form_data


@pytest.fixture
def team(make_team: Callable[..., Team]) -> Team:
    return make_team("acme")


@pytest.fixture
def connector(team: Team, make_connector: Callable[..., Connector]) -> Connector:
    return make_connector(team, uid="api-key/linked", secrets={"api_key": "k"})


def page(client: Client, connector: Connector) -> str:
    response = client.get(reverse("admin:connect_connector_change", args=[connector.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_linked_rows_offer_their_projects_environments_and_new_rows_every_projects(
    team: Team,
    connector: Connector,
    make_project: Callable[..., Project],
    make_member: Callable[..., Any],
) -> None:
    web = make_project(team, slug="web", environments=("production", "preview"))
    make_project(team, slug="jobs", environments=("production", "nightly"))
    ProjectLink.objects.create(connector=connector, project=web, environments=["production"])
    client = Client()
    client.force_login(make_member(team, Role.OWNER))

    html = page(client, connector)

    # The linked row: web's two, production ticked.
    assert 'name="links-0-environments" value="production"' in html
    assert 'name="links-0-environments" value="nightly"' not in html
    # The empty row for a new link: every project's, each with its owners.
    assert "nightly (Jobs)" in html
    assert "production (Jobs, Web)" in html


def test_a_linked_project_beyond_the_first_200_environments_still_shows_its_own(
    team: Team,
    connector: Connector,
    make_project: Callable[..., Project],
    make_member: Callable[..., Any],
) -> None:
    crowded = make_project(team, slug="crowded", environments=())
    Environment.objects.bulk_create(
        Environment(project=crowded, slug=f"a-{n:03}", base_url="https://a.example")
        for n in range(EnvironmentNames.LIMIT)
    )
    late = make_project(team, slug="late", environments=("zz-production", "zz-staging"))
    ProjectLink.objects.create(connector=connector, project=late, environments=["zz-production"])
    client = Client()
    client.force_login(make_member(team, Role.OWNER))

    html = page(client, connector)

    assert re.search(r'value="zz-production"[^>]*checked', html)
    # Not linked yet, and offered: read for this row, since the first 200 did not reach it.
    assert re.search(r'name="links-0-environments" value="zz-staging"', html)


def test_the_environments_are_read_once_however_many_rows(
    team: Team,
    connector: Connector,
    make_project: Callable[..., Project],
    make_member: Callable[..., Any],
) -> None:
    for n in range(6):
        project = make_project(team, slug=f"p{n}", environments=("production", "preview"))
        ProjectLink.objects.create(connector=connector, project=project, environments=["preview"])
    client = Client()
    client.force_login(make_member(team, Role.OWNER))
    page(client, connector)  # sessions, permissions and templates warmed

    with CaptureQueriesContext(connection) as captured:
        page(client, connector)

    reads = [q for q in captured.captured_queries if '"connect_environment"."slug"' in q["sql"]]
    reads = [q for q in reads if '"project__name"' in q["sql"]]
    assert len(reads) == 1, [q["sql"] for q in reads]


def test_a_type_without_webhooks_is_offered_no_trigger_destinations(
    team: Team,
    connector: Connector,
    make_connector: Callable[..., Connector],
    make_project: Callable[..., Project],
    make_destination: Callable[..., Any],
    make_member: Callable[..., Any],
) -> None:
    client = Client()
    client.force_login(make_member(team, Role.OWNER))
    slack = make_connector(team, uid="slack/bot", type="slack")

    # An API key receives no webhooks: no trigger destinations to add (lifecycle ones stay).
    page(client, connector)  # sessions, permissions and templates warmed
    with CaptureQueriesContext(connection) as captured:
        html = page(client, connector)
    asked = [q for q in captured.captured_queries if "connect_triggerdestination" in q["sql"]]
    # Whether it has any, once; the lifecycle inline's rows, once.
    assert len(asked) == 2, [q["sql"] for q in asked]
    assert 'name="destinations-TOTAL_FORMS"' not in html
    assert 'name="lifecycle_destinations-TOTAL_FORMS"' in html
    assert 'name="destinations-TOTAL_FORMS"' in page(client, slack)
    new = client.get(reverse("admin:connect_connector_add") + "?type=api-key").content.decode()
    assert 'name="destinations-TOTAL_FORMS"' not in new

    # The page saves without them.
    change = reverse("admin:connect_connector_change", args=[connector.pk])
    saved = client.post(change, form_data(client.get(change), "connector_form"))
    assert saved.status_code == 302, saved.content.decode()[:2000]

    # One made through the API before still shows.
    make_destination(connector, make_project(team, slug="web"), path="/hooks")
    html = page(client, connector)
    assert 'name="destinations-TOTAL_FORMS"' in html
    assert 'value="/hooks"' in html
