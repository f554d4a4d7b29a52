"""Install and consent flows in a real browser, end to end: an admin creates a connector in the
admin, a tenant clicks through our branded page and the provider's consent page, and a
deployment then gets the tenant's (or the user's) token through the official Python SDK.

The providers are the loopback fakes of ``tests/fakes/`` with their HTML consent pages on: Slack
and the strict OAuth server. Screenshots of each page land in ``/tmp/flow-*.png``.
"""

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect
from vercel.api import session
from vercel.connect import (
    ConnectAppTokenSubject,
    ConnectOptions,
    ConnectServiceOptions,
    ConnectUserTokenSubject,
)
from vercel.connect import sync as connect
from vercel.connect.sync import UserAuthorizationRequiredError

from connect.models import (
    AuditEvent,
    AuthorizationRequest,
    Connector,
    ConnectorType,
    Grant,
    Installation,
    Project,
    ProjectLink,
    Role,
    Team,
)
from tests.browser.conftest import sign_in
from tests.fakes.oauth import OAuthFake
from tests.fakes.slack import SlackFake

pytestmark = pytest.mark.browser

BRAND_BG, BRAND_ACCENT = "#4a154b", "#ecb22e"
SLACK_CLIENT_ID, SLACK_SECRET = "1234567890.0987654321", "slack-cs-Wq8Zt3Lm5Rv1"
IDP_CLIENT_ID, IDP_SECRET = "notes-app", "idp-cs-Hy4Nc7Pb2Kd"


@pytest.fixture
def public_url(live_server: Any, settings: Any) -> str:
    # Links and the redirect URI the providers see are built from PUBLIC_URL.
    settings.PUBLIC_URL = live_server.url
    return str(live_server.url)


@pytest.fixture
def acme(
    make_team: Callable[..., Team],
    make_member: Callable[..., User],
    make_project: Callable[..., Project],
) -> dict[str, Any]:
    team = make_team(slug="acme", name="Acme")
    owner = make_member(team, Role.OWNER, username="ada", email="ada@acme.test")
    project = make_project(team, slug="shop", environments=("production", "preview"))
    return {"team": team, "owner": owner, "project": project}


@pytest.fixture
def credential(acme: dict[str, Any]) -> str:
    """A deployment credential for acme/shop/production, from the CLI as the README says."""
    out = StringIO()
    call_command(
        "deployment_credential",
        "create",
        "--team=acme",
        "--project=shop",
        "--environment=production",
        stdout=out,
    )
    return out.getvalue().splitlines()[-1]


@pytest.fixture
def slack(public_url: str) -> Iterator[SlackFake]:
    fake = SlackFake(
        client_id=SLACK_CLIENT_ID,
        client_secret=SLACK_SECRET,
        redirect_uri=f"{public_url}/connect/callback",
    )
    fake.consent_page = True
    # A workspace (no Enterprise Grid) and an app without token rotation: a plain bot token.
    fake.enterprise = None
    fake.rotation = False
    with fake:
        yield fake


@pytest.fixture
def identity(public_url: str) -> Iterator[OAuthFake]:
    with OAuthFake() as server:
        server.consent_page = True
        server.add_client(
            IDP_CLIENT_ID,
            method="client_secret_basic",
            secret=IDP_SECRET,
            user_scopes=("profile", "notes:read"),
        )
        server.register_redirect(IDP_CLIENT_ID, f"{public_url}/connect/callback")
        yield server


ICON = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 48 48">'
    b'<rect width="48" height="48" rx="10" fill="#ecb22e"/>'
    b'<circle cx="24" cy="24" r="11" fill="#4a154b"/></svg>'
)


