"""A failed token request turns a connector's health badge red, seen in a real browser; the
index, the connector page and the Activity page are saved as screenshots (CI artifacts)."""

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import Page

from connect.models import Connector, Grant, Project, Role, Team
from connect.services import activity
from tests.browser.conftest import PASSWORD, sign_in
from tests.fakes.oauth import OAuthFake

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


def test_a_failed_token_request_turns_the_health_badge_red(
    page: Page,
    live_server: Any,
    oauth_server: OAuthFake,
    make_team: Callable[..., Team],
    make_member: Callable[..., User],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
    make_credential: Callable[..., str],
) -> None:
    team = make_team(slug="acme", name="Acme")
    make_member(team, Role.OWNER, username="ada", email="ada@acme.test", password=PASSWORD)
    project = make_project(team, slug="shop")
    connector = make_connector(
        team,
        uid="oauth/billing",
        type="oauth",
        name="Billing API",
        client_id="billing",
        secrets={"client_secret": "the-secret"},
        config={
            "tokenEndpoint": oauth_server.token_endpoint,
            "tokenEndpointAuthMethod": "client_secret_post",
        },
        default_scopes={"app": ["invoices"]},
    )
    make_link(connector, project, ["production"])
    oauth_server.add_client("billing", method="client_secret_post", secret="the-secret")
    bearer = {"Authorization": f"Bearer {make_credential(project)}"}

    def ask() -> requests.Response:
        return requests.post(
            f"{live_server.url}/v1/connect/token/oauth%2Fbilling",
            json={"subject": {"type": "app"}},
            headers=bearer,
            timeout=10,
        )

    for _ in range(5):
        assert ask().status_code == 200
    activity.activity_flush()

    sign_in(page, live_server.url, "ada")
    badge = page.locator("#connect-connectors .connect-health")
    assert badge.inner_text() == "Healthy"
    assert "5 token requests in the last hour, none failing." in page.content()

    # The provider no longer accepts the secret; the stored token has expired.
    oauth_server.add_client("billing", method="client_secret_post", secret="rotated-elsewhere")
    Grant.objects.filter(installation__connector=connector).update(
        access_expires_at=timezone.now() - timedelta(minutes=1)
    )
    for _ in range(6):
        assert ask().status_code == 422
    activity.activity_flush()  # what the background thread does every few seconds

    page.reload()
    assert badge.inner_text() == "Failing"
    assert "connect-health-fail" in (badge.get_attribute("class") or "")
    reason = page.locator("#connect-connectors .connect-health-reason").inner_text()
    assert reason.startswith("The provider refused the client credentials (invalid_client) 6")
    # The colour is the stylesheet's: red, whatever the policy forbids inline.
    assert badge.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(185, 28, 28)"
    assert page.locator(".connect-chart > svg").count() == 8
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "index.png"), full_page=True)

    page.click("#connect-connectors >> text=Billing API")
    page.wait_for_url(f"**/admin/connect/connector/{connector.pk}/change/")
    assert page.locator("#connect-health .connect-health").inner_text() == "Failing"
    assert "6 of 11 token requests failed" in page.locator("#connect-health").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "connector.png"), full_page=True)

    page.click("#connect-health >> text=Activity of this connector")
    page.wait_for_url("**/admin/activity/?connector=*")
    events = page.locator("#connect-events tbody tr")
    assert events.count() == 5  # the tokens handed out; refused requests are counted, not logged
    assert "tokenId=stk_" in events.first.inner_text()
    page.screenshot(path=str(SCREENSHOTS / "activity.png"), full_page=True)


@pytest.mark.parametrize(("width", "per_line"), [(1280, 4), (900, 2), (480, 1)])
def test_the_charts_of_a_line_share_their_plot_height(
    page: Page,
    live_server: Any,
    make_team: Callable[..., Team],
    make_member: Callable[..., User],
    width: int,
    per_line: int,
) -> None:
    """A caption or legend that wraps (the token chart's 'refused (caller)') used to lift its
    plot above its neighbours'; the README walk's screenshot showed it."""
    team = make_team(slug="acme", name="Acme")
    make_member(team, Role.OWNER, username="ada", email="ada@acme.test", password=PASSWORD)
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, live_server.url, "ada")

    for panel in page.locator(".connect-charts").all():
        plots = [
            box
            for box in (svg.bounding_box() for svg in panel.locator(".connect-chart > svg").all())
            if box
        ]
        assert len(plots) == 4
        lines: dict[float, list[dict[str, float]]] = {}
        for box in plots:
            lines.setdefault(round(box["y"]), []).append(box)
        assert [len(line) for line in lines.values()] == [per_line] * (4 // per_line), lines
        for line in lines.values():
            assert len({round(box["y"] + box["height"]) for box in line}) == 1, line
