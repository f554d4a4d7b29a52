"""Every error code of SPEC section 3 this API can produce, with its status, over HTTP.

Each response is checked whole by ``assert_error``: the envelope and nothing else, JSON, a
request id, never a redirect.
"""

import json
import os
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.test import Client
from django.utils import timezone

from connect.api.authentication import TeamRateThrottle
from connect.models import (
    Connector,
    ConnectorType,
    DeploymentCredential,
    Grant,
    Installation,
    TokenIssue,
)
from connect.services.credentials import deployment_credentials_revoke
from tests.api.conftest import Tenant
from tests.api.wire import APP, assert_error, delete_json, post_json
from tests.clock import ManualClock

pytestmark = pytest.mark.django_db

UID = "api-key%2Fkey"  # how the SDKs send the tenant's uid `api-key/key`


def token_path(ref: str = UID) -> str:
    return f"/v1/connect/token/{ref}"


def metadata_path(ref: str = UID) -> str:
    return f"/v1/connect/connectors/{ref}"


def tokens_path(ref: str = UID) -> str:
    return f"/v1/connect/connectors/{ref}/tokens"


def every_endpoint(client: Client, tenant: Tenant, ref: str) -> list[Any]:
    """The token, metadata and revoke calls for one connector reference."""
    return [
        post_json(client, token_path(ref), APP, **tenant.auth),
        client.get(metadata_path(ref), **tenant.auth),
        delete_json(client, tokens_path(ref), APP, **tenant.auth),
    ]


# Success first: the references the errors below are compared against. -------------------------


def test_uid_percent_encoded_and_scl_id_both_work(
    client: Client, make_tenant: Callable[..., Tenant]
) -> None:
    tenant = make_tenant(api_key="the-key")
    for ref in (UID, tenant.connector.public_id):
        response = post_json(client, token_path(ref), APP, **tenant.auth)
        assert response.status_code == 200, response.content
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["X-Request-Id"]
        body = response.json()
        assert body["token"] == "the-key"
        assert body["tokenId"].startswith("stk_")
        assert isinstance(body["expiresAt"], int)
        assert body["expiresAt"] > time.time() * 1000
        assert body["connector"] == {
            "id": tenant.connector.public_id,
            "uid": "api-key/key",
            "type": "api-key",
            "name": tenant.connector.name,
            "service": "api-key",
        }

        metadata = client.get(metadata_path(ref), **tenant.auth)
        assert metadata.status_code == 200
        assert metadata.json()["id"] == tenant.connector.public_id
        assert "the-key" not in metadata.content.decode()

        revoked = delete_json(client, tokens_path(ref), APP, **tenant.auth)
        assert revoked.status_code == 200
        assert set(revoked.json()) == {
            "tokensFound",
            "deleted",
            "providerRevoked",
            "providerSkipped",
            "providerFailed",
        }


# not_found ----------------------------------------------------------------------------------


@pytest.mark.parametrize("ref", ["api-key%2Fnope", "nope%2Fkey", "scl_doesnotexist"])
def test_unknown_connector(client: Client, make_tenant: Callable[..., Tenant], ref: str) -> None:
    tenant = make_tenant()
    for response in every_endpoint(client, tenant, ref):
        assert_error(response, 404, "not_found")


def test_another_teams_connector_is_not_found(
    client: Client, make_tenant: Callable[..., Tenant]
) -> None:
    mine, theirs = make_tenant(), make_tenant(uid="api-key/theirs")
    for ref in (theirs.connector.public_id, "api-key%2Ftheirs"):
        for response in every_endpoint(client, mine, ref):
            error = assert_error(response, 404, "not_found")
            assert theirs.connector.public_id not in json.dumps(error)
    # The owner reaches it with the very same references.
    for ref in (theirs.connector.public_id, "api-key%2Ftheirs"):
        assert post_json(client, token_path(ref), APP, **theirs.auth).status_code == 200


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize(
    "path",
    [
        "/v1/",
        "/v1/nope",
        "/v1/connect/token",
        "/v1/connect/token/",
        f"/v1/connect/token/{UID}/",
        "/v1/connect/token/api-key/key/",
        "/v1/connect/token/a%2Fb%2Fc",
        "/v1/connect/token/Api-Key%2FKey",
        f"/v1/connect/connectors/{UID}/",
        f"/v1/connect/connectors/{UID}/tokens/",
        f"/v1/connect/token/{UID}/import/",
        "/.well-known/nope",
    ],
)
def test_unknown_paths_answer_the_envelope(
    client: Client, make_tenant: Callable[..., Tenant], settings: Any, path: str, debug: bool
) -> None:
    settings.DEBUG = debug
    tenant = make_tenant()
    for response in (
        client.get(path, **tenant.auth),
        post_json(client, path, APP, **tenant.auth),
        delete_json(client, path, APP),
    ):
        assert_error(response, 404, "not_found")