class _AppPages(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/icon.svg":
            data, content_type = ICON, "image/svg+xml"
        else:
            data = b"<!doctype html><title>Acme Notes</title><h1 id='back'>Back in Acme Notes</h1>"
            content_type = "text/html; charset=utf-8"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def app_origin() -> Iterator[str]:
    """The deployment's own web app: it serves the connector's icon, and a consent started from
    it returns there."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _AppPages)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture
def tenant(chromium: Browser) -> Iterator[Page]:
    """The person who installs or consents: another browser, not signed in to the admin, with
    JavaScript off (the flow pages must work without it)."""
    context = chromium.new_context(
        viewport={"width": 1280, "height": 900}, java_script_enabled=False
    )
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def sdk(base_url: str) -> Any:
    return session(service_options=[ConnectServiceOptions(base_url=base_url)])


def add_connector(
    page: Page,
    base_url: str,
    *,
    kind: str,
    fields: dict[str, str],
    link_to: str,
    environments: list[str],
) -> Connector:
    """Fill the admin's add page by field names, the way a person would, and save: one typed
    input per setting (a select for a choice, one line per list item), no JSON anywhere."""
    page.goto(f"{base_url}/admin/connect/connector/add/")
    chooser = page.locator(f"a[href='?type={kind}']")
    if chooser.count():
        # The add page starts with a type chooser: picking one shows that type's fields.
        chooser.first.click()
        page.wait_for_url(f"**/admin/connect/connector/add/?type={kind}")
    page.select_option("select[name=team]", label="Acme")
    if page.locator("select[name=type]").input_value() != kind:
        page.select_option("select[name=type]", kind)
    assert page.locator("textarea[name=config]").count() == 0
    for name, value in fields.items():
        field = page.locator(f"[name={name}]")
        if field.evaluate("e => e.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
    page.click("text=Add another Project link")
    page.select_option("select[name=links-0-project]", label=link_to)
    for environment in environments:
        page.check(f"input[name='links-0-environments'][value='{environment}']")
    page.click("input[name=_save]")
    page.wait_for_url(f"{base_url}/admin/connect/connector/")
    assert "was added successfully" in page.locator(".messagelist").inner_text()
    return Connector.objects.get(uid=fields["uid"])


def install_link(page: Page, connector: Connector) -> str:
    """The admin's "Install link" button on the connector's page."""
    page.click(f"#result_list >> text={connector.name}")
    page.wait_for_url(f"**/admin/connect/connector/{connector.pk}/change/")
    page.click("text=Install link")
    page.click("input[type=submit][value='Create install link']")
    return page.input_value("#install-link")


def back_from(page: Page, provider_url: str) -> str:
    """Wait until the browser has left the provider's pages; where it landed. (Redirects
    commit nothing, so the first page after the provider is where the flow ended.)"""
    page.wait_for_url(lambda url: not url.startswith(provider_url))
    return page.url


def check_branding(page: Page, name: str, icon_url: str) -> None:
    """The connector's name, colours and icon, with the stylesheet applied. (Playwright reads
    computed styles through the DevTools protocol, which works with the page's scripts off.)"""
    brand = page.locator("header.brand")
    assert brand.locator("h1").inner_text() == name
    assert brand.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(74, 21, 75)"
    assert brand.evaluate("e => getComputedStyle(e).color") == "rgb(236, 178, 46)"
    icon = brand.locator("img")
    assert icon.get_attribute("src") == icon_url
    assert icon.evaluate("img => img.complete && img.naturalWidth") > 0
    # The stylesheet was served: the card is laid out, not raw HTML.
    card = page.locator("main.card")
    assert card.evaluate("e => getComputedStyle(e).borderRadius") == "12px"


