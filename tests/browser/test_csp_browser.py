"""The admin and the flow pages work under their Content-Security-Policy, in Chromium (issue 8,
point 1): every violation the browser reports (the ``securitypolicyviolation`` event and the
console) is collected on each page, and there must be none, while the pages still do their job:
the connector form saves, the install link selects itself, the branding shows its colours.
"""

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import ConsoleMessage, Page

from connect.models import Connector, ConnectorType, Project, Role, Team
from tests.browser.conftest import PASSWORD, sign_in

pytestmark = pytest.mark.browser

# Runs before any page script (through DevTools, which the policy does not govern).
REPORT_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
});
"""


class Violations:
    def __init__(self, page: Page) -> None:
        self.page = page
        self.console: list[str] = []
        page.add_init_script(REPORT_VIOLATIONS)
        page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.console.append(message.text)

    def on_this_page(self) -> list[str]:
        return [*self.page.evaluate("window.__violations"), *self.console]

    def assert_none(self, where: str) -> None:
        found = self.on_this_page()
        assert found == [], f"{where}: {found}"
        assert self.page.evaluate("document.readyState") == "complete"


@pytest.fixture
def acme(
    live_server: Any,
    settings: Any,
    make_team: Callable[..., Team],
    make_member: Callable[..., User],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
) -> Connector:
    settings.PUBLIC_URL = live_server.url
    team = make_team(slug="acme", name="Acme")
    make_member(team, Role.OWNER, username="ada", email="ada@acme.test", password=PASSWORD)
    project = make_project(team, slug="shop")
    connector = make_connector(
        team,
        uid="oauth/notes",
        type=ConnectorType.OAUTH,
        name="Acme Notes",
        client_id="notes-app",
        secrets={"client_secret": "cs-notes"},
        config={
            "authorizationEndpoint": "https://idp.example/authorize",
            "tokenEndpoint": "https://idp.example/token",
        },
        # An icon of our own, over http: on loopback (allowed outside production).
        icon_url=f"{live_server.url}/static/connect/favicon.svg",
        background_color="#4a154b",
        accent_color="#ecb22e",
        default_scopes={"app": ["notes:read"], "user": ["notes:read"]},
    )
    make_link(connector, project, ["production"])
    return connector


def test_the_admin_and_the_flow_page_work_with_no_policy_violation(
    page: Page, live_server: Any, acme: Connector
) -> None:
    violations = Violations(page)
    base = live_server.url

    sign_in(page, base, "ada")
    violations.assert_none("sign-in and admin index")
    assert page.locator("#connect-connectors").is_visible()

    # The connector's page: the preview in its colours, and a save that goes through.
    response = page.goto(f"{base}/admin/connect/connector/{acme.pk}/change/")
    assert response is not None
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    preview = page.locator(".connect-brand")
    assert preview.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(74, 21, 75)"
    assert preview.evaluate("e => getComputedStyle(e).color") == "rgb(236, 178, 46)"
    page.fill("#id_name", "Acme Notes (renamed)")
    page.click("input[name=_save]")
    page.wait_for_url(f"{base}/admin/connect/connector/")
    assert "was changed successfully" in page.locator(".messagelist").inner_text()
    violations.assert_none("connector change form and its save")
    acme.refresh_from_db()
    assert acme.name == "Acme Notes (renamed)"

    # The add form, with its inline formsets' scripts.
    page.goto(f"{base}/admin/connect/connector/add/?type=oauth")
    page.click("text=Add another Project link")
    assert page.locator("#id_links-0-environments").is_visible()
    violations.assert_none("connector add form")

    # An install link: made with a form, selected on focus by our script file.
    page.goto(f"{base}/admin/connect/connector/{acme.pk}/install-link/")
    page.click("input[type=submit][value='Create install link']")
    page.focus("#install-link")
    link = page.input_value("#install-link")
    selected = page.evaluate(
        "() => { const e = document.getElementById('install-link');"
        " return e.selectionEnd - e.selectionStart; }"
    )
    assert selected == len(link)
    violations.assert_none("install link page")

    # The flow start page, as the tenant sees it: branding colours and the icon, no script.
    page.goto(link)
    brand = page.locator("header.brand")
    assert brand.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(74, 21, 75)"
    assert brand.evaluate("e => getComputedStyle(e).color") == "rgb(236, 178, 46)"
    assert brand.locator("img").evaluate("img => img.complete && img.naturalWidth") > 0
    assert (
        page.locator("#continue")
        .get_attribute("href", timeout=1000)
        .startswith("https://idp.example/authorize?")
    )
    violations.assert_none("flow start page")

    # The collector really hears the policy: an inline style set from script is refused.
    page.evaluate("document.body.setAttribute('style', 'color: red')")
    page.wait_for_function("window.__violations.length > 0", timeout=2000)
    assert page.evaluate("window.__violations")[0].startswith("style-src")
