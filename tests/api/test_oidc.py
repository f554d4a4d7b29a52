"""OIDC callers: the app's own issuer and a trusted external one, accepted only when valid.

The external issuer is a real JWKS server on loopback with an RSA and an EC key; every way a
token can be wrong is refused with 401 ``unauthorized``, the JWKS is fetched once and cached,
an unknown ``kid`` refetches at most once a minute, and the SSRF guard keeps JWKS fetches off
private addresses (and off loopback when ``CONNECT_ALLOW_LOOPBACK`` is off).
"""

import base64
import hashlib
import hmac
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings as django_settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.test import Client

from connect import oidc
from connect.models import Connector, Project, Team, TokenIssue, TrustedIssuer, TrustedIssuerRule
from tests.api.wire import assert_error
from tests.fakes.workload_issuer import WorkloadIssuerFake

ISSUER = "https://token.ci.example.test"
AUDIENCE = "https://connect.example.test/ci"
REPOSITORY = "acme/app"


@pytest.fixture(autouse=True)
def _own_keys_of_this_database() -> None:
    # Signing keys live in the (rolled back) test database; drop the previous test's.
    oidc.own_keys.clear()


@dataclass
class Tenant:
    team: Team
    project: Project
    connector: Connector
    client: Client

    def token_request(self, bearer: str) -> Any:
        return self.client.post(
            f"/v1/connect/token/{self.connector.uid}",
            data={"subject": {"type": "app"}},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {bearer}",
        )


@pytest.fixture
def tenant(
    client: Client,
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
) -> Tenant:
    """A project whose ``api-key/key`` connector is linked for ``preview`` only."""
    team = make_team()
    project = make_project(team, environments=("production", "preview"))
    connector = make_connector(
        team, uid="api-key/key", secrets={"api_key": "the-key"}, default_scopes={"app": []}
    )
    make_link(connector, project, ["preview"])
    return Tenant(team=team, project=project, connector=connector, client=client)


def trust(
    tenant: Tenant,
    jwks_url: str,
    *,
    environment: str = "preview",
    required_claims: dict[str, Any] | None = None,
    audience: str = AUDIENCE,
) -> TrustedIssuerRule:
    issuer = TrustedIssuer.objects.filter(
        team=tenant.team, issuer=ISSUER, audience=audience
    ).first()
    if issuer is None:
        issuer = TrustedIssuer(
            team=tenant.team, issuer=ISSUER, jwks_url=jwks_url, audience=audience
        )
        issuer.full_clean()
        issuer.save()
    rule = TrustedIssuerRule(
        trusted_issuer=issuer,
        required_claims={"repository": REPOSITORY} if required_claims is None else required_claims,
        project=tenant.project,
        environment=tenant.project.environments.get(slug=environment),
    )
    rule.full_clean()
    rule.save()
    return rule


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def compact(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join(
        (b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), b64(signature))
    )


def hs256(secret: bytes, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """HMAC-signed with whatever bytes the verifier might mistake for a shared secret."""
    signing_input = ".".join(
        (b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()))
    ).encode()
    return (
        f"{signing_input.decode()}.{b64(hmac.new(secret, signing_input, hashlib.sha256).digest())}"
    )