# Links ---------------------------------------------------------------------------------------


def test_client_not_linked_to_project(
    client: Client, make_tenant: Callable[..., Tenant], make_connector: Callable[..., Connector]
) -> None:
    tenant = make_tenant()
    unlinked = make_connector(tenant.team, uid="api-key/unlinked", secrets={"api_key": "k"})
    for ref in ("api-key%2Funlinked", unlinked.public_id):
        for response in every_endpoint(client, tenant, ref):
            assert_error(response, 403, "client_not_linked_to_project")
    assert not TokenIssue.objects.exists()


def test_client_not_enabled_for_environment(
    client: Client, make_tenant: Callable[..., Tenant], make_credential: Callable[..., str]
) -> None:
    tenant = make_tenant()  # linked for production only
    preview = Tenant(
        team=tenant.team,
        project=tenant.project,
        connector=tenant.connector,
        token=make_credential(tenant.project, "preview"),
    )
    for response in every_endpoint(client, preview, UID):
        assert_error(response, 403, "client_not_enabled_for_environment")
    assert post_json(client, token_path(), APP, **tenant.auth).status_code == 200


# Installations and grants --------------------------------------------------------------------


def test_connector_installation_required(
    client: Client,
    make_tenant: Callable[..., Tenant],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
    make_installation: Callable[..., Installation],
) -> None:
    tenant = make_tenant()
    slack = make_connector(tenant.team, uid="slack/bot", type=ConnectorType.SLACK)
    make_link(slack, tenant.project, ["production"])
    make_installation(slack, tenant_id="T1")
    make_installation(slack, tenant_id="T2")
    gone = make_installation(slack, tenant_id="T3")
    gone.status = Installation.Status.REVOKED
    gone.save()

    assert_error(
        post_json(client, token_path("slack%2Fbot"), APP, **tenant.auth),
        422,
        "connector_installation_required",
    )
    for installation_id in ("sci_doesnotexist", gone.public_id):
        assert_error(
            post_json(
                client,
                token_path("slack%2Fbot"),
                {**APP, "installationId": installation_id},
                **tenant.auth,
            ),
            422,
            "connector_installation_required",
        )
    assert_error(
        post_json(
            client, token_path(), {**APP, "installationId": "sci_doesnotexist"}, **tenant.auth
        ),
        422,
        "connector_installation_required",
    )


@pytest.mark.parametrize("installation_id", [None, "*"])
def test_user_authorization_required(
    client: Client,
    make_tenant: Callable[..., Tenant],
    make_oauth_connector: Callable[..., Connector],
    installation_id: str | None,
) -> None:
    tenant = make_tenant()
    make_oauth_connector(tenant)
    body: dict[str, Any] = {"subject": {"type": "user", "id": "42"}}
    if installation_id:
        body["installationId"] = installation_id
    assert_error(
        post_json(client, token_path("oauth%2Facme"), body, **tenant.auth),
        422,
        "user_authorization_required",
    )


def user_grant(
    make_grant: Callable[..., Grant], connector: Connector, tenant: Tenant, **kw: Any
) -> Grant:
    """User 42 of the tenant's project, with a cached access token valid for an hour."""
    return make_grant(
        connector.installations.get(),
        subject_type=Grant.SubjectType.USER,
        subject_id="42",
        issuer=tenant.project.public_id,
        secrets={"access_token": "user-42-token"},
        access_expires_at=timezone.now() + timedelta(hours=1),
        scopes=["read"],
        **kw,
    )