def test_an_admin_creates_a_slack_connector_and_a_workspace_installs_it(
    page: Page,
    public_url: str,
    acme: dict[str, Any],
    credential: str,
    slack: SlackFake,
    app_origin: str,
    tenant: Page,
) -> None:
    sign_in(page, public_url, "ada")
    connector = add_connector(
        page,
        public_url,
        kind="slack",
        fields={
            "uid": "slack/acme-bot",
            "service": "slack",
            "name": "Acme Bot",
            "icon_url": f"{app_origin}/icon.svg",
            "background_color": BRAND_BG,
            "accent_color": BRAND_ACCENT,
            "client_id": SLACK_CLIENT_ID,
            "client_secret": SLACK_SECRET,
            "cfg_baseUrl": slack.url,
            "scopes_app": "chat:write\nchannels:read",
            "allowed_return_origins": "https://notes.acme.test",
        },
        link_to="Shop",
        environments=["production"],
    )
    assert connector.config == {"baseUrl": slack.url}
    assert connector.default_scopes == {"app": ["chat:write", "channels:read"]}
    assert connector.allowed_return_origins == ["https://notes.acme.test"]
    assert connector.team == acme["team"]
    assert (connector.background_color, connector.accent_color) == (BRAND_BG, BRAND_ACCENT)
    assert connector.type == ConnectorType.SLACK
    assert connector.reveal("client_secret") == SLACK_SECRET
    assert ProjectLink.objects.get(connector=connector).environments == ["production"]
    assert not Installation.objects.filter(connector=connector).exists()

    # The connector's page says what to register at Slack; the redirect URI copies in a click.
    page.click(f"#result_list >> text={connector.name}")
    page.wait_for_url(f"**/admin/connect/connector/{connector.pk}/change/")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=public_url)
    panel = page.locator("#connect-setup")
    assert "https://api.slack.com/apps" in panel.locator("a").first.get_attribute("href")
    redirect = panel.locator("dt:has-text('Redirect URI') + dd")
    redirect.locator("button.connect-copy").click()
    # The clipboard write is asynchronous: the label changes when it has happened.
    expect(redirect.locator("button.connect-copy")).to_have_text("Copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == (
        f"{public_url}/connect/callback"
    )
    page.goto(f"{public_url}/admin/connect/connector/")

    link = install_link(page, connector)
    assert link.startswith(f"{public_url}/connect/install/{connector.public_id}?request=sca_")

    # The tenant opens the link: our page, in the connector's colours.
    tenant.goto(link)
    assert tenant.title() == "Acme Bot"
    check_branding(tenant, "Acme Bot", f"{app_origin}/icon.svg")
    assert "You are about to install Acme Bot (Slack)." in tenant.locator("main").inner_text()
    assert tenant.locator(".scopes li").all_inner_texts() == ["chat:write", "channels:read"]
    tenant.screenshot(path="/tmp/flow-install.png", full_page=True)

    # Continue leads to Slack's consent tenant.
    tenant.click("#continue")
    tenant.wait_for_url(f"{slack.url}/oauth/v2/authorize?**")
    sent = parse_qs(urlsplit(tenant.url).query)
    assert sent["client_id"] == [SLACK_CLIENT_ID]
    assert sent["scope"] == ["chat:write,channels:read"]
    assert sent["redirect_uri"] == [f"{public_url}/connect/callback"]
    assert "Slack Softball Team" in tenant.locator("#request").inner_text()
    tenant.screenshot(path="/tmp/flow-consent.png", full_page=True)

    # Allow: Slack sends the browser back to us, and we say it worked.
    tenant.click("button:has-text('Allow')")
    landed = back_from(tenant, slack.url)
    assert landed.startswith(f"{public_url}/connect/callback?")
    assert tenant.locator("#outcome").inner_text().strip() == "Installed for Slack Softball Team."
    check_branding(tenant, "Acme Bot", f"{app_origin}/icon.svg")
    tenant.screenshot(path="/tmp/flow-success.png", full_page=True)
    assert slack.rejections == []
    [answer] = slack.issued
    bot_token = answer["access_token"]
    assert bot_token.startswith("xoxb-")

    installation = Installation.objects.get(connector=connector)
    assert installation.tenant_id == "T9TK3CUKW"
    assert installation.display_name == "Slack Softball Team"
    assert installation.installed_by == acme["owner"]
    assert installation.is_default
    grant = Grant.objects.get(installation=installation)
    assert grant.subject_type == "app"
    assert grant.reveal("access_token") == bot_token
    assert AuthorizationRequest.objects.get(connector=connector).outcome == "completed"

    # The admin lists it.
    page.goto(f"{public_url}/admin/connect/installation/")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    row = rows.first.inner_text()
    assert "Slack Softball Team" in row
    assert "T9TK3CUKW" in row
    # The list cuts a long connector name to fit the window; the whole name is the cell's title.
    assert "Acme Bot (slack/acme-" in row
    assert rows.first.locator('[title="Acme Bot (slack/acme-bot)"]').count() == 1

    # A deployment gets that workspace's bot token through the official SDK.
    with sdk(public_url):
        response = connect.get_token_response(
            "slack/acme-bot",
            subject=ConnectAppTokenSubject(),
            installation_id=installation.public_id,
            options=ConnectOptions(vercel_token=credential),
        )
    assert response.token == bot_token
    assert response.installation_id == installation.public_id
    assert response.tenant_id == "T9TK3CUKW"
    assert response.connector.id == connector.public_id