def tamper(token: str, **changes: Any) -> str:
    """Change claims and keep the original signature."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return ".".join((header, b64(json.dumps({**claims, **changes}).encode()), signature))


def public_pem(private: rsa.RSAPrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def assert_issued_to(response: Any, tenant: Tenant, environment: str) -> None:
    assert response.status_code == 200, response.content
    assert response.json()["token"] == "the-key"
    issue = TokenIssue.objects.get(public_id=response.json()["tokenId"])
    assert (issue.project_id, issue.environment) == (tenant.project.pk, environment)


# The app's own issuer ----------------------------------------------------------------------


def own_token(tenant: Tenant, environment: str = "preview") -> str:
    out = io.StringIO()
    call_command(
        "oidc_token",
        "--team",
        tenant.team.slug,
        "--project",
        tenant.project.slug,
        "--environment",
        environment,
        "--ttl",
        "300",
        stdout=out,
    )
    return out.getvalue().strip().splitlines()[-1]


def own_claims(tenant: Tenant, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": django_settings.PUBLIC_URL,
        "aud": django_settings.PUBLIC_URL,
        "sub": "owner:x:project:y:environment:preview",
        "owner_id": tenant.team.public_id,
        "project_id": tenant.project.public_id,
        "environment": "preview",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        **changes,
    }


def own_signed(claims: dict[str, Any], *, kid: str | None = None) -> str:
    key = oidc.current_signing_key()
    return jwt.encode(
        claims, key.reveal("private_key"), algorithm="RS256", headers={"kid": kid or key.kid}
    )


def test_own_issuer_token_from_the_command_is_accepted(tenant: Tenant) -> None:
    token = own_token(tenant)

    assert_issued_to(tenant.token_request(token), tenant, "preview")

    # The same token verifies for anyone reading our discovery document and JWKS.
    discovery = tenant.client.get("/.well-known/openid-configuration").json()
    assert discovery["issuer"] == django_settings.PUBLIC_URL
    assert discovery["jwks_uri"] == f"{django_settings.PUBLIC_URL}/.well-known/jwks.json"
    published = tenant.client.get("/.well-known/jwks.json").json()["keys"]
    kid = jwt.get_unverified_header(token)["kid"]
    (jwk,) = [k for k in published if k["kid"] == kid]
    assert "d" not in jwk, "only the public half is published"
    claims = jwt.decode(
        token, jwt.PyJWK(jwk), algorithms=["RS256"], audience=django_settings.PUBLIC_URL
    )
    assert claims["project_id"] == tenant.project.public_id
    assert claims["environment"] == "preview"
    assert claims["owner_id"] == tenant.team.public_id
    assert 290 <= claims["exp"] - time.time() <= 300


def test_own_issuer_maps_to_the_environment_in_the_token(tenant: Tenant) -> None:
    """The link allows preview only: the same project's production token is not let through."""
    error = assert_error(
        tenant.token_request(own_token(tenant, "production")),
        403,
        "client_not_enabled_for_environment",
    )
    assert "production" in error["message"]


def test_tokens_of_a_rotated_out_key_verify_during_the_overlap(tenant: Tenant) -> None:
    before = own_token(tenant)
    call_command("rotate_oidc_keys", "--overlap", "600", stdout=io.StringIO())
    after = own_token(tenant)

    assert jwt.get_unverified_header(before)["kid"] != jwt.get_unverified_header(after)["kid"]
    assert_issued_to(tenant.token_request(after), tenant, "preview")
    assert_issued_to(tenant.token_request(before), tenant, "preview")


OWN_REFUSALS: dict[str, Callable[[Tenant], str]] = {
    "expired": lambda t: own_signed(
        own_claims(t, iat=int(time.time()) - 3600, nbf=int(time.time()) - 3600,
                   exp=int(time.time()) - 120)
    ),
    "not-yet-valid": lambda t: own_signed(own_claims(t, nbf=int(time.time()) + 600)),
    "wrong-audience": lambda t: own_signed(own_claims(t, aud="https://elsewhere.example")),
    "wrong-issuer": lambda t: own_signed(own_claims(t, iss="https://not-us.example")),
    "no-expiry": lambda t: own_signed(
        {k: v for k, v in own_claims(t).items() if k != "exp"}
    ),
    "unknown-kid": lambda t: own_signed(own_claims(t), kid="no-such-key"),
    "tampered": lambda t: tamper(own_signed(own_claims(t)), environment="production"),
    "alg-none": lambda t: compact(
        {"alg": "none", "typ": "JWT", "kid": oidc.current_signing_key().kid}, own_claims(t)
    ),
    "hs256-with-public-key": lambda t: hs256(
        serialization.load_pem_private_key(
            oidc.current_signing_key().reveal("private_key").encode(), password=None
        ).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        {"alg": "HS256", "typ": "JWT", "kid": oidc.current_signing_key().kid},
        own_claims(t),
    ),
    "not-a-jwt": lambda t: "not.a.jwt",
}  # fmt: skip


