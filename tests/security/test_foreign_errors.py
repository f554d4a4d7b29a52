"""Errors that are not ours are not 500s (issue 8, point 10).

A provider address the SSRF guard refuses, or a provider host that does not resolve, is the
provider's outage as far as a caller can tell: the runtime API answers ``provider_unavailable``
(502 with ``Retry-After``) and the callback shows its error page. A kept (minted, down-scoped)
token sealed under a key that is no longer configured is minted again, and the key rotation
re-encrypts those tokens too, so removing the old key afterwards breaks nothing.
"""

import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from connect import crypto
from connect.models import AuthorizationRequest, Connector, Grant, Installation, Project, Team
from tests.fakes.github import GitHubFake
from tests.providers.flow import Api, assert_refused_page, callback_url, error_code

USER = {"type": "user", "id": "u-1"}
APP = {"type": "app"}
DETAILS = [
    {"type": "github_app_installation", "repositories": ["api"], "permissions": ["contents:read"]}
]
# Each is refused before any connection: nothing listens there, and nothing must be waited for.
UNREACHABLE = {
    "private address": "http://10.0.0.1/token",
    "cloud metadata": "http://169.254.169.254/token",
    "encoded loopback": "http://0x7f.1/token",
    "mapped loopback": "http://[::ffff:127.0.0.1]/token",
    "host that does not resolve": "http://provider.invalid/token",
}


@pytest.fixture
def project(make_team: Callable[..., Team], make_project: Callable[..., Project]) -> Project:
    return make_project(make_team())


@pytest.fixture
def api(project: Project, make_credential: Callable[..., str]) -> Api:
    return Api(Client(), make_credential(project))


@pytest.fixture
def make_oauth(
    project: Project, make_connector: Callable[..., Connector], make_link: Callable[..., Any]
) -> Callable[[str], Connector]:
    def make(token_endpoint: str) -> Connector:
        connector = make_connector(
            project.team,
            uid="oauth/far",
            type="oauth",
            client_id="far-client",
            secrets={"client_secret": "far-secret"},
            config={
                "authorizationEndpoint": "https://auth.example.com/authorize",
                "tokenEndpoint": token_endpoint,
                "tokenEndpointAuthMethod": "client_secret_post",
            },
            default_scopes={"user": ["read"]},
        )
        make_link(connector, project, ["production"])
        return connector

    return make


def assert_provider_unavailable(response: Any) -> None:
    assert response.status_code == 502, (response.status_code, response.content[:300])
    assert error_code(response) == "provider_unavailable"
    assert int(response["Retry-After"]) > 0


@pytest.mark.parametrize("endpoint", UNREACHABLE.values(), ids=UNREACHABLE.keys())
def test_a_refresh_to_an_unreachable_provider_is_provider_unavailable(
    api: Api,
    make_oauth: Callable[[str], Connector],
    make_grant: Callable[..., Grant],
    endpoint: str,
) -> None:
    connector = make_oauth(endpoint)
    grant = make_grant(
        connector.installations.get(),
        subject_type=Grant.SubjectType.USER,
        subject_id="u-1",
        issuer=api_issuer(connector),
        secrets={"access_token": "expired-at", "refresh_token": "rt-1"},
        access_expires_at=timezone.now() - timedelta(minutes=1),
    )

    response = api.token("oauth/far", USER)

    assert_provider_unavailable(response)
    grant.refresh_from_db()
    assert grant.status == Grant.Status.ACTIVE, "an outage does not cost the subject its grant"
    assert grant.reveal("refresh_token") == "rt-1"


def api_issuer(connector: Connector) -> str:
    """User ids are the calling project's own: its public id is their issuer."""
    return str(connector.links.get().project.public_id)


@pytest.mark.parametrize("endpoint", UNREACHABLE.values(), ids=UNREACHABLE.keys())
def test_a_callback_whose_code_exchange_is_refused_shows_the_flow_page(
    api: Api, make_oauth: Callable[[str], Connector], endpoint: str
) -> None:
    make_oauth(endpoint)
    started = api.consent("oauth/far", "u-1")
    flow = AuthorizationRequest.objects.get(public_id=started["request"])

    response = Client().get("/connect/callback", {"code": "a-code", "state": flow.state})

    assert_refused_page(response, "The provider did not complete the authorization")
    flow.refresh_from_db()
    assert flow.outcome == AuthorizationRequest.Outcome.FAILED
    assert "a-code" not in response.content.decode()