def test_a_user_consents_to_a_custom_oauth_connector_and_their_token_refreshes(
    page: Page,
    public_url: str,
    acme: dict[str, Any],
    credential: str,
    identity: OAuthFake,
    app_origin: str,
    tenant: Page,
) -> None:
    sign_in(page, public_url, "ada@acme.test")
    connector = add_connector(
        page,
        public_url,
        kind="oauth",
        fields={
            "uid": "oauth/notes-idp",
            "service": "example",
            "name": "Example Identity",
            "icon_url": f"{app_origin}/icon.svg",
            "background_color": BRAND_BG,
            "accent_color": BRAND_ACCENT,
            "client_id": IDP_CLIENT_ID,
            "client_secret": IDP_SECRET,
            "cfg_authorizationEndpoint": identity.authorization_endpoint,
            "cfg_tokenEndpoint": identity.token_endpoint,
            "cfg_revocationEndpoint": identity.revocation_endpoint,
            "cfg_tokenEndpointAuthMethod": "client_secret_basic",
            "scopes_user": "profile\nnotes:read",
            "allowed_return_origins": app_origin,
        },
        link_to="Shop",
        environments=["production", "preview"],
    )
    alice, bob = ConnectUserTokenSubject(id="alice"), ConnectUserTokenSubject(id="bob")
    as_deployment = ConnectOptions(vercel_token=credential)

    with sdk(public_url):
        with pytest.raises(UserAuthorizationRequiredError):
            connect.get_token("oauth/notes-idp", subject=alice, options=as_deployment)
        started = connect.start_authorization(
            "oauth/notes-idp",
            subject=alice,
            return_url=f"{app_origin}/settings/integrations?tab=notes",
            options=as_deployment,
        )
    assert started.request.startswith("sca_")

    tenant.goto(started.url)
    check_branding(tenant, "Example Identity", f"{app_origin}/icon.svg")
    assert "Example Identity asks for access on your behalf." in tenant.locator("main").inner_text()
    assert tenant.locator(".scopes li").all_inner_texts() == ["profile", "notes:read"]
    tenant.click("#continue")
    tenant.wait_for_url(f"{identity.authorization_endpoint}?**")
    sent = parse_qs(urlsplit(tenant.url).query)
    assert sent["code_challenge_method"] == ["S256"]
    assert sent["scope"] == ["profile notes:read"]
    tenant.click("button:has-text('Allow')")

    # Back in the app that started it, with the outcome in the query string.
    landed = back_from(tenant, identity.url)
    assert landed.startswith(f"{app_origin}/settings/integrations?"), tenant.inner_text("body")
    back = parse_qs(urlsplit(tenant.url).query)
    assert back == {"tab": ["notes"], "request": [started.request], "status": ["completed"]}
    assert tenant.locator("#back").inner_text() == "Back in Acme Notes"
    assert identity.rejections == []
    [issued] = identity.issued

    grant = Grant.objects.get(installation__connector=connector, subject_type="user")
    assert grant.subject_id == "alice"
    assert grant.reveal("refresh_token") == issued["refresh_token"]
    with sdk(public_url):
        assert (
            connect.get_token("oauth/notes-idp", subject=alice, options=as_deployment)
            == issued["access_token"]
        )
        # Alice's consent is hers alone.
        with pytest.raises(UserAuthorizationRequiredError):
            connect.get_token("oauth/notes-idp", subject=bob, options=as_deployment)

    # An hour later the access token has expired; the next call refreshes it at the provider.
    expired = timezone.now() - timedelta(minutes=1)
    Grant.objects.filter(pk=grant.pk).update(access_expires_at=expired)
    with sdk(public_url):
        refreshed = connect.get_token(
            "oauth/notes-idp",
            subject=alice,
            options=ConnectOptions(vercel_token=credential, force_refresh=True),
        )
    assert refreshed != issued["access_token"]
    assert identity.calls.get("refresh_token") == 1
    assert identity.rejections == []
    assert identity.access_token_active(refreshed)
    family = identity.family_of(issued["refresh_token"])
    assert refreshed in family.access_tokens
    assert issued["refresh_token"] in family.rotated
    grant.refresh_from_db()
    assert grant.reveal("access_token") == refreshed
    assert grant.reveal("refresh_token") == family.refresh_token
    assert grant.access_expires_at is not None
    assert grant.access_expires_at > timezone.now() + timedelta(minutes=55)