@pytest.mark.parametrize("case", OWN_REFUSALS)
def test_own_issuer_refuses(case: str, tenant: Tenant) -> None:
    # A valid token works, so each refusal is about what the case changed.
    assert_issued_to(tenant.token_request(own_signed(own_claims(tenant))), tenant, "preview")

    response = tenant.token_request(OWN_REFUSALS[case](tenant))

    assert_error(response, 401, "unauthorized")
    assert TokenIssue.objects.count() == 1


@pytest.mark.parametrize(
    "changes",
    [
        # aud only
        {"aud": "http://127.0.0.1:8123"},
        # oidc_token run under another PUBLIC_URL
        {"aud": "http://127.0.0.1:8123", "iss": "http://127.0.0.1:8123"},
    ],
)
def test_our_own_token_for_another_origin_says_wrong_audience(
    changes: dict[str, str], tenant: Tenant
) -> None:
    """A token we signed ourselves for another PUBLIC_URL (the README's most common slip: the
    server on another port) is told apart; only our own key could have signed it."""
    error = assert_error(
        tenant.token_request(own_signed(own_claims(tenant, **changes))), 401, "unauthorized"
    )
    assert "wrong audience" in error["message"]
    assert "http://127.0.0.1:8123" in error["message"]
    assert django_settings.PUBLIC_URL in error["message"]


def test_a_forged_token_for_another_origin_learns_nothing(tenant: Tenant) -> None:
    """Signed with a key that is not ours but naming our kid: the generic refusal."""
    other = serialization.load_pem_private_key(oidc.rsa_private_key_pem().encode(), password=None)
    forged = jwt.encode(
        own_claims(tenant, aud="http://127.0.0.1:8123", iss="http://127.0.0.1:8123"),
        other,  # type: ignore[arg-type]
        algorithm="RS256",
        headers={"kid": oidc.current_signing_key().kid},
    )
    error = assert_error(tenant.token_request(forged), 401, "unauthorized")
    assert error["message"] == "The bearer token was refused."


# A trusted external issuer --------------------------------------------------------------------


def ci_claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": f"repo:{REPOSITORY}:ref:refs/heads/main",
        "repository": REPOSITORY,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        **changes,
    }


def rs256(server: WorkloadIssuerFake, claims: dict[str, Any], kid: str = "rsa-1") -> str:
    return jwt.encode(claims, server.rsa, algorithm="RS256", headers={"kid": kid})


def es256(server: WorkloadIssuerFake, claims: dict[str, Any], kid: str = "ec-1") -> str:
    return jwt.encode(claims, server.ec, algorithm="ES256", headers={"kid": kid})


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_trusted_issuer_token_is_accepted_and_mapped(
    alg: str, tenant: Tenant, jwks_server: WorkloadIssuerFake
) -> None:
    trust(tenant, jwks_server.jwks_url)
    sign = rs256 if alg == "RS256" else es256

    assert_issued_to(tenant.token_request(sign(jwks_server, ci_claims())), tenant, "preview")


def test_trusted_issuer_mapping_decides_the_environment(
    tenant: Tenant, jwks_server: WorkloadIssuerFake
) -> None:
    trust(tenant, jwks_server.jwks_url, environment="production")

    assert_error(
        tenant.token_request(rs256(jwks_server, ci_claims())),
        403,
        "client_not_enabled_for_environment",
    )


def test_a_rule_of_another_team_does_not_map_into_this_one(
    tenant: Tenant,
    jwks_server: WorkloadIssuerFake,
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
) -> None:
    """Team B trusts the issuer for its own project; the token acts there, never in team A."""
    other_team = make_team()
    other_project = make_project(other_team, environments=("preview",))
    issuer = TrustedIssuer.objects.create(
        team=other_team, issuer=ISSUER, jwks_url=jwks_server.jwks_url, audience=AUDIENCE
    )
    TrustedIssuerRule.objects.create(
        trusted_issuer=issuer,
        required_claims={"repository": REPOSITORY},
        project=other_project,
        environment=other_project.environments.get(),
    )
    assert issuer.team_id != tenant.team.pk

    # Team A's connector is not team B's: the caller resolves to team B, which has none.
    assert_error(tenant.token_request(rs256(jwks_server, ci_claims())), 404, "not_found")


