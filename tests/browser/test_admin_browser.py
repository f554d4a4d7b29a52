"""The admin in a real browser (headless Chromium) against a live server: sign in, read the
landing page, open a connector, add one through the form."""

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page

from connect.models import Connector, Grant, Installation, Project, ProjectLink, Role, Team
from tests.browser.conftest import PASSWORD, sign_in

pytestmark = pytest.mark.browser

SLACK_SECRETS = {
    "client_secret": "slack-cs-Wq8Zt3Lm5Rv1",
    "trigger_signing_secret": "slack-sign-Hy4Nc7Pb2Kd",
}
WEATHER_KEY = "wx-key-Jm2Tf9Qs6Va"
CONNECTOR_TYPES = [
    "slack",
    "github",
    "linear",
    "microsoft",
    "salesforce",
    "discord",
    "oauth",
    "api-key",
]


@pytest.fixture
def acme(
    make_team: Callable[..., Team],
    make_member: Callable[..., User],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_installation: Callable[..., Installation],
) -> dict[str, Any]:
    team = make_team(slug="acme", name="Acme")
    owner = make_member(team, Role.OWNER, username="ada", email="ada@acme.test", password=PASSWORD)
    project = make_project(team, slug="shop", environments=("production", "preview"))
    slack = make_connector(
        team,
        uid="slack/acme-bot",
        type="slack",
        name="Acme Bot",
        icon_url="https://cdn.acme.test/bot.png",
        background_color="#4a154b",
        accent_color="#ecb22e",
        secrets=SLACK_SECRETS,
    )
    first, second = (
        make_installation(slack, tenant_id=tenant, display_name=f"workspace {tenant}")
        for tenant in ["T01", "T02"]
    )
    revoked = make_installation(slack, tenant_id="T03", status="revoked")
    # Several grants per installation: the count is of installations, not of joined rows.
    Grant.objects.create(installation=first, subject_type="app", status="needs_reauth")
    Grant.objects.create(installation=first, subject_type="user", subject_id="7")
    Grant.objects.create(installation=first, subject_type="user", subject_id="8")
    Grant.objects.create(installation=second, subject_type="app")
    Grant.objects.create(installation=revoked, subject_type="app")
    weather = make_connector(
        team, uid="api-key/weather", name="Weather", secrets={"api_key": WEATHER_KEY}
    )
    keyless = make_connector(team, uid="api-key/maps", name="Maps")
    # Another team, which Ada must not see.
    other = make_team(slug="globex", name="Globex")
    make_connector(other, uid="api-key/globex", name="Globex Secret Project")
    return {
        "team": team,
        "owner": owner,
        "project": project,
        "slack": slack,
        "weather": weather,
        "keyless": keyless,
    }


def test_sign_in_with_username_and_password(
    page: Page, live_server: Any, acme: dict[str, Any]
) -> None:
    sign_in(page, live_server.url, "ada")

    assert page.title() == "Your connectors | Connect"
    assert page.locator("#user-tools").inner_text().upper().startswith("WELCOME, ADA")


def test_sign_in_with_email_and_password(
    page: Page, live_server: Any, acme: dict[str, Any]
) -> None:
    sign_in(page, live_server.url, "ada@acme.test")

    assert page.title() == "Your connectors | Connect"


def test_a_wrong_password_is_refused(page: Page, live_server: Any, acme: dict[str, Any]) -> None:
    page.goto(f"{live_server.url}/admin/")
    page.fill("input[name=login]", "ada")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")

    assert page.url.startswith(f"{live_server.url}/accounts/login/")
    assert "not correct" in page.content()
    page.goto(f"{live_server.url}/admin/connect/connector/")
    assert page.url.startswith(f"{live_server.url}/accounts/login/")


def test_landing_page_lists_the_teams_connectors(
    page: Page, live_server: Any, acme: dict[str, Any]
) -> None:
    sign_in(page, live_server.url, "ada@acme.test")

    rows = page.locator("#connect-connectors tbody tr")
    cells = [
        [cell.inner_text().strip() for cell in row.locator("th, td").all()] for row in rows.all()
    ]
    assert cells == [
        [
            "Maps\napi-key/maps",
            "API key",
            "Acme",
            "1",
            "Failing API key missing: no token can be handed out.",
        ],
        [
            "Weather\napi-key/weather",
            "API key",
            "Acme",
            "1",
            "Healthy No token requests or deliveries in the last hour.",
        ],
        [
            "Acme Bot\nslack/acme-bot",
            "Slack",
            "Acme",
            "2",
            "Degraded 1 grant needs re-authorization: the subject must connect again.",
        ],
    ]
    assert "Globex" not in page.content()