USER_42 = {"subject": {"type": "user", "id": "42"}}


@pytest.mark.parametrize("status", [Grant.Status.NEEDS_REAUTH, Grant.Status.REVOKED])
def test_no_token(
    client: Client,
    make_tenant: Callable[..., Tenant],
    make_oauth_connector: Callable[..., Connector],
    make_grant: Callable[..., Grant],
    status: str,
) -> None:
    tenant = make_tenant()
    grant = user_grant(make_grant, make_oauth_connector(tenant), tenant)
    ok = post_json(client, token_path("oauth%2Facme"), USER_42, **tenant.auth)
    assert ok.status_code == 200, ok.content
    assert ok.json()["token"] == "user-42-token"
    assert ok.json()["externalSubject"] == "42"

    Grant.objects.filter(pk=grant.pk).update(status=status)
    for body in (USER_42, {**USER_42, "installationId": "*"}):
        error = assert_error(
            post_json(client, token_path("oauth%2Facme"), body, **tenant.auth), 422, "no_token"
        )
        assert "user-42-token" not in error["message"]


def test_invalid_scope(
    client: Client,
    make_tenant: Callable[..., Tenant],
    make_oauth_connector: Callable[..., Connector],
    make_grant: Callable[..., Grant],
) -> None:
    tenant = make_tenant()
    user_grant(make_grant, make_oauth_connector(tenant), tenant)
    path = token_path("oauth%2Facme")
    for scopes in (["read", "write"], ["write"], "admin"):
        assert_error(
            post_json(client, path, {**USER_42, "scopes": scopes}, **tenant.auth),
            400,
            "invalid_scope",
        )
    for scopes in (["read"], ["*"], None):
        body = USER_42 if scopes is None else {**USER_42, "scopes": scopes}
        response = post_json(client, path, body, **tenant.auth)
        assert response.status_code == 200, (scopes, response.content)
        assert response.json()["token"] == "user-42-token"


# Bad requests --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "{",
        '{"subject": {"type": "app"},}',
        "",
        "[]",
        '"app"',
        {},
        {"scopes": ["read"]},
        {"subject": None},
        {"subject": "app"},
        {"subject": {}},
        {"subject": {"type": "user"}},
        {"subject": {"type": "user", "id": ""}},
        {"subject": {"type": "robot"}},
        {"subject": {"type": "app"}, "authorizationDetails": {"type": "custom"}},
        {"subject": {"type": "app"}, "authorizationDetails": "custom"},
        {"subject": {"type": "app"}, "authorizationDetails": ["custom"]},
        {"subject": {"type": "app"}, "scopes": [{"a": 1}]},
        {"subject": {"type": "app"}, "installationId": {"id": "sci_x"}},
    ],
)
def test_invalid_request(
    client: Client, make_tenant: Callable[..., Tenant], body: str | dict[str, Any]
) -> None:
    tenant = make_tenant()
    assert_error(post_json(client, token_path(), body, **tenant.auth), 400, "invalid_request")
    assert not TokenIssue.objects.exists()


@pytest.mark.parametrize(
    "body", ["{", {"subject": {"type": "user"}}, {"subject": {"type": "robot"}}, {"subject": 1}]
)
def test_invalid_revoke_request(
    client: Client, make_tenant: Callable[..., Tenant], body: str | dict[str, Any]
) -> None:
    tenant = make_tenant()
    assert_error(delete_json(client, tokens_path(), body, **tenant.auth), 400, "invalid_request")


# Callers -------------------------------------------------------------------------------------


def test_unauthorized(client: Client, make_tenant: Callable[..., Tenant]) -> None:
    tenant = make_tenant()
    prefix = tenant.token.split("_")[1]
    wrong_secret = tenant.token[:-1] + ("A" if tenant.token[-1] != "A" else "B")
    headers = [
        None,
        "",
        f"Basic {tenant.token}",
        f"Token {tenant.token}",
        "Bearer",
        "Bearer ",
        "Bearer cdc_unknownprefix_secret",
        f"Bearer cdc_{prefix}",
        f"Bearer {wrong_secret}",
        "Bearer not-a-jwt",
        "Bearer a.b.c",
        "Bearer eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.",
    ]
    for header in headers:
        extra = {} if header is None else {"HTTP_AUTHORIZATION": header}
        for response in (
            post_json(client, token_path(), APP, **extra),
            client.get(metadata_path(), **extra),
            delete_json(client, tokens_path(), APP, **extra),
        ):
            error = assert_error(response, 401, "unauthorized")
            assert response.headers["WWW-Authenticate"] == 'Bearer realm="connect"'
            # Which check refused a token is logged, never told to the caller.
            assert "algorithm" not in error["message"]
    assert not TokenIssue.objects.exists()