# GitHub installation tokens: minted on demand, and kept per down-scoped request -------------


@pytest.fixture(scope="module")
def app_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture
def github(app_key: str) -> Iterator[GitHubFake]:
    public = (
        serialization.load_pem_private_key(app_key.encode(), password=None)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    fake = GitHubFake(
        app_id="123456",
        app_slug="acme-bot",
        public_key_pem=public,
        client_id="Iv1.far",
        client_secret="far-github-secret",
        redirect_uri=callback_url(),
    )
    fake.add_installation(
        "42", login="acme", repositories=["api", "web"], permissions={"contents": "write"}
    )
    with fake:
        yield fake
    assert fake.bugs == [], fake.bugs


@pytest.fixture
def make_github(
    project: Project,
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
    make_installation: Callable[..., Installation],
    app_key: str,
) -> Callable[[str], Connector]:
    def make(api_base_url: str) -> Connector:
        connector = make_connector(
            project.team,
            uid="github/far",
            type="github",
            client_id="Iv1.far",
            secrets={"client_secret": "far-github-secret", "private_key": app_key},
            config={"appId": "123456", "appSlug": "acme-bot", "apiBaseUrl": api_base_url},
            default_scopes={"app": [], "user": []},
        )
        make_link(connector, project, ["production"])
        make_installation(connector, tenant_id="42", is_default=True)
        return connector

    return make


@pytest.mark.parametrize("details", [DETAILS, None], ids=["down-scoped", "whole installation"])
@pytest.mark.parametrize("base", UNREACHABLE.values(), ids=UNREACHABLE.keys())
def test_minting_at_an_unreachable_api_is_provider_unavailable(
    api: Api, make_github: Callable[[str], Connector], base: str, details: Any
) -> None:
    make_github(base.removesuffix("/token"))
    body = {"authorizationDetails": details} if details else {}

    response = api.token("github/far", APP, **body)

    assert_provider_unavailable(response)


# An outage is logged once, with its cause, as a warning -----------------------------------------

CLOSED_PORT = "http://127.0.0.1:9"  # loopback is allowed outside production; nothing listens


def outage_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "connect.services.grants"]


def assert_logged_as_an_upstream_failure(
    caplog: pytest.LogCaptureFixture, cause: str, *secrets: str
) -> None:
    """One warning with the cause where the provider's error became the API's, Django's own
    line for the 502 a warning too, no ERROR anywhere, and no secret in any line."""
    [logged] = outage_records(caplog)
    assert logged.levelno == logging.WARNING
    assert "provider_unavailable" in logged.getMessage()
    assert cause in logged.getMessage(), logged.getMessage()
    [answered] = [r for r in caplog.records if r.name == "django.request"]
    assert answered.getMessage().startswith("Bad Gateway: /v1/connect/token/")
    assert answered.levelno == logging.WARNING
    assert answered.levelname == "WARNING"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    for record in caplog.records:
        for secret in secrets:
            assert secret not in record.getMessage()


def test_a_refresh_at_an_unreachable_provider_logs_its_cause_once_and_no_error(
    api: Api,
    make_oauth: Callable[[str], Connector],
    make_grant: Callable[..., Grant],
    caplog: pytest.LogCaptureFixture,
) -> None:
    connector = make_oauth(f"{CLOSED_PORT}/token")
    make_grant(
        connector.installations.get(),
        subject_type=Grant.SubjectType.USER,
        subject_id="u-1",
        issuer=api_issuer(connector),
        secrets={"access_token": "at-expired-Jw4", "refresh_token": "rt-Kq8Vz2"},
        access_expires_at=timezone.now() - timedelta(minutes=1),
    )

    with caplog.at_level(logging.INFO):
        response = api.token("oauth/far", USER)

    assert_provider_unavailable(response)
    assert_logged_as_an_upstream_failure(
        caplog,
        f"{CLOSED_PORT}/token unreachable: ConnectionError",
        "far-secret",
        "rt-Kq8Vz2",
        "at-expired-Jw4",
    )
    assert connector.public_id in outage_records(caplog)[0].getMessage()