def test_connector_page_shows_branding_and_hides_secrets(
    page: Page, live_server: Any, acme: dict[str, Any]
) -> None:
    sign_in(page, live_server.url, "ada")
    page.click("#connect-connectors >> text=Acme Bot")
    page.wait_for_url(f"**/admin/connect/connector/{acme['slack'].pk}/change/")

    preview = page.locator(".connect-brand")
    assert preview.inner_text().strip() == "Acme Bot"
    assert preview.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(74, 21, 75)"
    assert preview.evaluate("e => getComputedStyle(e).color") == "rgb(236, 178, 46)"
    assert preview.locator("img").get_attribute("src") == "https://cdn.acme.test/bot.png"

    assert page.locator("#id_client_secret_helptext").inner_text().startswith("A value is set")
    assert (
        page.locator("#id_trigger_signing_secret_helptext")
        .inner_text()
        .startswith("A value is set")
    )
    # A Slack connector has no API key: its page offers only the secrets Slack uses.
    assert page.locator("#id_api_key").count() == 0
    assert page.input_value("#id_client_secret") == ""
    assert page.input_value("#id_trigger_signing_secret") == ""
    # Installations are listed with their status.
    installations = page.locator("#installations-group").inner_text()
    assert "workspace T01" in installations
    assert "Revoked" in installations

    html = page.content()
    for value in SLACK_SECRETS.values():
        assert value not in html
    assert acme["slack"].client_secret_sealed[3:] not in html

    page.screenshot(path="/tmp/connector.png", full_page=True)


def test_add_a_connector_through_the_form(
    page: Page, live_server: Any, acme: dict[str, Any]
) -> None:
    pem = (
        "-----BEGIN PRIVATE KEY-----\n"
        "MIIBVAIBADANBgkqhkiG9w0B\n"
        "AQEFAASCAT4wggE6AgEAAkEA\n"
        "-----END PRIVATE KEY-----"
    )
    sign_in(page, live_server.url, "ada")
    page.goto(f"{live_server.url}/admin/connect/connector/add/")

    offered = page.locator("#id_type option").evaluate_all(
        "options => options.map(o => o.value).filter(v => v)"
    )
    assert offered == CONNECTOR_TYPES
    # The type comes first: it decides which inputs the form has.
    page.click(".connect-type-chooser >> text=GitHub App")
    page.wait_for_url("**/connector/add/?type=github")
    # Ada is in one team: it is chosen already.
    assert page.locator("#id_team option:checked").inner_text() == "Acme"
    assert page.input_value("#id_type") == "github"
    page.fill("#id_uid", "github/acme-ci")
    page.fill("#id_service", "github")
    page.fill("#id_name", "Acme CI")
    page.fill("#id_client_id", "Iv1.acmeci")
    page.fill("#id_client_secret", "gh-cs-Vd3Xs8Pk")
    page.fill("#id_private_key", pem)
    page.click("text=Add another Project link")
    page.select_option("#id_links-0-project", label="Shop")
    page.check("input[name='links-0-environments'][value='production']")
    page.check("input[name='links-0-environments'][value='preview']")
    page.click("input[name=_save]")

    page.wait_for_url(f"{live_server.url}/admin/connect/connector/")
    assert "was added successfully" in page.locator(".messagelist").inner_text()
    connector = Connector.objects.get(uid="github/acme-ci")
    assert connector.team == acme["team"]
    assert connector.type == "github"
    assert connector.reveal("client_secret") == "gh-cs-Vd3Xs8Pk"
    # The PEM keeps its line breaks.
    assert connector.reveal("private_key") == pem
    link = ProjectLink.objects.get(connector=connector)
    assert link.project == acme["project"]
    assert link.environments == ["preview", "production"]  # in the checkboxes' order
    assert "gh-cs-Vd3Xs8Pk" not in page.content()