def test_a_declined_install_shows_a_clear_page_and_installs_nothing(
    tenant: Page,
    public_url: str,
    acme: dict[str, Any],
    credential: str,
    slack: SlackFake,
    app_origin: str,
    make_connector: Callable[..., Connector],
    make_link: Callable[..., ProjectLink],
) -> None:
    connector = make_connector(
        acme["team"],
        uid="slack/acme-bot",
        type=ConnectorType.SLACK,
        name="Acme Bot",
        icon_url=f"{app_origin}/icon.svg",
        background_color=BRAND_BG,
        accent_color=BRAND_ACCENT,
        client_id=SLACK_CLIENT_ID,
        secrets={"client_secret": SLACK_SECRET},
        config={"baseUrl": slack.url},
        default_scopes={"app": ["chat:write"]},
    )
    make_link(connector, acme["project"], ["production"])
    started = requests.post(
        f"{public_url}/v1/connect/install/{quote('slack/acme-bot', safe='')}",
        json={},
        headers={"Authorization": f"Bearer {credential}"},
        timeout=10,
    )
    assert started.status_code == 200, started.text
    flow = started.json()

    tenant.goto(flow["url"])
    tenant.click("#continue")
    tenant.wait_for_url(f"{slack.url}/oauth/v2/authorize?**")
    tenant.click("button:has-text('Cancel')")
    tenant.wait_for_url(f"{public_url}/connect/callback?**")

    assert tenant.title() == "Authorization was declined"
    assert tenant.locator("#outcome").inner_text() == "Authorization was declined"
    assert tenant.locator("#outcome + p").inner_text() == (
        "The authorization was declined at the provider, so nothing was installed. "
        "To try again, ask for a new install link."
    )
    check_branding(tenant, "Acme Bot", f"{app_origin}/icon.svg")
    tenant.screenshot(path="/tmp/flow-declined.png", full_page=True)

    assert slack.issued == []
    assert not Installation.objects.filter(connector=connector).exists()
    assert not Grant.objects.filter(installation__connector=connector).exists()
    stored = AuthorizationRequest.objects.get(public_id=flow["request"])
    assert stored.outcome == "denied"
    assert AuditEvent.objects.filter(
        type="authorization.failed", correlation__authorizationId=flow["request"]
    ).exists()
    # The deployment polling for the outcome hears the same.
    polled = requests.get(
        f"{public_url}/v1/connect/result/{flow['verifier']}",
        headers={"Authorization": f"Bearer {credential}"},
        timeout=10,
    )
    assert polled.status_code == 400
    assert polled.json()["error"]["code"] == "access_denied"
    # The link is spent: opening it again says so instead of starting over.
    tenant.goto(flow["url"])
    assert tenant.locator("#outcome").inner_text() == "This link was already used"
