"""Custom OAuth connectors: endpoints by discovery (through the SSRF guard) and jwt-bearer
subjects (RFC 7523) signed with the connector's own published key."""

from collections.abc import Callable
from typing import Any

import jwt
import pytest
import requests
from django.test import Client

from connect import errors
from connect.models import Connector, Grant, Project, Team
from connect.services.connectors import connector_discover
from tests.fakes.oauth import JWT_BEARER, OAuthFake


@pytest.fixture
def server(oauth_server: OAuthFake) -> OAuthFake:
    """An authorization server that publishes only OpenID's metadata document, and takes a
    shared secret or a key for client authentication."""
    oauth_server.discovery = {"openid-configuration"}
    oauth_server.auth_methods = ["private_key_jwt", "client_secret_post"]
    return oauth_server


def test_discovery_fills_the_endpoints_from_openid_metadata(server: OAuthFake) -> None:
    # RFC 8414's document is tried first; this server has only OpenID's, which is then read.
    config = connector_discover(issuer=server.url)

    assert config["authorizationEndpoint"] == f"{server.url}/authorize"
    assert config["tokenEndpoint"] == f"{server.url}/token"
    assert config["revocationEndpoint"] == f"{server.url}/revoke"
    # A shared secret is preferred over a key when the server takes both.
    assert config["tokenEndpointAuthMethod"] == "client_secret_post"
    assert config["issuer"] == server.url


def test_discovery_goes_through_the_ssrf_guard(settings: Any, server: OAuthFake) -> None:
    with pytest.raises(errors.InvalidRequest, match="Could not discover"):
        connector_discover(issuer="http://10.0.0.1")
    settings.CONNECT_ALLOW_LOOPBACK = False
    with pytest.raises(errors.InvalidRequest):
        connector_discover(issuer=server.url)


@pytest.mark.django_db(transaction=True)
def test_a_jwt_bearer_subject_gets_a_token_asserted_with_the_connectors_key(
    server: OAuthFake,
    live_server: Any,
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
    make_credential: Callable[..., str],
) -> None:
    team = make_team()
    project = make_project(team)
    connector = make_connector(
        team,
        uid="oauth/asserting",
        type="oauth",
        client_id="asserting-client",
        secrets={"client_secret": "s"},
        config={
            "tokenEndpoint": f"{server.url}/token",
            "tokenEndpointAuthMethod": "client_secret_post",
            "jwtBearer": {"enabled": True},
        },
        default_scopes={"jwt-bearer": ["read"]},
    )
    make_link(connector, project, ["production"])
    jwks_url = f"{live_server.url}/connect/connectors/{connector.public_id}/jwks.json"
    # The server checks every assertion against the keys the app publishes for the connector.
    server.add_client(
        "asserting-client", method="client_secret_post", secret="s", jwks_url=jwks_url
    )
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {make_credential(project)}"}
    client = Client()

    def ask(sub: str) -> Any:
        return client.post(
            "/v1/connect/token/oauth%2Fasserting",
            data={"subject": {"type": "jwt-bearer", "sub": sub}},
            content_type="application/json",
            **bearer,
        )

    first, again, other = ask("user-9"), ask("user-9"), ask("user-10")

    assert (first.status_code, again.status_code, other.status_code) == (200, 200, 200)
    assert server.rejections == []
    assert server.calls == {JWT_BEARER: 2}
    asserted, asserted_other = (answer["access_token"] for answer in server.issued)
    assert first.json()["token"] == again.json()["token"] == asserted  # cached per subject
    assert other.json()["token"] == asserted_other
    assert len(server.forms) == 2
    # The assertion verifies against the key the app publishes for this connector.
    jwks = requests.get(jwks_url, timeout=5).json()
    assertion = server.forms[0]["assertion"]
    key = jwt.PyJWK(jwks["keys"][0])
    claims = jwt.decode(assertion, key, algorithms=["RS256"], audience=f"{server.url}/token")
    assert (claims["sub"], claims["iss"]) == ("user-9", "asserting-client")
    assert server.forms[0]["scope"] == "read"
    assert Grant.objects.filter(subject_type="jwt-bearer").count() == 2


@pytest.mark.django_db
def test_jwt_bearer_is_refused_unless_the_connector_enables_it(
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
    make_credential: Callable[..., str],
) -> None:
    team = make_team()
    project = make_project(team)
    connector = make_connector(
        team,
        uid="oauth/plain",
        type="oauth",
        client_id="c",
        config={"tokenEndpoint": "https://idp.example.com/token"},
    )
    make_link(connector, project, ["production"])

    response = Client().post(
        "/v1/connect/token/oauth%2Fplain",
        data={"subject": {"type": "jwt-bearer", "sub": "u"}},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {make_credential(project)}",
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