def test_another_team_cannot_trust_the_issuer_for_this_teams_audience(
    tenant: Tenant,
    jwks_server: WorkloadIssuerFake,
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
) -> None:
    """Team B would write a rule for team A's workload: the (issuer, audience) pair is A's, so
    B cannot trust it at all, and A's callers keep working."""
    trust(tenant, jwks_server.jwks_url)
    token = rs256(jwks_server, ci_claims())
    assert_issued_to(tenant.token_request(token), tenant, "preview")
    other_team = make_team()

    with pytest.raises(ValidationError) as refused:
        TrustedIssuer(
            team=other_team, issuer=ISSUER, jwks_url=jwks_server.jwks_url, audience=AUDIENCE
        ).full_clean()
    assert "already trusted for this audience" in str(refused.value)
    with pytest.raises(IntegrityError), transaction.atomic():
        TrustedIssuer.objects.create(
            team=other_team, issuer=ISSUER, jwks_url=jwks_server.jwks_url, audience=AUDIENCE
        )

    assert_issued_to(tenant.token_request(token), tenant, "preview")


def test_a_rule_must_name_a_claim(tenant: Tenant, jwks_server: WorkloadIssuerFake) -> None:
    """Anyone can get a GitHub Actions token with any audience: a rule without a claim that
    names the workload would trust every repository on GitHub."""
    with pytest.raises(ValidationError) as refused:
        trust(tenant, jwks_server.jwks_url, required_claims={})
    assert "required_claims" in refused.value.message_dict
    with pytest.raises(ValidationError):
        trust(tenant, jwks_server.jwks_url, required_claims={"repository": ["a", "b"]})


def _rsa_jwk_as_secret(server: WorkloadIssuerFake) -> bytes:
    return json.dumps(server.keys[0]).encode()


