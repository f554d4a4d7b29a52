"""The operator's commands for callers: deployment credentials, OIDC tokens, key rotation."""

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from typing import Any

import jwt
import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from connect import oidc
from connect.models import DeploymentCredential, SigningKey
from tests.api.conftest import Tenant
from tests.api.wire import APP, assert_error, post_json

pytestmark = pytest.mark.django_db

TOKEN = "/v1/connect/token/api-key%2Fkey"
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def scope(tenant: Tenant, environment: str = "production") -> list[str]:
    return [
        "--team",
        tenant.team.slug,
        "--project",
        tenant.project.slug,
        "--environment",
        environment,
    ]


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


# deployment_credential ------------------------------------------------------------------------


def test_create_prints_the_secret_alone_on_the_last_line(
    client: Client,
    make_tenant: Callable[..., Tenant],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    tenant = make_tenant(api_key="the-key")
    caplog.set_level(logging.DEBUG)
    out, err = run("deployment_credential", "create", *scope(tenant), "--name", "ci")

    lines = out.splitlines()
    token = lines[-1]
    assert token.startswith("cdc_")
    assert token == token.strip()
    _, prefix, secret = token.split("_")
    assert len(secret) >= 20
    assert out.count(secret) == 1  # nowhere else on stdout
    captured = capsys.readouterr()
    for elsewhere in (err, captured.out, captured.err, caplog.text):
        assert secret not in elsewhere

    credential = DeploymentCredential.objects.get(prefix=prefix)
    assert credential.name == "ci"
    assert credential.environment.slug == "production"
    assert secret not in str(credential)
    assert secret not in repr(vars(credential))
    response = post_json(client, TOKEN, APP, **bearer(token))
    assert response.status_code == 200
    assert response.json()["token"] == "the-key"


def test_create_refuses_unknown_project_and_environment(
    make_tenant: Callable[..., Tenant],
) -> None:
    tenant = make_tenant()
    existing = DeploymentCredential.objects.count()
    with pytest.raises(CommandError, match="environment"):
        run("deployment_credential", "create", *scope(tenant, "staging"))
    with pytest.raises(CommandError, match="project"):
        run(
            "deployment_credential",
            "create",
            "--team",
            tenant.team.slug,
            "--project",
            "nope",
            "--environment",
            "production",
        )
    assert DeploymentCredential.objects.count() == existing


def test_list_never_prints_secrets(make_tenant: Callable[..., Tenant]) -> None:
    tenant = make_tenant()  # holds one credential already
    second = run("deployment_credential", "create", *scope(tenant, "preview"))[0].splitlines()[-1]
    run("deployment_credential", "revoke", second.split("_")[1])

    out, _ = run(
        "deployment_credential",
        "list",
        "--team",
        tenant.team.slug,
        "--project",
        tenant.project.slug,
    )
    lines = out.splitlines()
    assert len(lines) == 2
    for token in (tenant.token, second):
        _, prefix, secret = token.split("_")
        assert secret not in out
        assert DeploymentCredential.objects.get(prefix=prefix).secret_sha256 not in out
        assert sum(prefix in line for line in lines) == 1
    states = {line.split("\t")[0]: line.split("\t")[2] for line in lines}
    assert states == {tenant.token.split("_")[1]: "active", second.split("_")[1]: "revoked"}


def test_revoke_makes_the_credential_unauthorized(
    client: Client, make_tenant: Callable[..., Tenant], make_credential: Callable[..., str]
) -> None:
    tenant = make_tenant()
    other = make_credential(tenant.project)
    assert post_json(client, TOKEN, APP, **tenant.auth).status_code == 200

    out, _ = run("deployment_credential", "revoke", tenant.token.split("_")[1])
    assert tenant.token.split("_")[2] not in out
    for response in (
        post_json(client, TOKEN, APP, **tenant.auth),
        client.get("/v1/connect/connectors/api-key%2Fkey", **tenant.auth),
    ):
        assert_error(response, 401, "unauthorized")
    # Only that one.
    assert post_json(client, TOKEN, APP, **bearer(other)).status_code == 200
    with pytest.raises(CommandError):
        run("deployment_credential", "revoke", "nosuchprefix")


# oidc_token -----------------------------------------------------------------------------------


def verified(client: Client, token: str, settings: Any) -> dict[str, Any]:
    """PyJWT against the published JWKS, as any receiver of our tokens checks them."""
    jwks = client.get("/.well-known/jwks.json").json()
    for key in jwks["keys"]:
        assert not PRIVATE_JWK_MEMBERS & set(key), "the JWKS must hold public keys only"
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWKSet.from_dict(jwks)[kid]
    claims: dict[str, Any] = jwt.decode(
        token, key, algorithms=["RS256"], audience=settings.PUBLIC_URL, issuer=settings.PUBLIC_URL
    )
    return claims


def published_kids(client: Client) -> set[str]:
    return {key["kid"] for key in client.get("/.well-known/jwks.json").json()["keys"]}


def test_oidc_token_verifies_against_the_jwks(
    client: Client, make_tenant: Callable[..., Tenant], settings: Any
) -> None:
    settings.PUBLIC_URL = "https://connect.example.com"
    tenant = make_tenant(api_key="the-key")
    before = int(time.time())
    out, _ = run("oidc_token", *scope(tenant), "--ttl", "600")
    token = out.splitlines()[-1]

    discovery = client.get("/.well-known/openid-configuration").json()
    assert discovery["issuer"] == settings.PUBLIC_URL
    assert discovery["jwks_uri"] == f"{settings.PUBLIC_URL}/.well-known/jwks.json"
    claims = verified(client, token, settings)
    assert claims["aud"] == settings.PUBLIC_URL
    assert claims["project_id"] == tenant.project.public_id
    assert claims["owner_id"] == tenant.team.public_id
    assert claims["environment"] == "production"
    assert claims["exp"] - claims["iat"] == 600
    assert before <= claims["iat"] <= int(time.time())
    assert jwt.get_unverified_header(token)["alg"] == "RS256"

    response = post_json(client, TOKEN, APP, **bearer(token))
    assert response.status_code == 200
    assert response.json()["token"] == "the-key"


def test_oidc_token_for_another_audience_is_refused(
    client: Client, make_tenant: Callable[..., Tenant], settings: Any
) -> None:
    tenant = make_tenant()
    out, _ = run("oidc_token", *scope(tenant))
    token = out.splitlines()[-1]
    assert post_json(client, TOKEN, APP, **bearer(token)).status_code == 200
    # The server moved: tokens minted for the old URL name the wrong issuer and audience.
    settings.PUBLIC_URL = "https://elsewhere.example.com"
    assert_error(post_json(client, TOKEN, APP, **bearer(token)), 401, "unauthorized")


def test_oidc_token_refuses_bad_arguments(make_tenant: Callable[..., Tenant]) -> None:
    tenant = make_tenant()
    with pytest.raises(CommandError):
        run("oidc_token", *scope(tenant, "staging"))
    for ttl in ("0", "86401"):
        with pytest.raises(CommandError):
            run("oidc_token", *scope(tenant), "--ttl", ttl)


# rotate_oidc_keys -----------------------------------------------------------------------------


def mint(tenant: Tenant) -> str:
    return run("oidc_token", *scope(tenant))[0].splitlines()[-1]


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def test_rotation_keeps_old_tokens_working_for_the_overlap_only(
    client: Client, make_tenant: Callable[..., Tenant], settings: Any
) -> None:
    """The web process must stop trusting a key it loaded earlier, at the moment its overlap
    ends, without being told: asked as of that moment, it refuses the key it holds."""
    tenant = make_tenant()
    old = mint(tenant)
    assert post_json(client, TOKEN, APP, **bearer(old)).status_code == 200

    run("rotate_oidc_keys", "--overlap", "3")
    retires_at = SigningKey.objects.get(kid=kid_of(old)).retires_at
    assert retires_at is not None
    new = mint(tenant)
    assert kid_of(new) != kid_of(old)
    assert published_kids(client) == {kid_of(old), kid_of(new)}
    for token in (old, new, old):
        assert post_json(client, TOKEN, APP, **bearer(token)).status_code == 200
        verified(client, token, settings)

    # This process holds the old key, valid up to the moment it retires ...
    assert oidc.own_keys.get(kid_of(old), now=retires_at - timedelta(microseconds=1))
    # ... and from that moment neither publishes nor trusts it; the new key goes on.
    assert {key["kid"] for key in oidc.jwks(now=retires_at)["keys"]} == {kid_of(new)}
    with pytest.raises(oidc.TokenRejected):
        oidc.own_token_claims(old, kid_of(old), now=retires_at)
    assert oidc.own_token_claims(new, kid_of(new), now=retires_at)["sub"]
    assert kid_of(mint(tenant)) == kid_of(new)


def test_rotation_with_a_long_overlap_then_retiring_the_key(
    client: Client, make_tenant: Callable[..., Tenant]
) -> None:
    tenant = make_tenant()
    old = mint(tenant)
    out, _ = run("rotate_oidc_keys", "--overlap", "3600")
    new = mint(tenant)
    assert kid_of(new) in out
    old_key = SigningKey.objects.get(kid=kid_of(old))
    assert old_key.retires_at is not None
    assert timedelta(minutes=59) < old_key.retires_at - timezone.now() <= timedelta(hours=1)
    assert published_kids(client) == {kid_of(old), kid_of(new)}
    for token in (old, new):
        assert post_json(client, TOKEN, APP, **bearer(token)).status_code == 200

    # The overlap ends (here: the operator ends it early).
    SigningKey.objects.filter(pk=old_key.pk).update(
        retires_at=timezone.now() - timedelta(seconds=1)
    )
    assert published_kids(client) == {kid_of(new)}
    oidc.own_keys.clear()  # as a web process (re)loading its keys now
    assert_error(post_json(client, TOKEN, APP, **bearer(old)), 401, "unauthorized")
    assert post_json(client, TOKEN, APP, **bearer(new)).status_code == 200

    # A second rotation retires the second key the same way; the newest always signs.
    run("rotate_oidc_keys", "--overlap", "60")
    newest = mint(tenant)
    assert published_kids(client) == {kid_of(new), kid_of(newest)}
    assert post_json(client, TOKEN, APP, **bearer(newest)).status_code == 200
    assert post_json(client, TOKEN, APP, **bearer(new)).status_code == 200
