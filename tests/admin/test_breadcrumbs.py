"""An object's page names every level above it: a grant's breadcrumbs lead to its installation
and its connector, each through its list, so a team admin never navigates by the back button."""

import re
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client

from connect.models import Connector, Grant, Installation, Role, Team

pytestmark = pytest.mark.django_db


def crumbs(html: str) -> list[tuple[str, str]]:
    """The breadcrumb trail as (link target, text) pairs, the last (the page itself) unlinked."""
    found = re.search(r'<div class="breadcrumbs">(.*?)</div>', html, re.S)
    assert found, html
    trail = found.group(1)
    links = [
        (href, text.strip()) for href, text in re.findall(r'<a href="([^"]+)">([^<]*)</a>', trail)
    ]
    last = re.sub(r"<[^>]+>", "", trail).rsplit("&rsaquo;", 1)[-1].strip()
    return [*links, ("", last)]


@pytest.fixture
def world(
    make_team: Callable[..., Team],
    make_member: Callable[..., User],
    make_connector: Callable[..., Connector],
    make_installation: Callable[..., Installation],
    make_grant: Callable[..., Grant],
) -> tuple[Client, Connector, Installation, Grant]:
    team = make_team()
    connector = make_connector(team, uid="oauth/acme", name="Acme")
    installation = make_installation(connector, tenant_id="T-ACME", display_name="Acme Corp")
    grant = make_grant(installation, Grant.SubjectType.USER, "u-1")
    client = Client()
    client.force_login(make_member(team, Role.VIEWER))
    return client, connector, installation, grant


def test_a_grant_page_leads_to_its_installation_and_connector(
    world: tuple[Client, Connector, Installation, Grant],
) -> None:
    client, connector, installation, grant = world
    page = client.get(f"/admin/connect/grant/{grant.pk}/change/")
    assert page.status_code == 200
    assert crumbs(page.content.decode()) == [
        ("/admin/", "Home"),
        ("/admin/connect/", "Connect"),
        ("/admin/connect/connector/", "Connectors"),
        (f"/admin/connect/connector/{connector.pk}/change/", str(connector)),
        ("/admin/connect/installation/", "Installations"),
        (f"/admin/connect/installation/{installation.pk}/change/", str(installation)),
        ("/admin/connect/grant/", "Grants"),
        ("", str(grant)),
    ]


def test_an_installation_page_leads_to_its_connector(
    world: tuple[Client, Connector, Installation, Grant],
) -> None:
    client, connector, installation, _ = world
    page = client.get(f"/admin/connect/installation/{installation.pk}/change/")
    assert page.status_code == 200
    assert crumbs(page.content.decode())[2:] == [
        ("/admin/connect/connector/", "Connectors"),
        (f"/admin/connect/connector/{connector.pk}/change/", str(connector)),
        ("/admin/connect/installation/", "Installations"),
        ("", str(installation)),
    ]


def test_another_teams_grant_page_is_not_found_and_names_nothing(
    world: tuple[Client, Connector, Installation, Grant],
    make_team: Callable[..., Team],
    make_member: Callable[..., User],
) -> None:
    _, connector, _, grant = world
    stranger = Client()
    stranger.force_login(make_member(make_team(), Role.OWNER))
    page = stranger.get(f"/admin/connect/grant/{grant.pk}/change/")
    assert page.status_code == 404
    assert connector.name not in page.content.decode()


def test_the_connect_crumb_and_the_index_headings_lead_to_grouped_pages(
    world: tuple[Client, Connector, Installation, Grant],
) -> None:
    client = world[0]
    # Django's app page would list every model alphabetically: Connect's is the grouped index.
    assert client.get("/admin/connect/").url == "/admin/"
    index = client.get("/admin/").content.decode()
    headings = re.findall(r'<caption>\s*<a href="([^"]+)"[^>]*>([^<]+)</a>', index)
    assert headings, index
    assert ("/admin/connect/connector/", "Connectors") in headings
    assert all(url != "/admin/connect/" for url, _ in headings)
