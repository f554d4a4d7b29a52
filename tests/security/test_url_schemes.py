"""Only http(s) URLs, ever (issue 8, point 1).

A member who may configure a connector tries to get a ``javascript:`` (or ``data:``, ``file:``,
scheme-relative, relative) URL onto a page or into a request: through the admin form, through
the service every writer uses, through the runtime API's ``returnUrl``, through discovery, and
by writing the database directly. Production mode also refuses ``http://``.
"""

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from connect import errors, http
from connect.models import (
    AuthorizationRequest,
    Connector,
    ConnectorType,
    Environment,
    Project,
    Role,
    Team,
    TrustedIssuer,
)
from connect.providers import PROVIDERS
from connect.services.connectors import connector_discover, connector_save
from connect.web_urls import UnsafeURL, check_web_url
from tests.admin.pages import form_data
from tests.api.wire import assert_error, post_json
from tests.fakes.oauth import OAuthFake

#: What a member types instead of an https:// URL, and what a browser would make of it.
HOSTILE_URLS = [
    pytest.param("javascript:alert(document.cookie)", id="javascript"),
    pytest.param("JaVaScRiPt:alert(1)", id="javascript-mixed-case"),
    pytest.param("java\tscript:alert(1)", id="javascript-with-a-tab"),
    pytest.param(" javascript:alert(1)", id="javascript-leading-space"),
    pytest.param("data:text/html,<script>alert(1)</script>", id="data"),
    pytest.param("file:///etc/passwd", id="file"),
    pytest.param("//evil.example/authorize", id="scheme-relative"),
    pytest.param("/authorize", id="relative"),
    pytest.param("ftp://evil.example/authorize", id="ftp"),
    pytest.param("https:evil.example/authorize", id="https-without-slashes"),
    pytest.param("https:///evil.example/authorize", id="https-without-a-host"),
    pytest.param("https://idp.example\\@evil.example/authorize", id="backslash"),
    pytest.param("https://user:pw@evil.example/authorize", id="credentials"),
]


@pytest.fixture
def team(make_team: Callable[..., Team]) -> Team:
    return make_team(slug="acme")


@pytest.fixture
def member(make_member: Callable[..., User], team: Team) -> Client:
    client = Client()
    client.force_login(make_member(team, Role.MEMBER, username="acme-member"))
    return client


@pytest.fixture
def oauth_connector(team: Team, make_connector: Callable[..., Connector]) -> Connector:
    return make_connector(
        team,
        uid="oauth/acme",
        type=ConnectorType.OAUTH,
        client_id="acme-client",
        secrets={"client_secret": "cs-acme"},
        config={
            "authorizationEndpoint": "https://idp.example/authorize",
            "tokenEndpoint": "https://idp.example/token",
        },
        allowed_return_origins=["https://app.example.com"],
    )


def change_url(connector: Connector) -> str:
    return reverse("admin:connect_connector_change", args=[connector.pk])


# The rule itself -----------------------------------------------------------------------------


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_the_rule_refuses_every_hostile_spelling(url: str) -> None:
    with pytest.raises(UnsafeURL):
        check_web_url(url)


def test_the_rule_takes_https_and_outside_production_http() -> None:
    assert check_web_url("https://idp.example:8443/oauth/token?x=1") == (
        "https://idp.example:8443/oauth/token?x=1"
    )
    assert check_web_url("http://127.0.0.1:8000/token") == "http://127.0.0.1:8000/token"


# Saving: the admin form, the service, the API -------------------------------------------------


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_member_cannot_store_a_hostile_authorization_endpoint_through_the_admin(
    db: None, member: Client, oauth_connector: Connector, url: str
) -> None:
    page = member.get(change_url(oauth_connector))
    data = form_data(page, "connector_form")
    # One typed input per configuration key: the URL is typed into its own field.
    data["cfg_authorizationEndpoint"] = [url]

    response = member.post(change_url(oauth_connector), data)

    assert response.status_code == 200
    assert "authorizationEndpoint must" in response.content.decode()
    oauth_connector.refresh_from_db()
    assert oauth_connector.config["authorizationEndpoint"] == "https://idp.example/authorize"


