"""Presets: allauth's provider catalogue as custom OAuth connectors, one of each shape."""

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from allauth.socialaccount.models import SocialApp
from allauth.socialaccount.providers.google.views import GoogleOAuth2Adapter
from django.contrib.auth.models import User
from django.test import Client

from connect.models import Connector, Grant, Project, Team
from connect.presets import PRESETS, PresetError, all_presets, preset_connector
from connect.providers import get_provider
from connect.providers.base import AuthorizeRequest, ProviderCredentials
from tests.fakes.oauth import OAuthFake
from tests.providers.flow import callback_url


@pytest.fixture
def gitlab(oauth_server: OAuthFake) -> OAuthFake:
    """A self-hosted GitLab: the strict OAuth server with GitLab's paths (``/oauth/…``)."""
    oauth_server.base_path = "/oauth"
    oauth_server.add_client("gl-app", method="client_secret_post", secret="gl-secret")
    oauth_server.register_redirect("gl-app", callback_url())
    return oauth_server


@pytest.mark.django_db
def test_a_fixed_endpoint_preset_comes_from_allauth_and_creates_no_social_app() -> None:
    google = preset_connector("google")

    assert google.config["authorizationEndpoint"] == GoogleOAuth2Adapter.authorize_url
    assert google.config["tokenEndpoint"] == GoogleOAuth2Adapter.access_token_url
    # A refresh token needs offline access: asked for on every authorization URL.
    assert google.config["authorizationUrlParams"] == {
        "access_type": "offline",
        "prompt": "consent",
    }
    assert google.default_scopes == {"user": ["profile", "email"]}
    assert SocialApp.objects.count() == 0


def test_an_instance_preset_needs_its_url() -> None:
    assert PRESETS["gitlab"].needs_instance_url
    with pytest.raises(PresetError, match="instance URL"):
        preset_connector("gitlab")
    with pytest.raises(PresetError):
        preset_connector("gitlab", instance_url="gitlab.example.com")  # no scheme
    with pytest.raises(PresetError):
        preset_connector("nope")


def test_the_admin_fills_an_oauth_connector_from_a_preset(
    make_team: Callable[..., Team], make_member: Callable[..., User]
) -> None:
    team = make_team()
    client = Client()
    client.force_login(make_member(team))

    chooser = client.get("/admin/connect/connector/add-from-preset/").content.decode()
    add = client.get(
        "/admin/connect/connector/add/",
        {"preset": "gitlab", "type": "oauth", "instance_url": "https://gitlab.acme.test/ignored"},
    ).content.decode()

    assert 'name="preset" value="gitlab"' in chooser
    assert "https://gitlab.acme.test/oauth/authorize" in add
    assert "https://gitlab.acme.test/oauth/token" in add
    assert re.search(r'<option value="oauth" selected>', add)


@pytest.mark.django_db(transaction=True)
def test_an_instance_preset_makes_a_working_connector(
    gitlab: OAuthFake,
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
    make_credential: Callable[..., str],
) -> None:
    preset = preset_connector("gitlab", instance_url=gitlab.url)
    team = make_team()
    project = make_project(team)
    connector = make_connector(
        team,
        uid="gitlab/self-hosted",
        type="oauth",
        service=preset.service,
        client_id="gl-app",
        secrets={"client_secret": "gl-secret"},
        config=preset.config,
        default_scopes=preset.default_scopes,
    )
    make_link(connector, project, ["production"])
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {make_credential(project)}"}
    client = Client()

    started = client.post(
        "/v1/connect/authorize/gitlab%2Fself-hosted",
        data={"subject": {"type": "user", "id": "dev-1"}},
        content_type="application/json",
        **bearer,
    ).json()
    page = client.get(urlsplit(started["url"]).path + "?" + urlsplit(started["url"]).query)
    link = re.search(r'href="([^"]+)" rel="noopener"', page.content.decode())
    assert link, page.content
    at_gitlab = requests.get(link.group(1).replace("&amp;", "&"), allow_redirects=False)
    back = urlsplit(at_gitlab.headers["Location"])
    done = client.get(back.path + "?" + back.query)
    token = client.post(
        "/v1/connect/token/gitlab%2Fself-hosted",
        data={"subject": {"type": "user", "id": "dev-1"}},
        content_type="application/json",
        **bearer,
    )

    assert done.status_code == 200, done.content
    assert token.status_code == 200, token.content
    assert gitlab.rejections == []
    assert gitlab.calls == {"authorization_code": 1}
    [answer] = gitlab.issued
    assert token.json()["token"] == answer["access_token"]
    grant = Grant.objects.get(subject_id="dev-1")
    assert grant.scopes == ["read_user"]
    assert grant.reveal("refresh_token") == answer["refresh_token"]


# Every preset in the catalogue ------------------------------------------------------------

CATALOGUE = sorted(all_presets())


def test_the_catalogue_holds_many_more_than_the_curated_presets() -> None:
    assert set(PRESETS) <= set(CATALOGUE)
    assert len(CATALOGUE) >= 80
    # Those whose endpoints allauth cannot state without a setting stay out.
    assert "okta" not in CATALOGUE
    assert "auth0" not in CATALOGUE


@pytest.mark.parametrize("preset_id", CATALOGUE)
def test_every_preset_builds_an_authorization_url(preset_id: str) -> None:
    preset = all_presets()[preset_id]
    instance = f"https://{preset_id}.example.com" if preset.needs_instance_url else ""
    built = preset_connector(preset_id, instance_url=instance)
    provider = get_provider("oauth")
    # The registry takes the configuration as it is (https endpoints, known keys typed).
    config = provider.validate_config(built.config)

    url = provider.authorize_url(
        ProviderCredentials(type="oauth", client_id="cid-1", config=config),
        AuthorizeRequest(
            kind="consent",
            subject_type="user",
            scopes=built.default_scopes.get("user", []),
            redirect_uri="https://connect.example.com/connect/callback",
            state="st-1",
            code_challenge="ch-1",
        ),
    )

    parts = urlsplit(url)
    assert url.startswith(config["authorizationEndpoint"])
    assert parts.scheme == "https"
    query = parse_qs(parts.query)
    assert query["client_id"] == ["cid-1"]
    assert query["redirect_uri"] == ["https://connect.example.com/connect/callback"]
    assert query["state"] == ["st-1"]
    assert urlsplit(config["tokenEndpoint"]).scheme == "https"
    assert urlsplit(preset.docs_url).scheme == "https"


def test_the_preset_page_searches_and_links_each_presets_docs(
    make_team: Callable[..., Team], make_member: Callable[..., User]
) -> None:
    client = Client()
    client.force_login(make_member(make_team()))

    every = client.get("/admin/connect/connector/add-from-preset/").content.decode()
    found = client.get("/admin/connect/connector/add-from-preset/", {"q": "git"}).content.decode()
    nothing = client.get("/admin/connect/connector/add-from-preset/", {"q": "zzz"}).content.decode()

    assert every.count('name="preset"') == len(CATALOGUE)
    assert re.findall(r'name="preset" value="([^"]+)"', found) == [
        "digitalocean",
        "gitea",
        "github",
        "gitlab",
    ]
    assert 'href="https://developers.google.com/identity/protocols/oauth2/web-server"' in every
    assert (
        'href="https://docs.allauth.org/en/latest/socialaccount/providers/spotify.html"'
        not in every
    )
    assert "No preset matches" in nothing
