"""Guided connector setup: the form drawn from the registry (typed inputs, no JSON), the
"Set up at the provider" panel, and the "Test" dry run against real loopback fakes."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from connect.models import Connector, Membership, Role, Team
from connect.providers import get_provider
from connect.providers.schema import ConfigInvalid
from tests.admin.pages import form_data
from tests.fakes.oauth import OAuthFake
from tests.fakes.slack import SlackFake

CALLBACK = f"{settings.PUBLIC_URL}/connect/callback"


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def change_url(connector: Connector) -> str:
    return reverse("admin:connect_connector_change", args=[connector.pk])


def dry_run_url(connector: Connector) -> str:
    return reverse("admin:connect_connector_test", args=[connector.pk])


def shown_messages(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def team(make_team: Callable[..., Team]) -> Team:
    return make_team(slug="acme", name="Acme")


@pytest.fixture
def member(team: Team, make_member: Callable[..., User]) -> Client:
    return client_for(make_member(team, Role.MEMBER))


@pytest.fixture
def viewer(team: Team, make_member: Callable[..., User]) -> Client:
    return client_for(make_member(team, Role.VIEWER))


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    with SlackFake(
        client_id="1111.2222", client_secret="slack-cs-1", redirect_uri=CALLBACK
    ) as fake:
        yield fake


@pytest.fixture
def slack_connector(
    team: Team, slack: SlackFake, make_connector: Callable[..., Connector]
) -> Connector:
    return make_connector(
        team,
        uid="slack/acme-bot",
        type="slack",
        client_id=slack.client_id,
        secrets={"client_secret": slack.client_secret, "trigger_signing_secret": "sign-1"},
        config={"baseUrl": slack.url, "botScopes": ["chat:write"]},
        default_scopes={"user": ["search:read"]},
        triggers_enabled=True,
    )


# The form ---------------------------------------------------------------------------------


def test_a_slack_connector_is_added_with_typed_inputs_and_no_json(
    member: Client, team: Team
) -> None:
    add = reverse("admin:connect_connector_add") + "?type=slack"
    page = member.get(add)
    html = page.content.decode()
    assert 'name="config"' not in html  # no JSON textarea for what the type declares
    assert 'type="url" name="cfg_baseUrl"' in html
    data = form_data(page, "connector_form")
    # The member's one team is chosen already.
    assert data["team"] == [str(team.pk)]
    data.update(
        uid=["slack/acme-bot"],
        service=["slack"],
        name=["Acme Bot"],
        client_id=["1111.2222"],
        client_secret=["slack-cs-1"],
        cfg_appId=["A0123"],
        cfg_botScopes=["chat:write\r\nchannels:read\r\n"],
        cfg_slackTeam=["id = T0123\nname = Acme"],
        scopes_user=["search:read"],
        allowed_return_origins=["https://app.acme.test\nhttps://admin.acme.test"],
    )

    response = member.post(add, data)

    assert response.status_code == 302, response.context and response.context["errors"]
    connector = Connector.objects.get(uid="slack/acme-bot")
    assert connector.config == {
        "appId": "A0123",
        "botScopes": ["chat:write", "channels:read"],
        "slackTeam": {"id": "T0123", "name": "Acme"},
    }
    assert connector.default_scopes == {"user": ["search:read"]}
    assert connector.allowed_return_origins == ["https://app.acme.test", "https://admin.acme.test"]


def test_saving_unchanged_typed_inputs_keeps_the_configuration(
    member: Client, slack_connector: Connector
) -> None:
    before = dict(slack_connector.config)
    data = form_data(member.get(change_url(slack_connector)), "connector_form")
    assert data["cfg_botScopes"] == ["chat:write"]

    assert member.post(change_url(slack_connector), data).status_code == 302

    slack_connector.refresh_from_db()
    assert slack_connector.config == before


@pytest.mark.parametrize(
    "url", ["ftp://idp.example/token", "javascript:alert(1)", "https://u:p@idp.example/t"]
)
def test_a_bad_url_is_refused_with_the_registrys_message(
    member: Client, team: Team, make_connector: Callable[..., Connector], url: str
) -> None:
    connector = make_connector(
        team,
        uid="oauth/idp",
        type="oauth",
        client_id="c",
        config={"tokenEndpoint": "https://idp.example/token"},
    )
    data = form_data(member.get(change_url(connector)), "connector_form")
    data["cfg_tokenEndpoint"] = [url]

    response = member.post(change_url(connector), data)

    assert response.status_code == 200
    with pytest.raises(ConfigInvalid) as registry:
        get_provider("oauth").validate_config({"tokenEndpoint": url})
    (message,) = registry.value.errors["tokenEndpoint"]
    assert response.context["adminform"].form.errors["cfg_tokenEndpoint"] == [message]
    connector.refresh_from_db()
    assert connector.config["tokenEndpoint"] == "https://idp.example/token"


def test_a_project_link_offers_the_projects_environments_as_checkboxes(
    member: Client,
    slack_connector: Connector,
    team: Team,
    make_project: Callable[..., Any],
    make_link: Callable[..., Any],
) -> None:
    shop = make_project(team, slug="shop", environments=("production", "preview"))
    make_link(slack_connector, shop, ["production"])
    html = member.get(change_url(slack_connector)).content.decode()
    assert 'type="checkbox" name="links-0-environments" value="preview"' in html
    assert 'type="checkbox" name="links-0-environments" value="production"' in html

    data = form_data(member.get(change_url(slack_connector)), "connector_form")
    data["links-0-environments"] = ["production", "staging"]  # staging is not shop's
    response = member.post(change_url(slack_connector), data)
    assert response.status_code == 200
    assert "staging is not one of the available choices" in response.content.decode()


def test_the_team_is_not_chosen_for_a_member_of_two_teams(
    team: Team, make_team: Callable[..., Team], make_member: Callable[..., User]
) -> None:
    user = make_member(team, Role.MEMBER)

    Membership.objects.create(team=make_team(slug="other"), user=user, role=Role.MEMBER)
    data = form_data(
        client_for(user).get(reverse("admin:connect_connector_add") + "?type=slack"),
        "connector_form",
    )
    assert data["team"] == [""]


# The setup panel --------------------------------------------------------------------------


def test_the_setup_panel_says_what_to_register_at_the_provider(
    member: Client, slack_connector: Connector
) -> None:
    html = member.get(change_url(slack_connector)).content.decode()

    assert "Set up at the provider" in html
    assert f'<code class="connect-copy-value" id="setup-1">{CALLBACK}</code>' in html
    trigger = f"{settings.PUBLIC_URL}/connect/trigger/{slack_connector.public_id}"
    assert f">{trigger}</code>" in html
    assert ">search:read chat:write</code>" in html
    assert 'href="https://api.slack.com/apps"' in html
    # Copy buttons wait for the script (hidden without it); the script is a file, not inline.
    assert 'class="connect-copy" data-copy-target="setup-1" hidden' in html
    assert "connect/copy.js" in html


def test_the_add_page_shows_the_redirect_uri_before_saving(member: Client) -> None:
    html = member.get(reverse("admin:connect_connector_add") + "?type=github").content.decode()
    assert f">{CALLBACK}</code>" in html
    assert "Shown once the connector is saved." in html
    assert 'href="https://github.com/settings/apps"' in html


# The Test button --------------------------------------------------------------------------


def test_a_working_slack_connector_passes_the_dry_run(
    member: Client, slack_connector: Connector, slack: SlackFake
) -> None:
    response = member.post(dry_run_url(slack_connector), follow=True)

    shown = shown_messages(response)
    assert shown[0] == "Test passed: the provider accepts these settings."
    assert any(m.startswith("✓ Token endpoint:") and "invalid_code" in m for m in shown), shown
    assert "✓ Webhook secret: Set: inbound webhooks can be verified." in shown
    # A dry run: the fake saw one code exchange and issued nothing.
    assert slack.issued == []


def test_a_wrong_client_secret_fails_the_dry_run_with_the_reason(
    member: Client, slack_connector: Connector
) -> None:
    slack_connector.seal("client_secret", "not-the-secret")
    slack_connector.save()

    shown = shown_messages(member.post(dry_run_url(slack_connector), follow=True))

    assert shown[0] == "Test failed: 1 of the checks did not pass."
    assert any("refuses the client (bad_client_secret)" in m for m in shown), shown


def test_an_oauth_connector_checks_discovery_and_client_credentials(
    member: Client, team: Team, make_connector: Callable[..., Connector]
) -> None:
    with OAuthFake() as idp:
        idp.add_client("acme", method="client_secret_basic", secret="cs-acme")
        connector = make_connector(
            team,
            uid="oauth/idp",
            type="oauth",
            client_id="acme",
            secrets={"client_secret": "cs-acme"},
            config={
                "serverUrl": idp.issuer,
                "issuer": idp.issuer,
                "tokenEndpoint": idp.token_endpoint,
                "tokenEndpointAuthMethod": "client_secret_basic",
                "clientCredentials": {"enabled": True},
            },
        )

        shown = shown_messages(member.post(dry_run_url(connector), follow=True))

    assert shown[0].startswith("Test passed"), shown
    assert f"✓ Discovery: {idp.issuer} publishes its metadata." in shown
    assert "✓ Client credentials: The token endpoint issued an app token." in shown


def test_a_token_endpoint_on_a_private_address_is_not_probed(
    member: Client, team: Team, make_connector: Callable[..., Connector]
) -> None:
    connector = make_connector(
        team,
        uid="oauth/inside",
        type="oauth",
        client_id="c",
        secrets={"client_secret": "s"},
        config={"tokenEndpoint": "http://169.254.169.254/latest/token"},
    )

    shown = shown_messages(member.post(dry_run_url(connector), follow=True))

    assert any(m.startswith("✗ Token endpoint: Not reachable") for m in shown), shown


def test_a_viewer_cannot_run_the_test(
    viewer: Client, slack_connector: Connector, slack: SlackFake
) -> None:
    assert "connect-test-button" not in viewer.get(change_url(slack_connector)).content.decode()

    assert viewer.post(dry_run_url(slack_connector)).status_code == 403
    assert slack.calls == []


def test_the_test_is_a_post_and_another_teams_connector_is_404(
    member: Client,
    slack_connector: Connector,
    make_team: Callable[..., Team],
    make_connector: Callable[..., Connector],
) -> None:
    assert member.get(dry_run_url(slack_connector)).status_code == 405
    theirs = make_connector(make_team(slug="globex"), uid="api-key/globex")
    assert member.post(dry_run_url(theirs)).status_code == 404


def test_a_client_credentials_connectors_own_installation_is_labelled(
    member: Client, team: Team, make_connector: Callable[..., Connector]
) -> None:
    connector = make_connector(team, uid="api-key/weather", secrets={"api_key": "k-1"})

    html = member.get(change_url(connector)).content.decode()

    assert "<strong>Automatic installation</strong>" in html
    assert "the connector is its own tenant" in html


def test_every_level_is_in_the_breadcrumbs_of_the_install_link_page(
    member: Client, slack_connector: Connector
) -> None:
    page = member.get(reverse("admin:connect_connector_install_link", args=[slack_connector.pk]))
    crumbs = page.content.decode().split('<div class="breadcrumbs">')[1].split("</div>")[0]

    assert [part.split(">")[-1] for part in crumbs.split("</a>")[:-1]] == [
        "Home",
        "Connect",
        "Connectors",
        slack_connector.name,
    ]


def test_the_dry_run_tells_a_host_that_does_not_resolve_from_one_the_guard_blocks(
    member: Client, team: Team, make_connector: Callable[..., Connector]
) -> None:
    """A typo'd host used to read "BlockedDestination", as if the SSRF guard had stepped in."""
    nowhere = make_connector(
        team,
        uid="oauth/nowhere",
        type="oauth",
        client_id="c",
        secrets={"client_secret": "s"},
        config={
            "serverUrl": "https://auth.nowhere.invalid",
            "issuer": "https://auth.nowhere.invalid",
            "tokenEndpoint": "https://auth.nowhere.invalid/token",
        },
    )
    shown = " ".join(shown_messages(member.post(dry_run_url(nowhere), follow=True)))
    assert "does not resolve" in shown, shown
    assert "BlockedDestination" not in shown
    assert "outbound guard" not in shown

    inside = make_connector(
        team,
        uid="oauth/inside2",
        type="oauth",
        client_id="c",
        secrets={"client_secret": "s"},
        config={"tokenEndpoint": "http://169.254.169.254/latest/token"},
    )
    shown = " ".join(shown_messages(member.post(dry_run_url(inside), follow=True)))
    assert "blocked by the outbound guard" in shown, shown
    assert "does not resolve" not in shown