# Django's URLField takes these; our rule does not (ftp:, credentials in the URL).
@pytest.mark.parametrize("url", ["ftp://evil.example/icon.png", "https://u:p@evil.example/i.png"])
def test_member_cannot_store_a_non_web_icon_url_through_the_admin(
    db: None, member: Client, oauth_connector: Connector, url: str
) -> None:
    data = form_data(member.get(change_url(oauth_connector)), "connector_form")
    data["icon_url"] = [url]

    response = member.post(change_url(oauth_connector), data)

    assert response.status_code == 200
    assert "The icon URL must" in response.content.decode()
    oauth_connector.refresh_from_db()
    assert oauth_connector.icon_url == ""


def every_url_key() -> list[Any]:
    return [
        pytest.param(kind, key, id=f"{kind}.{key}")
        for kind, provider in PROVIDERS.items()
        for key in provider.url_config_keys
    ]


@pytest.mark.parametrize(("kind", "key"), every_url_key())
@pytest.mark.parametrize("url", ["javascript:alert(1)//", "data:,x", "//evil.example"])
def test_member_cannot_store_a_hostile_url_in_any_declared_config_key_through_the_service(
    db: None, team: Team, kind: str, key: str, url: str
) -> None:
    connector = Connector(
        team=team, uid=f"{kind}/x", type=kind, service=kind, name="X", config={key: url}
    )

    with pytest.raises(ValidationError) as refused:
        connector_save(connector=connector, actor="test")

    assert f"{key} must" in " ".join(refused.value.message_dict["config"])
    assert not Connector.objects.filter(uid=f"{kind}/x").exists()


def test_the_per_type_base_urls_are_declared() -> None:
    # The overrides every type documents are checked: a URL key left undeclared would not be.
    declared = {kind: set(p.url_config_keys) for kind, p in PROVIDERS.items()}
    assert {"baseUrl"} <= declared["slack"]
    assert {"webBaseUrl", "apiBaseUrl"} <= declared["github"]
    assert {"baseUrl", "apiBaseUrl"} <= declared["linear"]
    assert {"loginBaseUrl"} <= declared["microsoft"]
    assert {"loginBaseUrl"} <= declared["salesforce"]
    assert {"baseUrl"} <= declared["discord"]
    assert {
        "authorizationEndpoint",
        "tokenEndpoint",
        "revocationEndpoint",
        "userinfoEndpoint",
        "jwksUri",
        "issuer",
    } <= declared["oauth"]


@pytest.mark.parametrize(
    "origin",
    ["javascript:alert(1)", "//app.example.com", "https://app.example.com/path", "app.example.com"],
)
def test_member_cannot_store_a_return_origin_that_is_not_an_origin(
    db: None, oauth_connector: Connector, origin: str
) -> None:
    oauth_connector.allowed_return_origins = [origin]

    with pytest.raises(ValidationError) as refused:
        connector_save(connector=oauth_connector, actor="test")

    assert "allowed_return_origins" in refused.value.message_dict


@pytest.mark.parametrize(
    ("field", "url"),
    [("issuer", "ftp://token.example.com"), ("jwks_url", "ftp://token.example.com/jwks")],
)
def test_member_cannot_store_a_non_web_trusted_issuer_url(
    db: None, team: Team, field: str, url: str
) -> None:
    issuer = TrustedIssuer(
        team=team,
        issuer="https://token.actions.githubusercontent.com",
        jwks_url="https://token.actions.githubusercontent.com/.well-known/jwks",
        audience=team.workload_audience,
    )
    setattr(issuer, field, url)

    with pytest.raises(ValidationError) as refused:
        issuer.full_clean()

    assert " must " in refused.value.message_dict[field][0]


