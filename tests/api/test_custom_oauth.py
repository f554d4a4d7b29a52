"""Custom OAuth connectors: endpoints by discovery (through the SSRF guard) and jwt-bearer
subjects (RFC 7523) signed with the connector's own published key."""

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import jwt
import pytest
import requests
from django.test import Client

from connect import errors
from connect.models import Connector, Grant, Project, Team
from connect.services.connectors import connector_discover


class Server:
    """Metadata documents and a token endpoint that takes only the jwt-bearer grant."""

    def __init__(self, documents: dict[str, dict[str, Any]]) -> None:
        self.documents = documents
        self.forms: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path in server.documents:
                    self.reply(200, server.documents[self.path])
                else:
                    self.reply(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                form = dict(parse_qsl(self.rfile.read(length).decode()))
                server.forms.append(form)
                if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
                    self.reply(400, {"error": "unsupported_grant_type"})
                    return
                n = len(server.forms)
                self.reply(200, {"access_token": f"asserted-{n}", "expires_in": 3600})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server({})
    running.documents["/.well-known/openid-configuration"] = {
        "issuer": running.url,
        "authorization_endpoint": f"{running.url}/authorize",
        "token_endpoint": f"{running.url}/token",
        "revocation_endpoint": f"{running.url}/revoke",
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
    }
    yield running
    running.httpd.shutdown()


def test_discovery_fills_the_endpoints_from_openid_metadata(server: Server) -> None:
    # RFC 8414's document is tried first; this server has only OpenID's, which is then read.
    config = connector_discover(issuer=server.url)

    assert config["authorizationEndpoint"] == f"{server.url}/authorize"
    assert config["tokenEndpoint"] == f"{server.url}/token"
    assert config["revocationEndpoint"] == f"{server.url}/revoke"
    # A shared secret is preferred over a key when the server takes both.
    assert config["tokenEndpointAuthMethod"] == "client_secret_post"
    assert config["issuer"] == server.url


def test_discovery_goes_through_the_ssrf_guard(settings: Any, server: Server) -> None:
    with pytest.raises(errors.InvalidRequest, match="Could not discover"):
        connector_discover(issuer="http://10.0.0.1")
    settings.CONNECT_ALLOW_LOOPBACK = False
    with pytest.raises(errors.InvalidRequest):
        connector_discover(issuer=server.url)


@pytest.mark.django_db(transaction=True)
def test_a_jwt_bearer_subject_gets_a_token_asserted_with_the_connectors_key(
    server: Server,
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
    assert first.json()["token"] == again.json()["token"] == "asserted-1"  # cached per subject
    assert other.json()["token"] == "asserted-2"
    assert len(server.forms) == 2
    # The assertion verifies against the key the app publishes for this connector.
    jwks = requests.get(
        f"{live_server.url}/connect/connectors/{connector.public_id}/jwks.json", timeout=5
    ).json()
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