def test_invalid_request_names_the_field(
    client: Client, make_tenant: Callable[..., Tenant]
) -> None:
    tenant = make_tenant()
    error = assert_error(
        post_json(client, token_path(), {"subject": {}}, **tenant.auth), 400, "invalid_request"
    )
    assert error["message"] == "subject.type: This field is required."


def test_an_api_key_connector_has_no_user_subject(
    client: Client, make_tenant: Callable[..., Tenant]
) -> None:
    tenant = make_tenant()
    body = {"subject": {"type": "user", "id": "42"}}
    error = assert_error(
        post_json(client, token_path(), body, **tenant.auth), 400, "invalid_request"
    )
    assert "app subject" in error["message"]


def test_revoked_credential_is_unauthorized(
    client: Client, make_tenant: Callable[..., Tenant]
) -> None:
    tenant = make_tenant()
    assert post_json(client, token_path(), APP, **tenant.auth).status_code == 200
    deployment_credentials_revoke(
        credentials=DeploymentCredential.objects.filter(project=tenant.project), actor="test"
    )
    for response in every_endpoint(client, tenant, UID):
        assert_error(response, 401, "unauthorized")


@pytest.mark.parametrize("body", [None, "", "{}", {"subject": None}, {"installationId": "*"}])
def test_runtime_caller_cannot_revoke_every_subject(
    client: Client,
    make_tenant: Callable[..., Tenant],
    make_oauth_connector: Callable[..., Connector],
    make_grant: Callable[..., Grant],
    body: Any,
) -> None:
    tenant = make_tenant()
    grant = user_grant(make_grant, make_oauth_connector(tenant), tenant)
    response = delete_json(client, tokens_path("oauth%2Facme"), body, **tenant.auth)
    assert_error(response, 403, "forbidden")
    grant.refresh_from_db()
    assert grant.status == Grant.Status.ACTIVE
    assert grant.reveal("access_token") == "user-42-token"


# Rate limits ---------------------------------------------------------------------------------