def test_member_cannot_store_a_non_web_environment_base_url(
    db: None, team: Team, make_project: Callable[..., Project]
) -> None:
    environment = make_project(team).environments.get()
    environment.base_url = "ftp://hooks.example.com"

    with pytest.raises(ValidationError) as refused:
        environment.full_clean()

    assert refused.value.message_dict["base_url"] == [
        "The base URL must be a https:// or http:// URL, not ftp:."
    ]


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "data:text/html,x",
        "//app.example.com/done",
        "/done",
        "ftp://app.example.com/done",
    ],
)
def test_deployment_cannot_start_a_flow_with_a_hostile_return_url(
    db: None,
    oauth_connector: Connector,
    make_project: Callable[..., Project],
    make_link: Callable[..., Any],
    make_credential: Callable[..., str],
    url: str,
) -> None:
    project = make_project(oauth_connector.team)
    make_link(oauth_connector, project, ["production"])

    response = post_json(
        Client(),
        "/v1/connect/authorize/oauth%2Facme",
        {"subject": {"type": "user", "id": "u1"}, "returnUrl": url},
        HTTP_AUTHORIZATION=f"Bearer {make_credential(project)}",
    )

    error = assert_error(response, 400, "invalid_request")
    # The message says what is expected, not only that something is wrong.
    assert error["message"].startswith("returnUrl")
    assert "https://" in error["message"]
    assert not AuthorizationRequest.objects.exists()


# Discovery ---------------------------------------------------------------------------------------


@pytest.fixture
def metadata(oauth_server: OAuthFake) -> OAuthFake:
    """An authorization server whose RFC 8414 metadata says what the test makes it say."""
    return oauth_server


@pytest.mark.parametrize("key", ["authorization_endpoint", "token_endpoint", "jwks_uri"])
def test_discovery_refuses_metadata_with_a_javascript_endpoint(
    metadata: OAuthFake, key: str
) -> None:
    metadata.metadata_changes[key] = "javascript:alert(1)"

    with pytest.raises(errors.InvalidRequest, match=f"{key} must"):
        connector_discover(issuer=metadata.url)


def test_discovery_refuses_metadata_naming_another_issuer(metadata: OAuthFake) -> None:
    # Its own issuer is fine, with or without the trailing slash people type...
    assert connector_discover(issuer=metadata.url + "/")["issuer"] == metadata.url
    # ...but not a mix-up: a server answering for an issuer it was not asked about.
    metadata.metadata_changes["issuer"] = "https://accounts.example.com"

    with pytest.raises(errors.InvalidRequest, match="names another issuer"):
        connector_discover(issuer=metadata.url)


def test_discovery_refuses_metadata_naming_no_issuer(metadata: OAuthFake) -> None:
    metadata.metadata_changes["issuer"] = None

    with pytest.raises(errors.InvalidRequest, match="names another issuer"):
        connector_discover(issuer=metadata.url)


def test_member_cannot_discover_from_a_mixed_up_issuer_through_the_admin(
    db: None, member: Client, oauth_connector: Connector, metadata: OAuthFake
) -> None:
    metadata.metadata_changes["issuer"] = "https://accounts.example.com"
    data = form_data(member.get(change_url(oauth_connector)), "connector_form")
    data["discovery_issuer"] = [metadata.url]

    response = member.post(change_url(oauth_connector), data)

    assert response.status_code == 200
    assert "names another issuer" in response.content.decode()
    oauth_connector.refresh_from_db()
    assert oauth_connector.config["tokenEndpoint"] == "https://idp.example/token"


# Where URLs are used: a value written around validation never reaches a page ------------------


@pytest.fixture
def install_link(
    oauth_connector: Connector, make_authorization_request: Callable[..., AuthorizationRequest]
) -> str:
    request = make_authorization_request(oauth_connector, kind="consent", subject_type="user")
    return f"/connect/install/{oauth_connector.public_id}?request={request.public_id}"


