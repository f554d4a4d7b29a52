"""Readable lists in a real browser: every list fits a 1280 px window, timestamps show their
age with the exact second in a title, the navigation is grouped by task; screenshots of the
index and a connector page are saved under var/screenshots/ for a person (and CI) to look at."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import User
from playwright.sync_api import Page

from connect.admin.scoping import TeamScopedAdmin
from connect.models import Connector, Role, Team
from tests.admin.test_tenancy import World, make_world  # noqa: F401 — the fixture
from tests.browser.conftest import PASSWORD, sign_in

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
LISTS = sorted(
    model._meta.model_name
    for model, model_admin in admin.site._registry.items()
    if isinstance(model_admin, TeamScopedAdmin) and model._meta.model_name != "environment"
)
# Long enough to overflow a list whose columns are not cut.
TAG = "northwind-logistics-eu-west"


@pytest.fixture
def world(
    make_world: Callable[[Team, str], World],  # noqa: F811
    make_team: Callable[..., Team],
    make_member: Callable[..., User],
) -> World:
    team = make_team(slug="northwind", name="Northwind Logistics International")
    make_member(team, Role.OWNER, username="ada", password=PASSWORD)
    world = make_world(team, TAG)
    connector = world[Connector]
    connector.description = "A very long description of what this bot does. " * 5
    connector.save()
    return world


@pytest.mark.parametrize("model_name", LISTS)
def test_every_list_fits_1280_pixels(
    page: Page, live_server: Any, world: World, model_name: str
) -> None:
    sign_in(page, live_server.url, "ada")
    page.goto(f"{live_server.url}/admin/connect/{model_name}/")

    # Rows (the world has one of nearly every model), or the empty state saying what to do.
    assert page.locator("#result_list tbody tr").count() >= 1 or (
        page.locator(".connect-empty").count() == 1 or model_name == "lifecycleevent"
    )
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 1280, f"{model_name} list is {width}px wide"


def test_timestamps_show_their_age_and_the_exact_second(
    page: Page, live_server: Any, world: World
) -> None:
    sign_in(page, live_server.url, "ada")
    page.goto(f"{live_server.url}/admin/connect/deliveryattempt/")

    cell = page.locator("#result_list td.field-started_at time")
    assert cell.inner_text().endswith(" s ago") or cell.inner_text().endswith(" min ago")
    # The absolute time, to the second, on hover.
    assert cell.get_attribute("title") is not None
    assert len(cell.get_attribute("title").split(" ")[1].split(":")) == 3


def test_the_navigation_is_grouped_by_task(page: Page, live_server: Any, world: World) -> None:
    sign_in(page, live_server.url, "ada")

    captions = page.locator("#content-main .module caption").all_inner_texts()
    # The stylesheet capitalises captions; the groups are in task order, not alphabetical.
    assert [c.strip().lower() for c in captions[1:5]] == [
        "connectors",
        "projects & credentials",
        "activity",
        "team",
    ]


def test_an_empty_list_says_what_to_do_next(
    page: Page, live_server: Any, make_team: Callable[..., Team], make_member: Callable[..., User]
) -> None:
    make_member(make_team(slug="empty"), Role.OWNER, username="ada", password=PASSWORD)
    sign_in(page, live_server.url, "ada")
    page.goto(f"{live_server.url}/admin/connect/connector/")

    empty = page.locator(".connect-empty")
    assert "No connectors yet" in empty.inner_text()
    empty.locator("a").click()
    page.wait_for_url("**/admin/connect/connector/add/")


def test_screenshots_of_the_index_and_a_connector_page(
    page: Page, live_server: Any, world: World
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    sign_in(page, live_server.url, "ada")
    page.screenshot(path=str(SCREENSHOTS / "index.png"), full_page=True)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 1280

    page.goto(f"{live_server.url}/admin/connect/connector/{world[Connector].pk}/change/")
    assert page.locator("#connect-setup").is_visible()
    page.screenshot(path=str(SCREENSHOTS / "connector.png"), full_page=True)
    page.goto(f"{live_server.url}/admin/connect/connector/add-from-preset/?q=g")
    page.screenshot(path=str(SCREENSHOTS / "presets.png"), full_page=True)

    for name in ("index.png", "connector.png", "presets.png"):
        assert (SCREENSHOTS / name).stat().st_size > 10_000
