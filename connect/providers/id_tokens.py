"""OpenID Connect id_tokens checked against the keys their issuer publishes.

An id_token read from a token answer says who signed in and where (Entra's ``tid``); before a
tenant is taken from it, its signature is checked against the issuer's JWKS (fetched through
``connect.http``, cached), and its ``iss``, ``aud`` and ``exp`` with it. A token answer over TLS
would do for the user's own identity (OIDC Core 3.1.3.7), but an install attaches a whole tenant
to a flow: that takes the signature.
"""

import hashlib
from typing import Any

import jwt
import requests

from connect import http
from connect.jwks import published_key
from connect.providers.base import ProviderUnavailable, TenantUnproven

#: Asymmetric only: ``none`` and HMAC (keyed with a public key) are never accepted.
ALGORITHMS = ["RS256"]
JWKS_CACHE_SECONDS = 3600
#: An unknown ``kid`` (the provider rotated) refetches the set, at most this often.
JWKS_REFETCH_SECONDS = 60
LEEWAY_SECONDS = 60


def _fetch(url: str) -> list[dict[str, Any]]:
    try:
        response = http.session().get(url, headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        raise ProviderUnavailable(f"the signing keys at {url} are unreachable") from exc
    if response.status_code != 200:
        raise ProviderUnavailable(f"the signing keys at {url} answered {response.status_code}")
    try:
        document = response.json()
    except ValueError as exc:
        raise ProviderUnavailable(f"the signing keys at {url} are not JSON") from exc
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise ProviderUnavailable(f"{url} is not a key set")
    return [k for k in keys if isinstance(k, dict)]


def signing_key(jwks_url: str, kid: str) -> jwt.PyJWK:
    """The published key ``kid`` of the set at ``jwks_url``."""
    cache_key = "connect:provider-jwks:" + hashlib.sha256(jwks_url.encode()).hexdigest()
    candidate = published_key(
        cache_key,
        kid,
        lambda: _fetch(jwks_url),
        ttl=JWKS_CACHE_SECONDS,
        refetch_after=JWKS_REFETCH_SECONDS,
    )
    if candidate is None:
        raise TenantUnproven(
            f"the id_token is signed with a key ({kid!r}) the issuer does not publish"
        )
    try:
        return jwt.PyJWK(candidate)
    except jwt.PyJWTError as exc:
        raise TenantUnproven(f"the published key {kid!r} is unusable") from exc


def unverified_claims(id_token: str) -> dict[str, Any]:
    """The claims, unchecked: only to choose which issuer and keys to check them against."""
    try:
        claims = jwt.decode(id_token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise TenantUnproven("the id_token is not a JWT") from exc
    return dict(claims)


def verified_claims(id_token: str, *, jwks_url: str, issuer: str, audience: str) -> dict[str, Any]:
    """The claims of an id_token signed by ``issuer`` (keys at ``jwks_url``) for ``audience``."""
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError as exc:
        raise TenantUnproven("the id_token is not a JWT") from exc
    if header.get("alg") not in ALGORITHMS:
        raise TenantUnproven(f"the id_token is signed with {header.get('alg')!r}, not RS256")
    key = signing_key(jwks_url, str(header.get("kid") or ""))
    try:
        claims = jwt.decode(
            id_token,
            key,
            algorithms=ALGORITHMS,
            audience=audience,
            issuer=issuer,
            options={"require": ["iss", "aud", "exp", "iat"], "strict_aud": True},
            leeway=LEEWAY_SECONDS,
        )
    except jwt.PyJWTError as exc:
        raise TenantUnproven(f"the id_token does not verify: {exc}") from exc
    return dict(claims)
