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


#: Each header's right edge, and whether the table's box scrolls sideways: a page can be
#: 1280 px wide while the table hides its last columns behind an inner scroll.
TABLE_METRICS = """([table, box]) => {
  const t = document.querySelector(table), b = document.querySelector(box);
  return {
    heads: [...t.querySelectorAll('thead th')].map(
      th => [th.innerText.trim(), th.getBoundingClientRect().right]),
    scrollWidth: b.scrollWidth, clientWidth: b.clientWidth,
    page: document.documentElement.scrollWidth,
  };
}"""


def assert_table_fits(page: Page, table: str, box: str, name: str) -> None:
    """Every column header ends inside the 1280 px viewport and nothing scrolls sideways."""
    found = page.evaluate(TABLE_METRICS, [table, box])
    assert found["heads"], f"{name}: no table"
    cut = [(text, round(right)) for text, right in found["heads"] if right > 1280]
    assert not cut, f"{name}: columns past 1280 px: {cut}"
    assert found["scrollWidth"] <= found["clientWidth"], (
        f"{name}: the table scrolls sideways ({found['scrollWidth']} > {found['clientWidth']})"
    )
    assert found["page"] <= 1280, f"{name}: the page is {found['page']}px wide"


@pytest.mark.parametrize("model_name", LISTS)
def test_every_list_fits_1280_pixels(
    page: Page, live_server: Any, world: World, model_name: str
) -> None:
    sign_in(page, live_server.url, "ada")
    page.goto(f"{live_server.url}/admin/connect/{model_name}/")

    rows = page.locator("#result_list tbody tr").count()
    # Rows (the world has one of every listed model, with long values), or the empty state.
    assert rows >= 1 or page.locator(".connect-empty").count() == 1, model_name
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{model_name}_list.png"), full_page=True)
    if rows:
        assert_table_fits(page, "#result_list", "#changelist .results", model_name)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 1280


def test_the_activity_page_and_the_index_fit_1280_pixels(
    page: Page, live_server: Any, world: World
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    sign_in(page, live_server.url, "ada")
    assert_table_fits(page, "#connect-connectors table", "#connect-connectors", "index")
    # The connectors take the content's width, not a column beside "Recent actions".
    width = page.evaluate(
        "() => document.querySelector('#connect-connectors').getBoundingClientRect().width"
    )
    assert width >= 1100, f"the connectors are {width}px wide"
    header = page.locator("#connect-connectors thead th").nth(3)
    assert header.bounding_box()["height"] < 40  # "Installations" on one line

    page.goto(f"{live_server.url}/admin/activity/")
    assert page.locator("#connect-events tbody tr").count() >= 2
    assert_table_fits(page, "#connect-events", "#connect-events", "activity")
    page.screenshot(path=str(SCREENSHOTS / "activity.png"), full_page=True)
    # Times are ages, the exact second in the title, as in the lists.
    when = page.locator("#connect-events tbody tr td time").first
    assert when.inner_text().endswith("ago")
    assert when.get_attribute("title")


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
