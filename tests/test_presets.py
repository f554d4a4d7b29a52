"""Presets: allauth's provider catalogue as custom OAuth connectors, one of each shape."""

import base64
import hashlib
import json
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
from allauth.socialaccount.models import SocialApp
from allauth.socialaccount.providers.google.views import GoogleOAuth2Adapter
from django.contrib.auth.models import User
from django.test import Client

from connect.models import Connector, Grant, Project, Team
from connect.presets import PRESETS, PresetError, preset_connector


class GitLabFake:
    """A self-hosted GitLab's OAuth endpoints, as strict as GitLab about the code exchange."""

    def __init__(self) -> None:
        self.codes: dict[str, tuple[str, str]] = {}  # code -> (redirect_uri, challenge)
        self.exchanges: list[dict[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = dict(parse_qsl(parts.query))
                if parts.path != "/oauth/authorize" or query.get("client_id") != "gl-app":
                    self.send_response(400)
                    self.end_headers()
                    return
                code = secrets.token_urlsafe(8)
                fake.codes[code] = (query["redirect_uri"], query["code_challenge"])
                location = (
                    query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"]})
                )
                self.send_response(302)
                self.send_header("Location", location)
                self.end_headers()

            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                form = dict(parse_qsl(self.rfile.read(length).decode()))
                fake.exchanges.append(form)
                redirect_uri, challenge = fake.codes.pop(form.get("code", ""), ("", ""))
                verifier = form.get("code_verifier", "")
                expected = (
                    base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
                    .decode()
                    .rstrip("=")
                )
                ok = (
                    urlsplit(self.path).path == "/oauth/token"
                    and form.get("grant_type") == "authorization_code"
                    and form.get("client_id") == "gl-app"
                    and form.get("client_secret") == "gl-secret"
                    and form.get("redirect_uri") == redirect_uri
                    and expected == challenge
                )
                body = (
                    {
                        "access_token": "glpat-user-token",
                        "token_type": "Bearer",
                        "expires_in": 7200,
                        "refresh_token": "gl-refresh",
                        "scope": "read_user",
                        "created_at": 1795660000,
                    }
                    if ok
                    else {"error": "invalid_grant"}
                )
                data = json.dumps(body).encode()
                self.send_response(200 if ok else 400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def gitlab() -> Iterator[GitLabFake]:
    fake = GitLabFake()
    yield fake
    fake.server.shutdown()


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

    assert 'value="gitlab"' in chooser
    assert "https://gitlab.acme.test/oauth/authorize" in add
    assert "https://gitlab.acme.test/oauth/token" in add
    assert re.search(r'<option value="oauth" selected>', add)


@pytest.mark.django_db(transaction=True)
def test_an_instance_preset_makes_a_working_connector(
    gitlab: GitLabFake,
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
    assert token.json()["token"] == "glpat-user-token"
    assert gitlab.exchanges[0]["grant_type"] == "authorization_code"
    grant = Grant.objects.get(subject_id="dev-1")
    assert grant.scopes == ["read_user"]
    assert grant.reveal("refresh_token") == "gl-refresh"
