"""The official Python SDK (`vercel-connect`) against a live server, as a deployment uses it.

Only the base URL and the bearer change; the bearer is a deployment credential or an OIDC token
of the app's own issuer, each obtained the way the README tells a user to (the CLI commands).
"""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
import requests
from django.core.management import call_command
from vercel.api import session
from vercel.connect import sync as connect
from vercel.connect.sync import (
    ConnectApiError,
    ConnectAppTokenSubject,
    ConnectNotFoundError,
    ConnectOptions,
    ConnectorInstallationRequiredError,
    ConnectServiceOptions,
    ConnectUserTokenSubject,
    UserAuthorizationRequiredError,
)

from connect.models import AuditEvent, Connector, ConnectorType, Grant, Project, TokenIssue
from connect.services import demo

pytestmark = pytest.mark.django_db(transaction=True)

APP = ConnectAppTokenSubject()
FRESH = ConnectOptions(force_refresh=True)


def cli(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def bearer_for(kind: str, environment: str) -> str:
    """A bearer from the CLI, as a user would get it: the last stdout line."""
    scope = ["--team", "demo", "--project", demo.DEMO_PROJECT_SLUG, "--environment", environment]
    if kind == "credential":
        lines = cli("deployment_credential", "create", *scope).splitlines()
    else:
        lines = cli("oidc_token", *scope).splitlines()
    assert lines, "the command printed nothing"
    return lines[-1]


@pytest.fixture(params=["credential", "oidc"])
def bearer_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(live_server: Any, settings: Any) -> str:
    # The app's issuer is PUBLIC_URL: tokens name it as iss and aud, the server checks both.
    settings.PUBLIC_URL = live_server.url
    cli("demo")
    return str(live_server.url)


@pytest.fixture
def sdk(server: str, bearer_kind: str) -> Callable[..., AbstractContextManager[str]]:
    """``with sdk() as bearer:`` binds the SDK to the live server with a fresh bearer."""

    @contextmanager
    def bind(environment: str = "production") -> Iterator[str]:
        token = bearer_for(bearer_kind, environment)

        async def credentials() -> str:
            return token

        options = ConnectServiceOptions(base_url=server, credentials_factory=credentials)
        with session(service_options=[options]):
            yield token

    return bind


def demo_connector() -> Connector:
    return Connector.objects.get(team__slug="demo", uid=demo.DEMO_CONNECTOR_UID)


def demo_project() -> Project:
    return Project.objects.get(team__slug="demo", slug=demo.DEMO_PROJECT_SLUG)


def test_gets_the_demo_token(sdk: Callable[..., AbstractContextManager[str]]) -> None:
    before = datetime.now(UTC)
    with sdk():
        assert connect.get_token("api-key/demo", subject=APP) == "demo-secret-key"
        response = connect.get_token_response("api-key/demo", subject=APP, options=FRESH)

    connector = demo_connector()
    assert response.token == "demo-secret-key"
    assert response.token_id is not None
    assert response.token_id.startswith("stk_")
    # The SDK turned integer milliseconds into an aware datetime; a nominal hour for a key.
    assert before + timedelta(minutes=59) < response.expires_at < before + timedelta(minutes=61)
    assert response.connector.id == connector.public_id
    assert response.connector.uid == "api-key/demo"
    assert response.connector.type == "api-key"
    assert response.installation_id is not None
    assert response.installation_id.startswith("sci_")

    issues = TokenIssue.objects.filter(grant__installation__connector=connector)
    assert issues.count() == 2  # force_refresh went back to the server
    issue = issues.get(public_id=response.token_id)
    assert issue.project == demo_project()
    assert issue.environment == "production"


def test_the_scl_id_and_the_uid_name_the_same_connector(
    sdk: Callable[..., AbstractContextManager[str]],
) -> None:
    connector = demo_connector()
    with sdk():
        by_id = connect.get_token_response(connector.public_id, subject=APP)
        by_uid = connect.get_token_response("api-key/demo", subject=APP)
    assert by_id.token == by_uid.token == "demo-secret-key"
    assert by_id.connector.id == by_uid.connector.id == connector.public_id
    assert by_id.token_id != by_uid.token_id


def test_reads_connector_metadata(sdk: Callable[..., AbstractContextManager[str]]) -> None:
    with sdk():
        metadata = connect.get_connector_metadata("api-key/demo")
        by_id = connect.get_connector_metadata(demo_connector().public_id)

    connector = demo_connector()
    assert (metadata.id, metadata.uid, metadata.type) == (
        connector.public_id,
        "api-key/demo",
        "api-key",
    )
    assert metadata.name == connector.name
    assert metadata.created_at is not None
    assert metadata.created_at.tzinfo is not None
    assert by_id.id == metadata.id
    assert "demo-secret-key" not in repr(metadata)


def test_revokes_the_app_subject(sdk: Callable[..., AbstractContextManager[str]]) -> None:
    with sdk() as bearer:
        assert connect.get_token("api-key/demo", subject=APP) == "demo-secret-key"
        connect.revoke_token("api-key/demo", subject=APP)
        # An app subject keeps the connector's configured key: asking again still works.
        assert connect.get_token("api-key/demo", subject=APP, options=FRESH) == "demo-secret-key"

    event = AuditEvent.objects.get(type="token.revoked")
    assert event.targets == {"connectorId": demo_connector().public_id}
    assert event.fields["subject"] == "app"
    assert event.fields["tokensFound"] == 1
    assert event.actor.startswith("credential:dpc_" if bearer.startswith("cdc_") else "oidc:")
    # The installation stays, and so does the app grant.
    assert Grant.objects.filter(
        installation__connector=demo_connector(), subject_type="app"
    ).exists()


def test_unknown_connector_is_not_found(sdk: Callable[..., AbstractContextManager[str]]) -> None:
    with sdk(), pytest.raises(ConnectNotFoundError) as caught:
        connect.get_token("api-key/nope", subject=APP)
    assert caught.value.code == "not_found"
    assert caught.value.status_code == 404

    with sdk(), pytest.raises(ConnectNotFoundError) as caught:
        connect.get_connector_metadata("scl_doesnotexist")
    assert caught.value.status_code == 404


def test_unlinked_project(
    sdk: Callable[..., AbstractContextManager[str]], make_connector: Callable[..., Connector]
) -> None:
    make_connector(demo_connector().team, uid="api-key/unlinked", secrets={"api_key": "k"})
    with sdk():
        with pytest.raises(ConnectApiError) as token_error:
            connect.get_token("api-key/unlinked", subject=APP)
        with pytest.raises(ConnectApiError) as metadata_error:
            connect.get_connector_metadata("api-key/unlinked")
    for caught in (token_error, metadata_error):
        assert type(caught.value) is ConnectApiError
        assert caught.value.code == "client_not_linked_to_project"
        assert caught.value.status_code == 403


def test_environment_not_enabled(sdk: Callable[..., AbstractContextManager[str]]) -> None:
    # The demo link covers production and development, not preview.
    with sdk("preview"), pytest.raises(ConnectApiError) as caught:
        connect.get_token("api-key/demo", subject=APP)
    assert type(caught.value) is ConnectApiError
    assert caught.value.code == "client_not_enabled_for_environment"
    assert caught.value.status_code == 403


def test_per_call_bearer_overrides_the_session(
    sdk: Callable[..., AbstractContextManager[str]], bearer_kind: str
) -> None:
    preview = bearer_for(bearer_kind, "preview")
    with sdk("development"):
        assert connect.get_token("api-key/demo", subject=APP) == "demo-secret-key"
        with pytest.raises(ConnectApiError) as caught:
            connect.get_token(
                "api-key/demo", subject=APP, options=ConnectOptions(vercel_token=preview)
            )
    assert caught.value.code == "client_not_enabled_for_environment"


def test_several_installations_and_no_default(
    sdk: Callable[..., AbstractContextManager[str]],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
    make_installation: Callable[..., Any],
) -> None:
    slack = make_connector(
        demo_connector().team, uid="slack/bot", type=ConnectorType.SLACK, client_id="1.2"
    )
    make_link(slack, demo_project(), ["production"])
    make_installation(slack, tenant_id="T1")
    make_installation(slack, tenant_id="T2")
    with sdk(), pytest.raises(ConnectorInstallationRequiredError) as caught:
        connect.get_token("slack/bot", subject=APP)
    assert caught.value.code == "connector_installation_required"
    assert caught.value.status_code == 422


def test_installation_that_does_not_exist(
    sdk: Callable[..., AbstractContextManager[str]],
) -> None:
    with sdk(), pytest.raises(ConnectorInstallationRequiredError) as caught:
        connect.get_token("api-key/demo", subject=APP, installation_id="sci_doesnotexist")
    assert caught.value.code == "connector_installation_required"
    assert caught.value.status_code == 422


def test_user_without_a_grant(
    sdk: Callable[..., AbstractContextManager[str]],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
) -> None:
    oauth = make_connector(
        demo_connector().team,
        uid="oauth/acme",
        type=ConnectorType.OAUTH,
        client_id="client",
        secrets={"client_secret": "s3cret"},
        config={"tokenEndpoint": "https://auth.example.com/token"},
        default_scopes={"user": ["read"], "app": []},
    )
    make_link(oauth, demo_project(), ["production"])
    with sdk(), pytest.raises(UserAuthorizationRequiredError) as caught:
        connect.get_token("oauth/acme", subject=ConnectUserTokenSubject(id="42"))
    assert caught.value.code == "user_authorization_required"
    assert caught.value.status_code == 422


def test_no_redirects_and_percent_encoded_uid_over_http(server: str, bearer_kind: str) -> None:
    """What the SDK sends, by hand: the uid as one %2F segment, with and without a slash."""
    headers = {"Authorization": f"Bearer {bearer_for(bearer_kind, 'production')}"}
    ok = requests.post(
        f"{server}/v1/connect/token/api-key%2Fdemo",
        json={"subject": {"type": "app"}},
        headers=headers,
        allow_redirects=False,
        timeout=10,
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["token"] == "demo-secret-key"
    assert isinstance(ok.json()["expiresAt"], int)
    for path in ("/v1/connect/token/api-key%2Fdemo/", "/v1/connect/connectors/api-key%2Fdemo/"):
        response = requests.post(
            f"{server}{path}",
            json={"subject": {"type": "app"}},
            headers=headers,
            allow_redirects=False,
            timeout=10,
        )
        assert response.status_code == 404, (path, response.status_code)
        assert response.json()["error"]["code"] == "not_found"