def hit_the_limits(
    client: Client,
    make_tenant: Callable[..., Tenant],
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Tenant, ManualClock]:
    settings.CONNECT_RATE_LIMIT_READS = 3
    settings.CONNECT_RATE_LIMIT_WRITES = 2
    tenant, neighbour = make_tenant(), make_tenant()
    # Counters use fixed one-minute windows: the whole test happens a second into one.
    clock = ManualClock(time.time() // 60 * 60 + 1)
    monkeypatch.setattr(TeamRateThrottle, "timer", clock)

    # Reads: token requests and metadata share the team's read budget.
    assert post_json(client, token_path(), APP, **tenant.auth).status_code == 200
    assert client.get(metadata_path(), **tenant.auth).status_code == 200
    assert post_json(client, token_path(), APP, **tenant.auth).status_code == 200
    for response in (
        post_json(client, token_path(), APP, **tenant.auth),
        client.get(metadata_path(), **tenant.auth),
    ):
        assert_error(response, 429, "rate_limited")
        assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert TokenIssue.objects.filter(project=tenant.project).count() == 2

    # Writes have their own budget; another team has its own too.
    assert delete_json(client, tokens_path(), APP, **tenant.auth).status_code == 200
    assert delete_json(client, tokens_path(), APP, **tenant.auth).status_code == 200
    response = delete_json(client, tokens_path(), APP, **tenant.auth)
    assert_error(response, 429, "rate_limited")
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert post_json(client, token_path(), APP, **neighbour.auth).status_code == 200
    return tenant, clock


def test_rate_limited(
    client: Client,
    make_tenant: Callable[..., Tenant],
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.REDIS_URL = ""  # the Django cache counts
    tenant, clock = hit_the_limits(client, make_tenant, settings, monkeypatch)

    # The next minute has a budget of its own.
    clock.advance(60)
    assert post_json(client, token_path(), APP, **tenant.auth).status_code == 200


@pytest.mark.redis
def test_rate_limited_in_redis(
    client: Client,
    make_tenant: Callable[..., Tenant],
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.REDIS_URL = os.environ["REDIS_URL"]
    tenant, _ = hit_the_limits(client, make_tenant, settings, monkeypatch)
    # The counters live in Redis, where every process sees them.
    keys = redis.Redis.from_url(settings.REDIS_URL).keys(
        f"{settings.CONNECT_RATE_LIMIT_PREFIX}:team:{tenant.team.pk}:*"
    )
    assert len(keys) == 2  # the read and the write bucket of this minute


# HTTP level ----------------------------------------------------------------------------------


def test_method_not_allowed(client: Client, make_tenant: Callable[..., Tenant]) -> None:
    tenant = make_tenant()
    cases = [
        ("get", token_path(), "POST"),
        ("put", token_path(), "POST"),
        ("delete", token_path(), "POST"),
        ("post", metadata_path(), "GET"),
        ("patch", metadata_path(), "GET"),
        ("get", tokens_path(), "DELETE"),
        ("post", tokens_path(), "DELETE"),
        ("get", f"{token_path()}/import", "POST"),
    ]
    for method, path, allowed in cases:
        response = getattr(client, method)(path, **tenant.auth)
        assert_error(response, 405, "method_not_allowed")
        assert allowed in response.headers["Allow"].split(", ")
        assert method.upper() not in response.headers["Allow"].split(", ")


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_unsupported_media_type(
    client: Client, make_tenant: Callable[..., Tenant], content_type: str
) -> None:
    tenant = make_tenant()
    for method, path in (("post", token_path()), ("delete", tokens_path())):
        response = getattr(client, method)(
            path, data='{"subject": {"type": "app"}}', content_type=content_type, **tenant.auth
        )
        assert_error(response, 415, "unsupported_media_type")


def test_payload_too_large(
    client: Client, make_tenant: Callable[..., Tenant], settings: Any
) -> None:
    tenant = make_tenant()
    body = {**APP, "padding": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)}
    assert_error(post_json(client, token_path(), body, **tenant.auth), 413, "payload_too_large")
    assert not TokenIssue.objects.exists()


@pytest.mark.parametrize("debug", [False, True])
def test_internal_error_is_the_envelope_and_leaks_nothing(
    client: Client, make_tenant: Callable[..., Tenant], settings: Any, debug: bool
) -> None:
    settings.DEBUG = debug
    tenant = make_tenant(api_key="the-key")
    sealed = tenant.connector.api_key_sealed
    middle = len(sealed) // 2
    tampered = sealed[:middle] + ("A" if sealed[middle] != "A" else "B") + sealed[middle + 1 :]
    Connector.objects.filter(pk=tenant.connector.pk).update(api_key_sealed=tampered)

    response = post_json(client, token_path(), APP, **tenant.auth)
    error = assert_error(response, 500, "internal_error")
    text = response.content.decode()
    for leak in (tampered, sealed[:20], "api_key", "Decrypt", "Traceback", "binding"):
        assert leak not in text
    assert error["message"] == "Something went wrong."
    assert not TokenIssue.objects.exists()
    # The rest of the API keeps working.
    Connector.objects.filter(pk=tenant.connector.pk).update(api_key_sealed=sealed)
    assert post_json(client, token_path(), APP, **tenant.auth).json()["token"] == "the-key"


def test_request_id_is_fresh_unless_the_client_sends_one(
    client: Client, make_tenant: Callable[..., Tenant]
) -> None:
    tenant = make_tenant()
    ids = {
        post_json(client, token_path(), APP, **tenant.auth).headers["X-Request-Id"] for _ in "ab"
    }
    assert len(ids) == 2
    echoed = post_json(client, token_path(), APP, HTTP_X_REQUEST_ID="req-123", **tenant.auth)
    assert echoed.headers["X-Request-Id"] == "req-123"