CI_REFUSALS: dict[str, Callable[[WorkloadIssuerFake], str]] = {
    "expired": lambda s: rs256(s, ci_claims(iat=int(time.time()) - 3600,
                                            exp=int(time.time()) - 120)),
    "not-yet-valid": lambda s: rs256(s, ci_claims(nbf=int(time.time()) + 600)),
    "wrong-audience": lambda s: rs256(s, ci_claims(aud="https://someone-else.example")),
    "wrong-issuer": lambda s: rs256(s, ci_claims(iss="https://token.evil.example")),
    "claims-as-our-own-issuer": lambda s: rs256(s, ci_claims(iss=django_settings.PUBLIC_URL,
                                                             aud=django_settings.PUBLIC_URL)),
    "unknown-kid": lambda s: rs256(s, ci_claims(), kid="rsa-unpublished"),
    "tampered": lambda s: tamper(rs256(s, ci_claims()), repository="acme/other"),
    "tampered-ec": lambda s: tamper(es256(s, ci_claims()), sub="repo:acme/app:ref:x"),
    "alg-none": lambda s: compact({"alg": "none", "typ": "JWT", "kid": "rsa-1"}, ci_claims()),
    "hs256-with-public-pem": lambda s: hs256(
        public_pem(s.rsa), {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, ci_claims()
    ),
    "hs256-with-public-jwk": lambda s: hs256(
        _rsa_jwk_as_secret(s), {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, ci_claims()
    ),
    "ec-signature-under-rsa-kid": lambda s: es256(s, ci_claims(), kid="rsa-1"),
    "required-claim-mismatch": lambda s: rs256(s, ci_claims(repository="acme/other")),
    "required-claim-missing": lambda s: rs256(
        s, {k: v for k, v in ci_claims().items() if k != "repository"}
    ),
    "required-claim-wrong-type": lambda s: rs256(s, ci_claims(repository=[REPOSITORY])),
}  # fmt: skip


@pytest.mark.parametrize("case", CI_REFUSALS)
def test_trusted_issuer_refuses(case: str, tenant: Tenant, jwks_server: WorkloadIssuerFake) -> None:
    trust(tenant, jwks_server.jwks_url)
    assert_issued_to(tenant.token_request(rs256(jwks_server, ci_claims())), tenant, "preview")

    response = tenant.token_request(CI_REFUSALS[case](jwks_server))

    assert_error(response, 401, "unauthorized")
    assert TokenIssue.objects.count() == 1


# JWKS caching -----------------------------------------------------------------------------


def age_jwks_cache(url: str, seconds: float) -> None:
    """Pretend the cached JWKS was fetched ``seconds`` earlier (the clock, not the code, moves)."""
    key = "jwks:" + hashlib.sha256(url.encode()).hexdigest()
    entry = cache.get(key)
    assert entry is not None, "the JWKS should be cached under its URL"
    cache.set(key, {**entry, "fetched_at": entry["fetched_at"] - seconds}, 3600)


def test_jwks_is_fetched_once_and_cached(tenant: Tenant, jwks_server: WorkloadIssuerFake) -> None:
    trust(tenant, jwks_server.jwks_url)

    for _ in range(3):
        assert_issued_to(tenant.token_request(rs256(jwks_server, ci_claims())), tenant, "preview")
        assert_issued_to(tenant.token_request(es256(jwks_server, ci_claims())), tenant, "preview")

    assert jwks_server.hits == 1


def test_an_unknown_kid_refetches_at_most_once_a_minute(
    tenant: Tenant, jwks_server: WorkloadIssuerFake
) -> None:
    trust(tenant, jwks_server.jwks_url)
    assert_issued_to(tenant.token_request(rs256(jwks_server, ci_claims())), tenant, "preview")
    assert jwks_server.hits == 1

    # The issuer rotates in a new key; tokens signed with it arrive at once.
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks_server.publish(
        {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(new_key.public_key())),
         "kid": "rsa-2", "alg": "RS256", "use": "sig"}
    )  # fmt: skip
    rotated = jwt.encode(ci_claims(), new_key, algorithm="RS256", headers={"kid": "rsa-2"})
    for _ in range(3):
        assert_error(tenant.token_request(rotated), 401, "unauthorized")
    assert jwks_server.hits == 1, "fetched less than a minute ago: no refetch"

    age_jwks_cache(jwks_server.jwks_url, 61)
    assert_issued_to(tenant.token_request(rotated), tenant, "preview")
    assert jwks_server.hits == 2

    unknown = rs256(jwks_server, ci_claims(), kid="never-published")
    for _ in range(5):
        assert_error(tenant.token_request(unknown), 401, "unauthorized")
    assert jwks_server.hits == 2

    age_jwks_cache(jwks_server.jwks_url, 61)
    for _ in range(5):
        assert_error(tenant.token_request(unknown), 401, "unauthorized")
    assert jwks_server.hits == 3, "one refetch for the unknown kid, then none for a minute"

    # Known keys keep working from the cache all along.
    assert_issued_to(tenant.token_request(rs256(jwks_server, ci_claims())), tenant, "preview")
    assert jwks_server.hits == 3


# The SSRF guard on JWKS URLs --------------------------------------------------------------------


def test_a_jwks_url_on_a_private_address_is_refused(
    tenant: Tenant, jwks_server: WorkloadIssuerFake, settings: Any
) -> None:
    assert settings.CONNECT_ALLOW_LOOPBACK
    trust(tenant, "http://10.0.0.1/jwks")

    started = time.monotonic()
    response = tenant.token_request(rs256(jwks_server, ci_claims()))
    elapsed = time.monotonic() - started

    assert_error(response, 401, "unauthorized")
    assert elapsed < 2, "refused before connecting, not after a connect timeout"


def test_loopback_jwks_is_refused_when_loopback_is_not_allowed(
    tenant: Tenant, jwks_server: WorkloadIssuerFake, settings: Any
) -> None:
    settings.CONNECT_ALLOW_LOOPBACK = False
    trust(tenant, jwks_server.jwks_url)

    response = tenant.token_request(rs256(jwks_server, ci_claims()))

    assert_error(response, 401, "unauthorized")
    assert jwks_server.hits == 0
    # Our own issuer needs no fetch and keeps working.
    assert_issued_to(tenant.token_request(own_token(tenant)), tenant, "preview")