@pytest.mark.parametrize(
    "url", ["javascript:alert(document.cookie)//", "data:text/html,<script>alert(1)</script>"]
)
def test_an_injected_authorization_endpoint_never_reaches_the_flow_page(
    oauth_connector: Connector, install_link: str, url: str
) -> None:
    # Written straight to the database, around every check on the way in.
    Connector.objects.filter(pk=oauth_connector.pk).update(
        config={**oauth_connector.config, "authorizationEndpoint": url}
    )

    response = Client().get(install_link)

    html = response.content.decode()
    assert url.split(":")[0] + ":" not in html
    assert 'id="continue"' not in html
    assert "misconfigured" in html


def test_an_injected_icon_url_never_reaches_the_flow_page(
    oauth_connector: Connector, install_link: str
) -> None:
    Connector.objects.filter(pk=oauth_connector.pk).update(icon_url="javascript:alert(1)")

    response = Client().get(install_link)

    assert response.status_code == 200
    assert "javascript:" not in response.content.decode()
    assert "<img" not in response.content.decode()


def test_an_injected_return_url_never_becomes_a_link_on_the_error_page(
    oauth_connector: Connector, make_authorization_request: Callable[..., AuthorizationRequest]
) -> None:
    request = make_authorization_request(
        oauth_connector, kind="consent", subject_type="user", return_url="javascript:alert(1)"
    )

    # The person declined at the provider: the page offers a way back to the app, if safe.
    response = Client().get(f"/connect/callback?state={request.state}&error=access_denied")

    assert response.status_code == 400
    assert "javascript:" not in response.content.decode()
    assert "Back to the app" not in response.content.decode()


def test_an_injected_icon_url_never_reaches_the_admin_preview(
    member: Client, oauth_connector: Connector
) -> None:
    Connector.objects.filter(pk=oauth_connector.pk).update(icon_url="javascript:alert(1)")

    page = member.get(change_url(oauth_connector))

    assert page.status_code == 200
    assert 'src="javascript:' not in page.content.decode()


# Production mode -------------------------------------------------------------------------------


@pytest.fixture
def production(settings: Any) -> None:
    settings.PRODUCTION = True


def test_production_refuses_an_http_token_endpoint(
    db: None, team: Team, production: None, make_connector: Callable[..., Connector]
) -> None:
    with pytest.raises(ValidationError) as refused:
        make_connector(
            team,
            uid="oauth/plain",
            type=ConnectorType.OAUTH,
            config={"tokenEndpoint": "http://idp.example/token"},
        )

    assert refused.value.message_dict["config"] == [
        "tokenEndpoint must use https:// in production."
    ]


def test_production_refuses_an_http_return_url(
    oauth_connector: Connector,
    make_project: Callable[..., Project],
    make_link: Callable[..., Any],
    make_credential: Callable[..., str],
    settings: Any,
) -> None:
    project = make_project(oauth_connector.team)
    make_link(oauth_connector, project, ["production"])
    settings.PRODUCTION = True

    response = post_json(
        Client(),
        "/v1/connect/authorize/oauth%2Facme",
        {"subject": {"type": "user", "id": "u1"}, "returnUrl": "http://app.example.com/done"},
        HTTP_AUTHORIZATION=f"Bearer {make_credential(project)}",
    )

    error = assert_error(response, 400, "invalid_request")
    assert "https://" in error["message"]


def test_production_refuses_an_http_environment_base_url(
    db: None, team: Team, make_project: Callable[..., Project], production: None
) -> None:
    environment: Environment = make_project(team).environments.get()
    environment.base_url = "http://hooks.example.com"

    with pytest.raises(ValidationError) as refused:
        environment.full_clean()

    assert refused.value.message_dict["base_url"] == [
        "The base URL must use https:// in production."
    ]


def test_production_sends_nothing_over_plain_http(metadata: OAuthFake, settings: Any) -> None:
    document = f"{metadata.url}/.well-known/oauth-authorization-server"
    assert http.session().get(document).status_code == 200
    settings.PRODUCTION = True

    with pytest.raises(http.BlockedDestination):
        http.session().get(document)
