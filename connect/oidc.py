"""The app as an OIDC issuer (its own RS256 keys) and as a verifier of trusted issuers."""

import base64
import functools
import hashlib
import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from connect import generations, http, local_caches
from connect.jwks import published_key
from connect.models import Project, SigningKey, TrustedIssuer, TrustedIssuerRule

ALGORITHMS = ["RS256", "ES256"]
JWKS_REFETCH_INTERVAL = 60.0
JWKS_CACHE_SECONDS = 3600
#: A failed JWKS fetch is not retried for this long (per URL, shared through the cache).
JWKS_FAILURE_SECONDS = 15
#: A token naming more audiences than this is refused before any lookup.
MAX_AUDIENCES = 10
OWN_KEYS_MAX_AGE = 60.0


class TokenRejected(Exception):
    """The JWT is not acceptable; the message says why (kept out of API responses)."""


class WrongAudience(TokenRejected):
    """A token this server signed itself, but for another origin (``iss``/``aud`` = another
    ``PUBLIC_URL``). Safe to tell the caller: only we could have signed it."""

    def __init__(self, audience: str) -> None:
        super().__init__(f"made for audience {audience!r}, not {settings.PUBLIC_URL!r}")
        self.audience = audience


def rsa_private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_jwk(private_pem: str) -> dict[str, Any]:
    """The public half as a JWK with an RFC 7638 thumbprint as ``kid``."""
    private = serialization.load_pem_private_key(private_pem.encode(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"))
    kid = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).decode().rstrip("=")
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


# Our own issuer ------------------------------------------------------------------------------


def signing_key_create() -> SigningKey:
    pem = rsa_private_key_pem()
    jwk = public_jwk(pem)
    key = SigningKey(kid=jwk["kid"], public_jwk=jwk)
    key.seal("private_key", pem)
    key.save()
    return key


@transaction.atomic
def signing_keys_rotate(*, overlap: timedelta, now: datetime | None = None) -> SigningKey:
    """A new key signs from now on; older keys stay published for ``overlap``, then drop out."""
    now = now or timezone.now()
    SigningKey.objects.select_for_update().filter(retires_at__isnull=True).update(
        retires_at=now + overlap
    )
    return signing_key_create()


#: How long a process signs with the key it read, at most (a rotation is seen sooner: it moves
#: the signing keys' generation).
SIGNING_KEY_KEPT_SECONDS = 60


def current_signing_key() -> SigningKey:
    """The key new tokens are signed with. With the local caches on, kept in process until the
    signing keys' generation moves (a rotation or a retirement, by any process or by hand):
    every forwarded webhook mints a bearer token, and this read was a query for each."""
    if not local_caches.enabled():
        return _current_signing_key_read()
    generations.ensure_fresh()
    kept = local_caches.cache("signing_key")
    key = kept.get("current")
    if key is None:
        epoch = generations.epoch()
        key = _current_signing_key_read()
        kept.put(
            "current",
            key,
            scopes=(generations.SIGNING_KEYS,),
            epoch=epoch,
            expires_at=time.time() + SIGNING_KEY_KEPT_SECONDS,
        )
    return key


def _current_signing_key_read() -> SigningKey:
    key = SigningKey.objects.filter(retires_at__isnull=True).order_by("-created_at").first()
    if key is None:
        with transaction.atomic():
            key = (
                SigningKey.objects.select_for_update()
                .filter(retires_at__isnull=True)
                .order_by("-created_at")
                .first()
            ) or signing_key_create()
    return key


def jwks(*, now: datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    current_signing_key()  # the first discovery request creates the first key
    return {"keys": [k.public_jwk for k in SigningKey.objects.published(now)]}


def openid_configuration() -> dict[str, Any]:
    issuer = settings.PUBLIC_URL
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "claims_supported": [
            "sub",
            "aud",
            "exp",
            "iat",
            "nbf",
            "iss",
            "jti",
            "owner_id",
            "project_id",
            "environment",
        ],
    }


@functools.lru_cache(maxsize=8)
def _loaded_private_key(pem: str) -> rsa.RSAPrivateKey:
    # Loading a PEM validates the RSA key (~90 ms); every forwarded webhook mints a token.
    private = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    return private


def oidc_token_mint(
    *,
    project: Project,
    environment: str,
    ttl: timedelta = timedelta(hours=1),
    audience: str | None = None,
    extra_claims: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> str:
    now = now or timezone.now()
    key = current_signing_key()
    team = project.team
    claims = {
        "iss": settings.PUBLIC_URL,
        "sub": f"owner:{team.slug}:project:{project.slug}:environment:{environment}",
        "aud": audience or settings.PUBLIC_URL,
        "owner_id": team.public_id,
        "project_id": project.public_id,
        "environment": environment,
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        **(extra_claims or {}),
    }
    return jwt.encode(
        claims,
        _loaded_private_key(key.reveal("private_key")),
        algorithm="RS256",
        headers={"kid": key.kid},
    )


class _OwnKeys:
    """Public keys of our issuer, kept in process, each with the moment it retires.

    An unknown kid reloads them at once (one query on a table of a few rows, no dearer than a
    deployment credential lookup), so a token of a key rotated in by another process verifies
    straight away; they are also reloaded when a minute old, so a rotation run elsewhere is seen
    even by a process that never meets the new kid. A key stops verifying at its ``retires_at``
    whenever it was loaded.
    """

    def __init__(self) -> None:
        self._keys: dict[str, tuple[jwt.PyJWK, datetime | None]] = {}
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def get(self, kid: str, *, now: datetime) -> jwt.PyJWK | None:
        entry = self._keys.get(kid)
        if entry is None or time.monotonic() - self._loaded_at >= OWN_KEYS_MAX_AGE:
            with self._lock:
                self._keys = {
                    k.kid: (jwt.PyJWK(k.public_jwk), k.retires_at)
                    for k in SigningKey.objects.published(now)
                }
                self._loaded_at = time.monotonic()
            entry = self._keys.get(kid)
        if entry is None:
            return None
        key, retires_at = entry
        if retires_at is not None and retires_at <= now:
            return None
        return key

    def clear(self) -> None:
        self._keys, self._loaded_at = {}, float("-inf")


own_keys = _OwnKeys()


# Verifying ------------------------------------------------------------------------------------


def unverified_issuer(token: str) -> tuple[str, str]:
    """(iss, kid) read without verification, only to pick the keys to verify with."""
    try:
        # One parse for both (PyJWT checks every character of the token on each).
        unverified = jwt.api_jwt.decode_complete(token, options={"verify_signature": False})
        header, claims = unverified["header"], unverified["payload"]
    except jwt.PyJWTError as exc:
        raise TokenRejected(f"not a JWT: {exc}") from exc
    if header.get("alg") not in ALGORITHMS:
        raise TokenRejected(f"algorithm {header.get('alg')!r} is not accepted")
    return str(claims.get("iss", "")), str(header.get("kid", ""))


def verify(token: str, key: jwt.PyJWK, *, issuer: str, audience: str) -> dict[str, Any]:
    try:
        return jwt.decode(
            token,
            key,
            algorithms=ALGORITHMS,
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iss", "aud"]},
            leeway=30,
        )
    except jwt.PyJWTError as exc:
        raise TokenRejected(str(exc)) from exc


def own_token_claims(token: str, kid: str, *, now: datetime | None = None) -> dict[str, Any]:
    key = own_keys.get(kid, now=now or timezone.now())
    if key is None:
        raise TokenRejected(f"unknown key id {kid!r}")
    try:
        return verify(token, key, issuer=settings.PUBLIC_URL, audience=settings.PUBLIC_URL)
    except TokenRejected as exc:
        if isinstance(exc.__cause__, (jwt.InvalidAudienceError, jwt.InvalidIssuerError)):
            raise WrongAudience(_audience_of(token)) from exc
        raise


def own_token_elsewhere(token: str, kid: str, *, now: datetime | None = None) -> None:
    """Raise ``WrongAudience`` when a token naming another issuer was signed by one of our own
    keys: made by ``oidc_token`` under another ``PUBLIC_URL`` (another port, say)."""
    key = own_keys.get(kid, now=now or timezone.now())
    if key is None:
        return
    try:
        jwt.decode(
            token,
            key,
            algorithms=ALGORITHMS,
            options={"verify_aud": False, "verify_iss": False, "verify_exp": False},
        )
    except jwt.PyJWTError:
        return
    raise WrongAudience(_audience_of(token))


def _audience_of(token: str) -> str:
    audience = jwt.decode(token, options={"verify_signature": False}).get("aud", "")
    return ", ".join(audience) if isinstance(audience, list) else str(audience)


def _jwks_fetch(url: str) -> dict[str, Any]:
    try:
        response = http.session().get(url, headers={"Accept": "application/json"})
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise TokenRejected(f"JWKS at {url} unavailable: {type(exc).__name__}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise TokenRejected(f"JWKS at {url} is not a key set")
    return document


def _jwks_cache_key(url: str) -> str:
    return "jwks:" + hashlib.sha256(url.encode()).hexdigest()


def jwks_key(url: str, kid: str) -> jwt.PyJWK:
    """A key from a remote JWKS, cached; an unknown kid refetches at most once a minute.

    A failed fetch is remembered for ``JWKS_FAILURE_SECONDS``: a broken or slow JWKS costs its
    own team's callers one fetch, not one per request.
    """
    cache_key = _jwks_cache_key(url)

    def fetch() -> list[dict[str, Any]]:
        failed = cache.get(f"{cache_key}:failed")
        if failed is not None:
            raise TokenRejected(f"{failed} (cached failure)")
        try:
            return list(_jwks_fetch(url)["keys"])
        except TokenRejected as exc:
            cache.set(f"{cache_key}:failed", str(exc), JWKS_FAILURE_SECONDS)
            raise

    candidate = published_key(
        cache_key, kid, fetch, ttl=JWKS_CACHE_SECONDS, refetch_after=JWKS_REFETCH_INTERVAL
    )
    if candidate is None:
        raise TokenRejected(f"unknown key id {kid!r}")
    try:
        return jwt.PyJWK(candidate)
    except jwt.PyJWTError as exc:
        raise TokenRejected(f"unusable key {kid!r}: {exc}") from exc


@dataclass(frozen=True)
class TrustedMatch:
    issuer: TrustedIssuer
    rule: TrustedIssuerRule
    claims: dict[str, Any]


def _unverified_audiences(token: str) -> list[str]:
    try:
        aud = jwt.decode(token, options={"verify_signature": False}).get("aud")
    except jwt.PyJWTError as exc:
        raise TokenRejected(f"not a JWT: {exc}") from exc
    if isinstance(aud, str):
        return [aud]
    if not isinstance(aud, list):
        return []
    if len(aud) > MAX_AUDIENCES:
        # Read before the signature is checked: a forger must not size our query.
        raise TokenRejected(f"more than {MAX_AUDIENCES} audiences")
    return [a for a in aud if isinstance(a, str)]


def trusted_issuer_match(token: str, issuer: str, kid: str) -> TrustedMatch:
    """The one rule, of the one team that trusts this (issuer, audience), the token matches.

    The token's own ``iss`` and ``aud`` pick the team first (the pair is unique), and only that
    team's JWKS is fetched and its rules read: another team trusting the same issuer can
    neither capture the token nor slow it down. Rules of that team naming more than one
    project + environment make the token ambiguous, and it is refused.
    """
    audiences = _unverified_audiences(token)
    rules = list(
        TrustedIssuerRule.objects.filter(
            trusted_issuer__issuer=issuer, trusted_issuer__audience__in=audiences
        ).select_related("trusted_issuer", "project", "environment")
    )
    trusted = {rule.trusted_issuer_id: rule.trusted_issuer for rule in rules}
    if not trusted:
        raise TokenRejected(f"issuer {issuer!r} is not trusted for audience {audiences!r}")
    if len(trusted) > 1:
        # A token addressed to several teams' audiences is for none of them.
        raise TokenRejected("the token's audiences name more than one trusted issuer")
    (pair,) = trusted.values()
    claims = verify(token, jwks_key(pair.jwks_url, kid), issuer=issuer, audience=pair.audience)
    matches = [r for r in rules if r.project.team_id == pair.team_id and r.matches(claims)]
    if len({(rule.project_id, rule.environment_id) for rule in matches}) > 1:
        raise TokenRejected("the token matches rules for more than one project")
    if not matches:
        raise TokenRejected("claims do not match any rule")
    return TrustedMatch(issuer=pair, rule=matches[0], claims=claims)