@pytest.mark.parametrize("details", [DETAILS, None], ids=["down-scoped", "whole installation"])
def test_minting_at_an_unreachable_api_logs_its_cause_once_and_no_error(
    api: Api,
    make_github: Callable[[str], Connector],
    caplog: pytest.LogCaptureFixture,
    details: Any,
    app_key: str,
) -> None:
    make_github(CLOSED_PORT)
    body = {"authorizationDetails": details} if details else {}

    with caplog.at_level(logging.INFO):
        response = api.token("github/far", APP, **body)

    assert_provider_unavailable(response)
    assert_logged_as_an_upstream_failure(
        caplog,
        f"{CLOSED_PORT}/app/installations/42/access_tokens unreachable: ConnectionError",
        "far-github-secret",
        app_key.splitlines()[1],
    )


def test_only_an_upstreams_failure_is_lowered_to_a_warning() -> None:
    """Django's line for a 500 (ours to fix) stays an ERROR; a 502/503/504 becomes a warning."""
    from connect.log_levels import UpstreamFailureFilter

    def level(status: int) -> str:
        record = logging.LogRecord(
            "django.request", logging.ERROR, __file__, 1, "x: /v1", None, None
        )
        record.status_code = status
        assert UpstreamFailureFilter().filter(record)
        return record.levelname

    assert [level(s) for s in (500, 501, 502, 503, 504)] == [
        "ERROR", "ERROR", "WARNING", "WARNING", "WARNING"
    ]  # fmt: skip


OLD_KEY = crypto.generate_key()
NEW_KEY = crypto.generate_key()


def test_a_kept_token_no_configured_key_opens_is_minted_again(
    settings: Any, api: Api, github: GitHubFake, make_github: Callable[[str], Connector]
) -> None:
    settings.CONNECT_ENCRYPTION_KEYS = [OLD_KEY]
    connector = make_github(github.api_url)
    first = api.token("github/far", APP, authorizationDetails=DETAILS)
    assert first.status_code == 200, first.content
    # The connector's own secrets move to the new key; the kept token is left behind, as when
    # an old key is removed before a rotation reached everything.
    settings.CONNECT_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    for name in ("client_secret", "private_key"):
        connector.seal(name, connector.reveal(name))
    connector.save()
    settings.CONNECT_ENCRYPTION_KEYS = [NEW_KEY]

    second = api.token("github/far", APP, authorizationDetails=DETAILS)

    assert second.status_code == 200, second.content
    assert second.json()["token"] != first.json()["token"]
    assert len(github.token_requests) == 2
    third = api.token("github/far", APP, authorizationDetails=DETAILS)
    assert third.json()["token"] == second.json()["token"], "the new one is kept"
    assert len(github.token_requests) == 2


def test_key_rotation_re_encrypts_kept_tokens_before_saying_old_keys_can_go(
    settings: Any, api: Api, github: GitHubFake, make_github: Callable[[str], Connector]
) -> None:
    settings.CONNECT_ENCRYPTION_KEYS = [OLD_KEY]
    make_github(github.api_url)
    first = api.token("github/far", APP, authorizationDetails=DETAILS)
    assert first.status_code == 200, first.content
    settings.CONNECT_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]

    out = StringIO()
    call_command("rotate_encryption_keys", stdout=out)
    assert "older keys can be removed" in out.getvalue()
    assert "connect.MintedToken: 1" in out.getvalue()
    assert first.json()["token"] not in out.getvalue()
    settings.CONNECT_ENCRYPTION_KEYS = [NEW_KEY]

    again = api.token("github/far", APP, authorizationDetails=DETAILS)

    assert again.status_code == 200, again.content
    assert again.json()["token"] == first.json()["token"], "still kept, now under the new key"
    assert len(github.token_requests) == 1
