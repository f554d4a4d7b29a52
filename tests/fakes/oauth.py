"""A strict OAuth 2.0 authorization server on loopback: the one fake of a custom OAuth provider
(RFC 6749, 7009, 7523, 7636, 8414, 9207), for unit, API, security and browser tests alike.

It is as picky as the real ones, so a test passing against it means something:

* client authentication exactly as registered per client — ``client_secret_basic`` (with the
  RFC 6749 2.3.1 form-encoding of id and secret), ``client_secret_post``, ``private_key_jwt``
  (the assertion verified against the JWKS the app publishes for the connector, fetched over
  HTTP: ``iss`` = ``sub`` = client id, ``aud`` = the endpoint called, ``exp`` required and at most
  ten minutes ahead, single-use ``jti``) or ``none`` — and never two methods at once;
* ``POST`` with ``application/x-www-form-urlencoded`` only, no repeated parameters (but RFC
  8707's ``resource`` and ``audience``), known grant types only;
* the authorization endpoint shows an error page (no redirect) for an unknown client or a
  ``redirect_uri`` not registered for it, wants ``response_type=code``, a state and an S256 PKCE
  challenge from every client (OAuth 2.1), and scopes the client may ask for;
* a code works once, within ten minutes, for the client it was issued to, with the identical
  ``redirect_uri`` and a well-formed ``code_verifier`` whose S256 is the challenge; a replayed
  code revokes the tokens it produced (RFC 6749 4.1.2);
* refresh tokens rotate on every refresh, and presenting one that was already rotated revokes
  the whole grant, every access token with it (Salesforce, GitHub, RFC 9700 4.14.2);
* the RFC 7523 jwt-bearer grant takes an assertion signed with a key the client publishes
  (``jwks_url``): ``iss`` = the client, a ``sub``, ``aud`` = the token endpoint, a near ``exp``;
* RFC 7009 revocation at ``/revoke``;
* RFC 8414 metadata at ``/.well-known/oauth-authorization-server`` and, with ``discovery``,
  OpenID's at ``/.well-known/openid-configuration`` (``issuer`` = its URL). With
  ``iss_supported`` the metadata says ``authorization_response_iss_parameter_supported`` and
  every authorization response (errors too) carries ``iss`` (RFC 9207).

Knobs (plain attributes, set them from the test): ``expires_in``, ``fail_status`` (answer that
status instead), ``hang_seconds`` (answer nothing for that long), ``delay_seconds`` (process the
token request at once, rotating as usual, but send the answer that much later: a slow provider
whose caller may have stopped listening), ``gate`` (an Event: token calls are counted, then wait
until it is set), ``omit_refresh_token`` (answer without one; the old refresh token then stays
valid), ``granted_scope`` (grant less than asked), ``omit_scope``, ``revocation_status``,
``deny`` and ``consent_page`` (see ``tests/fakes/base.py``), ``iss_supported`` and ``iss_sent``
(send another issuer, or none with ``""``, as a mixed-up or lying server would), ``discovery``
(which metadata documents it serves), ``metadata_changes`` (what its metadata says instead,
None leaving a member out: a test of discovery makes it lie), ``auth_methods`` (the methods its
metadata advertises; by default those of its clients).

Every token endpoint call is counted per ``grant_type`` before anything is checked; the counts
are readable in process (``calls``) and from other processes at ``GET /stats``. Refusals are in
``rejections`` (endpoint, status, error, description), token requests in ``forms``, successful
token answers in ``issued``, revocations in ``revocations``.
"""

import base64
import hashlib
import hmac
import html
import json
import re
import secrets
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

import jwt

from tests.fakes.base import (
    SILENCE,
    LoopbackServer,
    Recorded,
    Refused,
    Reply,
    Request,
    Route,
    fill,
    payload,
    pkce_s256,
    with_query,
)

FORM = "application/x-www-form-urlencoded"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 600
REPEATABLE = frozenset({"resource", "audience"})  # RFC 8707 lets these repeat
METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
API_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
CODE_LIFETIME = 600
VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")  # RFC 7636 4.1


class OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.status, self.error, self.description = status, error, description


@dataclass
class OAuthClient:
    client_id: str
    method: str
    secret: str = ""
    #: Where the client publishes its keys (private_key_jwt, jwt-bearer assertions).
    jwks_url: str = ""
    #: What the client may ask for on its own (client credentials, jwt-bearer); empty: anything.
    scopes: frozenset[str] = frozenset()
    #: What a person may be asked to grant it at the authorization endpoint; empty: anything.
    user_scopes: frozenset[str] = frozenset()


@dataclass
class GrantFamily:
    """One user authorization: the refresh tokens it rotated through and its access tokens."""

    id: str
    client_id: str
    scope: str
    refresh_token: str
    rotated: set[str] = field(default_factory=set)
    access_tokens: set[str] = field(default_factory=set)
    active: bool = True
    revoked_because: str = ""


@dataclass(frozen=True)
class IssuedGrant:
    family_id: str
    access_token: str
    refresh_token: str


@dataclass(frozen=True)
class PendingCode:
    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str
    issued_at: float


class OAuthFake(LoopbackServer):
    def __init__(self, *, base_path: str = "") -> None:
        super().__init__()
        #: Where its endpoints live under its URL: GitLab's are under ``/oauth``.
        self.base_path = base_path
        self.expires_in = 3600
        self.fail_status: int | None = None
        self.hang_seconds = 0.0
        self.delay_seconds = 0.0
        self.gate: threading.Event | None = None
        self.omit_refresh_token = False
        self.granted_scope: str | None = None
        self.omit_scope = False
        self.revocation_status = 200
        #: RFC 9207: advertise the iss parameter and send it on every authorization response.
        self.iss_supported = False
        #: What to send as iss instead of the issuer ("" sends none), whatever is advertised.
        self.iss_sent: str | None = None
        #: Which metadata documents it serves under ``/.well-known/``.
        self.discovery = {"oauth-authorization-server"}
        self.metadata_changes: dict[str, Any] = {}
        self.auth_methods: list[str] | None = None

        self.redirect_uris: dict[str, set[str]] = {}
        self._clients: dict[str, OAuthClient] = {}
        self._families: dict[str, GrantFamily] = {}
        self._by_refresh: dict[str, str] = {}  # every refresh token ever issued -> family id
        self._access: dict[str, tuple[str, float, str | None]] = {}  # token -> client, exp, fam
        self._codes: dict[str, PendingCode] = {}
        self._spent: dict[str, str | None] = {}  # code -> the family it produced
        self._seen_jti: set[str] = set()
        self._calls: Counter[str] = Counter()
        self._replays = 0
        self.rejections: list[dict[str, Any]] = []
        self.forms: list[dict[str, str]] = []  # every token request's parameters, as received
        self.revocations: list[dict[str, Any]] = []
        #: Every successful token answer, in order.
        self.issued: list[dict[str, Any]] = []
        #: Every call to the resource server under /api, in order.
        self.api_calls: list[Recorded] = []
        #: The API answers 401 to every token (the app lost its access at the provider).
        self.api_refusing = False
        #: How long /api/slow holds its answer.
        self.api_hang_seconds = 5.0
        #: Set it to let /api/stream send its chunks without waiting.
        self.stream_step = threading.Event()

    def routes(self) -> list[Route]:
        base = re.escape(self.base_path)
        return [
            ("GET", r"/stats", lambda _: Reply(200, self.stats())),
            ("GET", r"/\.well-known/(?P<document>[a-z-]+)", self._metadata),
            ("GET", base + r"/authorize", self._guarded("/authorize", self._authorize)),
            ("POST", base + r"/authorize", self._guarded("/authorize", self.decided)),
            ("POST", base + r"/token", self._token),
            ("POST", base + r"/revoke", self._guarded("/revoke", self._revoke)),
            ("GET", base + r"/(?P<endpoint>token|revoke)", self._post_only),
            # The resource server, for the proxy: its API under /api.
            ("GET", r"/api/me", self._api_me),
            *((method, r"/api/echo(?P<rest>/.*)?", self._api_echo) for method in API_METHODS),
            ("GET", r"/api/stream", self._api_stream),
            ("GET", r"/api/slow", self._api_slow),
            ("GET", r"/api/plain-404", self._api_plain_404),
        ]

    # Where it is -------------------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        return self.url

    @property
    def authorization_endpoint(self) -> str:
        return f"{self.url}{self.base_path}/authorize"

    @property
    def token_endpoint(self) -> str:
        return f"{self.url}{self.base_path}/token"

    @property
    def revocation_endpoint(self) -> str:
        return f"{self.url}{self.base_path}/revoke"

    @property
    def stats_url(self) -> str:
        return f"{self.url}/stats"

    def metadata(self) -> dict[str, Any]:
        """RFC 8414 section 2 (with RFC 9207's and RFC 7636's additions)."""
        with self.lock:
            methods = sorted({client.method for client in self._clients.values()})
        document = {
            "issuer": self.issuer,
            "authorization_endpoint": self.authorization_endpoint,
            "token_endpoint": self.token_endpoint,
            "revocation_endpoint": self.revocation_endpoint,
            "response_types_supported": ["code"],
            "grant_types_supported": [
                "authorization_code",
                "refresh_token",
                "client_credentials",
                JWT_BEARER,
            ],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": self.auth_methods
            or methods
            or ["client_secret_basic"],
            "authorization_response_iss_parameter_supported": self.iss_supported,
        }
        changed = {**document, **self.metadata_changes}
        return {name: value for name, value in changed.items() if value is not None}

    # Setting up --------------------------------------------------------------------------------

    def add_client(
        self,
        client_id: str,
        *,
        method: str,
        secret: str = "",
        jwks_url: str = "",
        scopes: tuple[str, ...] = (),
        user_scopes: tuple[str, ...] = (),
    ) -> OAuthClient:
        assert method in METHODS, method
        assert method != "private_key_jwt" or jwks_url, "private_key_jwt needs the JWKS URL"
        client = OAuthClient(
            client_id, method, secret, jwks_url, frozenset(scopes), frozenset(user_scopes)
        )
        with self.lock:
            self._clients[client_id] = client
        return client

    def register_redirect(self, client_id: str, redirect_uri: str) -> None:
        with self.lock:
            self.redirect_uris.setdefault(client_id, set()).add(redirect_uri)

    def grant_create(self, client_id: str, *, scope: str) -> IssuedGrant:
        """What an authorization code exchange would have left: a user grant with its tokens."""
        with self.lock:
            family = GrantFamily(
                id=secrets.token_hex(8),
                client_id=client_id,
                scope=scope,
                refresh_token=_token("rt"),
            )
            self._families[family.id] = family
            self._by_refresh[family.refresh_token] = family.id
            access = self._access_token(client_id, family)
            return IssuedGrant(family.id, access, family.refresh_token)

    def grant_revoke(self, family_id: str, *, because: str = "revoked by the user") -> None:
        """The resource owner revokes the app at the provider."""
        with self.lock:
            self._kill(self._families[family_id], because)

    def expire_codes(self) -> None:
        """Every code issued so far lapses (the person took too long to come back)."""
        with self.lock:
            self._codes.clear()

    # Reading -----------------------------------------------------------------------------------

    def family(self, family_id: str) -> GrantFamily:
        with self.lock:
            family = self._families[family_id]
            return GrantFamily(
                id=family.id,
                client_id=family.client_id,
                scope=family.scope,
                refresh_token=family.refresh_token,
                rotated=set(family.rotated),
                access_tokens=set(family.access_tokens),
                active=family.active,
                revoked_because=family.revoked_because,
            )

    def family_of(self, refresh_token: str) -> GrantFamily:
        """The authorization a refresh token (current or rotated) belongs to."""
        with self.lock:
            return self.family(self._by_refresh[refresh_token])

    def access_token_active(self, token: str, *, at: float | None = None) -> bool:
        """Whether the token works now (or at the epoch second ``at``)."""
        with self.lock:
            entry = self._access.get(token)
            if entry is None or entry[1] <= (time.time() if at is None else at):
                return False
            family_id = entry[2]
            return family_id is None or self._families[family_id].active

    @property
    def calls(self) -> dict[str, int]:
        with self.lock:
            return dict(self._calls)

    @property
    def replays(self) -> int:
        with self.lock:
            return self._replays

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "calls": dict(self._calls),
                "replays": self._replays,
                "rejections": len(self.rejections),
                "revocations": len(self.revocations),
            }

    # The authorization endpoint ----------------------------------------------------------------

    def _authorize(self, request: Request) -> Reply:
        query = request.query
        client_id = query.get("client_id", "")
        with self.lock:
            client = self._clients.get(client_id)
            registered = self.redirect_uris.get(client_id, set())
        if client is None:
            raise OAuthError(400, "invalid_client", f"unknown client {client_id!r}")
        redirect_uri = query.get("redirect_uri", "")
        if redirect_uri not in registered:
            # RFC 6749 4.1.2.1: never redirect to an unverified URI; tell the person instead.
            raise OAuthError(400, "invalid_request", f"redirect_uri {redirect_uri!r} unknown")
        if query.get("response_type") != "code":
            raise OAuthError(400, "unsupported_response_type", str(query.get("response_type")))
        state = query.get("state", "")
        if not state:
            raise OAuthError(400, "invalid_request", "this server insists on a state")
        if not query.get("code_challenge") or query.get("code_challenge_method") != "S256":
            raise OAuthError(400, "invalid_request", "PKCE with S256 is required")
        asked = set(query.get("scope", "").split())
        if client.user_scopes and not asked <= client.user_scopes:
            raise OAuthError(400, "invalid_scope", f"not allowed: {asked - client.user_scopes}")

        def decide(allowed: bool) -> str:
            if not allowed:
                return self._response(redirect_uri, {"error": "access_denied", "state": state})
            code = secrets.token_urlsafe(24)
            with self.lock:
                self._codes[code] = PendingCode(
                    client_id=client_id,
                    redirect_uri=redirect_uri,
                    scope=query.get("scope", ""),
                    code_challenge=query["code_challenge"],
                    issued_at=time.time(),
                )
            return self._response(redirect_uri, {"code": code, "state": state})

        scopes = "".join(f"<li>{html.escape(s)}</li>" for s in sorted(asked))
        return self.consent(
            decide=decide,
            page=lambda ticket: CONSENT_PAGE.format(
                action=html.escape(request.path),
                client=html.escape(client_id),
                scopes=scopes,
                consent=ticket,
            ),
        )

    def _response(self, redirect_uri: str, params: dict[str, str]) -> str:
        """Where an authorization response goes, with RFC 9207's iss where it is sent."""
        iss = (
            self.iss_sent
            if self.iss_sent is not None
            else (self.issuer if self.iss_supported else "")
        )
        if iss:
            params = {**params, "iss": iss}
        return with_query(redirect_uri, params)

    # The token endpoint ------------------------------------------------------------------------

    def _token(self, request: Request) -> Reply:
        try:
            form = _form(request)
        except OAuthError as exc:
            self._count("")
            return self._error("/token", exc)
        self._count(form.get("grant_type", ""), form)
        if self.hang_seconds:
            # Say nothing; the caller's read timeout has to fire. Nothing is processed.
            self.released.wait(self.hang_seconds)
            return SILENCE
        if self.fail_status is not None:
            return Reply(self.fail_status, {"error": "server_error"})
        if self.gate is not None:
            self.gate.wait(timeout=60)
        try:
            body = self.token(request, form)
        except OAuthError as exc:
            self.released.wait(self.delay_seconds)
            return self._error("/token", exc)
        with self.lock:
            self.issued.append(body)
        self.released.wait(self.delay_seconds)
        return Reply(200, body)

    def token(self, request: Request, form: dict[str, str]) -> dict[str, Any]:
        grant_type = form.get("grant_type", "")
        client = self._authenticate(request, form, self.token_endpoint)
        if grant_type == "authorization_code":
            return self._authorization_code(client, form)
        if grant_type == JWT_BEARER:
            return self._jwt_bearer(client, form)
        with self.lock:
            if grant_type == "client_credentials":
                return self._client_credentials(client, form)
            if grant_type == "refresh_token":
                return self._refresh(client, form)
        raise OAuthError(400, "unsupported_grant_type", f"grant_type {grant_type!r}")

    def _authorization_code(self, client: OAuthClient, form: dict[str, str]) -> dict[str, Any]:
        presented = form.get("code", "")
        with self.lock:
            code = self._codes.pop(presented, None)
            if code is None and presented in self._spent:
                family_id = self._spent[presented]
                if family_id is not None:
                    self._kill(self._families[family_id], "authorization code replayed")
                raise OAuthError(400, "invalid_grant", "code already used; its tokens revoked")
            self._spent[presented] = None
        if code is None:
            raise OAuthError(400, "invalid_grant", "unknown code")
        if time.time() - code.issued_at > CODE_LIFETIME:
            raise OAuthError(400, "invalid_grant", "code expired")
        if code.client_id != client.client_id:
            raise OAuthError(400, "invalid_grant", "the code was issued to another client")
        if form.get("redirect_uri", "") != code.redirect_uri:
            raise OAuthError(400, "invalid_grant", "redirect_uri differs from the authorization")
        verifier = form.get("code_verifier", "")
        if not VERIFIER.match(verifier):
            raise OAuthError(400, "invalid_grant", "code_verifier missing or malformed")
        if pkce_s256(verifier) != code.code_challenge:
            raise OAuthError(400, "invalid_grant", "code_verifier does not match the challenge")
        scope = self.granted_scope if self.granted_scope is not None else code.scope
        issued = self.grant_create(client.client_id, scope=scope)
        with self.lock:
            self._spent[presented] = issued.family_id
        body = payload("oauth", "token")
        body.pop("example_parameter")
        fill(
            body,
            access_token=issued.access_token,
            token_type="Bearer",
            expires_in=self.expires_in,
            refresh_token=issued.refresh_token,
        )
        if not self.omit_scope:
            body["scope"] = scope  # RFC 6749 5.1: required when it differs from the request
        return body

    def _client_credentials(self, client: OAuthClient, form: dict[str, str]) -> dict[str, Any]:
        if client.method == "none":
            raise OAuthError(400, "unauthorized_client", "public clients have no credentials")
        asked = form.get("scope", "").split()
        if client.scopes and not set(asked) <= client.scopes:
            raise OAuthError(400, "invalid_scope", f"not allowed: {set(asked) - client.scopes}")
        scope = self.granted_scope if self.granted_scope is not None else " ".join(asked)
        return self._answer(self._access_token(client.client_id, None), None, scope)

    def _jwt_bearer(self, client: OAuthClient, form: dict[str, str]) -> dict[str, Any]:
        """RFC 7523 2.1 and 3: the client asserts a subject with a JWT signed by its own key."""
        claims = self._verified_assertion(
            client, form.get("assertion", ""), self.token_endpoint, error="invalid_grant"
        )
        if claims["iss"] != client.client_id:
            raise OAuthError(400, "invalid_grant", "the assertion is not the client's own")
        if not claims.get("sub"):
            raise OAuthError(400, "invalid_grant", "the assertion names no subject")
        asked = form.get("scope", "").split()
        if client.scopes and not set(asked) <= client.scopes:
            raise OAuthError(400, "invalid_scope", f"not allowed: {set(asked) - client.scopes}")
        scope = self.granted_scope if self.granted_scope is not None else " ".join(asked)
        with self.lock:
            access = self._access_token(client.client_id, None)
        return self._answer(access, None, scope)

    def _refresh(self, client: OAuthClient, form: dict[str, str]) -> dict[str, Any]:
        presented = form.get("refresh_token", "")
        if not presented:
            raise OAuthError(400, "invalid_request", "refresh_token is required")
        family_id = self._by_refresh.get(presented)
        if family_id is None:
            raise OAuthError(400, "invalid_grant", "unknown refresh token")
        family = self._families[family_id]
        if family.client_id != client.client_id:
            raise OAuthError(400, "invalid_grant", "refresh token issued to another client")
        if not family.active:
            raise OAuthError(400, "invalid_grant", f"grant revoked: {family.revoked_because}")
        if presented != family.refresh_token:
            # Reuse detection: thief or honest client, nobody can tell; the grant dies.
            self._replays += 1
            self._kill(family, "a rotated refresh token was replayed")
            raise OAuthError(400, "invalid_grant", "refresh token already used; grant revoked")
        asked = form.get("scope", "").split()
        if asked and not set(asked) <= set(family.scope.split()):
            raise OAuthError(400, "invalid_scope", "beyond the original grant")
        if self.granted_scope is not None:
            family.scope = self.granted_scope
        new_refresh = None
        if not self.omit_refresh_token:
            family.rotated.add(family.refresh_token)
            new_refresh = family.refresh_token = _token("rt")
            self._by_refresh[new_refresh] = family.id
        access = self._access_token(client.client_id, family)
        return self._answer(access, new_refresh, " ".join(asked) or family.scope)

    def _answer(self, access: str, refresh: str | None, scope: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }
        if refresh:
            body["refresh_token"] = refresh
        if not self.omit_scope:
            body["scope"] = scope
        return body

    def _access_token(self, client_id: str, family: GrantFamily | None) -> str:
        token = _token("at")
        self._access[token] = (
            client_id,
            time.time() + self.expires_in,
            family.id if family else None,
        )
        if family is not None:
            family.access_tokens.add(token)
        return token

    def _kill(self, family: GrantFamily, because: str) -> None:
        family.active = False
        family.revoked_because = because
        for token in family.access_tokens:
            self._access.pop(token, None)

    # The resource server (an API the proxy calls) -------------------------------------------

    def api_reject(self, token: str) -> None:
        """The API stops taking this access token before its expiry (the provider revoked it,
        or rotated its keys): the next call with it is a 401."""
        with self.lock:
            self._access.pop(token, None)

    def _api_caller(self, request: Request) -> str:
        """The bearer token, if the API takes it; every call is recorded in ``api_calls``."""
        with self.lock:
            self.api_calls.append(
                Recorded(
                    request.method,
                    request.path,
                    dict(request.query),
                    {k: v for k, v in request.headers.items()},
                    request.body,
                )
            )
        token = request.bearer()
        if not token or not self.access_token_active(token) or self.api_refusing:
            raise Refused(
                Reply(
                    401,
                    {"error": "invalid_token"},
                    {"WWW-Authenticate": 'Bearer error="invalid_token"'},
                ),
                "API call without a valid access token",
            )
        return token

    def _api_refused(self, handler: Callable[[Request], Reply]) -> Callable[[Request], Reply]:
        def guarded(request: Request) -> Reply:
            try:
                return handler(request)
            except Refused as refusal:
                with self.lock:
                    self.rejections.append(
                        {"endpoint": request.path, "status": refusal.reply.status}
                    )
                return refusal.reply

        return guarded

    def _rate_headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": "4999",
            "X-RateLimit-Reset": str(int(time.time()) + 3600),
            # What a proxy must never pass back, or act on.
            "Set-Cookie": "provider_session=secret; Path=/",
            "Connection": "X-Provider-Hop",
            "X-Provider-Hop": "1",
        }

    def _api_me(self, request: Request) -> Reply:
        def me(request: Request) -> Reply:
            token = self._api_caller(request)
            with self.lock:
                client_id = self._access[token][0]
            return Reply(
                200, {"client_id": client_id, "token_tail": token[-6:]}, self._rate_headers()
            )

        return self._api_refused(me)(request)

    def _api_echo(self, request: Request) -> Reply:
        def echo(request: Request) -> Reply:
            self._api_caller(request)
            return Reply(
                200,
                {
                    "method": request.method,
                    "path": request.path,
                    "query": request.query,
                    "content_type": request.headers.get("Content-Type"),
                    "length": len(request.body),
                    "sha256": hashlib.sha256(request.body).hexdigest(),
                },
                self._rate_headers(),
            )

        return self._api_refused(echo)(request)

    def _api_stream(self, request: Request) -> Reply:
        def stream(request: Request) -> Reply:
            self._api_caller(request)
            count = int(request.query.get("chunks", "5"))

            def chunks() -> Iterator[bytes]:
                for index in range(count):
                    yield f"chunk {index}\n".encode()
                    # The next chunk waits for the test to ask for it (or for a short while).
                    self.stream_step.wait(0.2)

            return Reply(200, content_type="text/plain", stream=chunks())

        return self._api_refused(stream)(request)

    def _api_slow(self, request: Request) -> Reply:
        self.released.wait(self.api_hang_seconds)
        return Reply(200, {"slow": True})

    def _api_plain_404(self, request: Request) -> Reply:
        return Reply(404, "no such thing here", content_type="text/plain")

    # Revocation (RFC 7009) ---------------------------------------------------------------------

    def _revoke(self, request: Request) -> Reply:
        form = _form(request)
        if self.revocation_status != 200:
            return Reply(self.revocation_status, {"error": "temporarily_unavailable"})
        self.revoke(request, form)
        return Reply(200, {})

    def revoke(self, request: Request, form: dict[str, str]) -> None:
        """RFC 7009: 200 whether or not the token was known; authenticated like /token."""
        client = self._authenticate(request, form, self.revocation_endpoint)
        token = form.get("token", "")
        if not token:
            raise OAuthError(400, "invalid_request", "token is required")
        hint = form.get("token_type_hint", "")
        if hint not in ("", "access_token", "refresh_token"):
            raise OAuthError(400, "unsupported_token_type", hint)
        with self.lock:
            family_id = self._by_refresh.get(token)
            access = self._access.get(token)
            owner = ""
            if family_id:
                owner = self._families[family_id].client_id
            elif access:
                owner = access[0]
            if owner and owner != client.client_id:
                raise OAuthError(400, "unauthorized_client", "token issued to another client")
            self.revocations.append(
                {
                    "token": token,
                    "hint": hint,
                    "client_id": client.client_id,
                    "known": bool(owner),
                }
            )
            if family_id:
                self._kill(self._families[family_id], "revoked through RFC 7009")
            elif access:
                self._access.pop(token, None)

    # Client authentication (RFC 6749 2.3, RFC 7523 3) ------------------------------------------

    def _authenticate(self, request: Request, form: dict[str, str], endpoint: str) -> OAuthClient:
        authorization = request.headers.get("Authorization", "")
        used = [
            name
            for name, present in (
                ("client_secret_basic", authorization.startswith("Basic ")),
                ("client_secret_post", "client_secret" in form),
                ("private_key_jwt", "client_assertion" in form or "client_assertion_type" in form),
            )
            if present
        ]
        if authorization and not authorization.startswith("Basic "):
            raise OAuthError(401, "invalid_client", "unsupported Authorization scheme")
        if len(used) > 1:
            raise OAuthError(400, "invalid_request", f"several client authentications: {used}")
        method = used[0] if used else "none"
        if method == "client_secret_basic":
            client_id, secret = _basic_credentials(authorization)
            if form.get("client_id", client_id) != client_id:
                raise OAuthError(400, "invalid_request", "client_id differs from Basic")
        elif method == "private_key_jwt":
            return self._assertion_client(form, endpoint)
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        with self.lock:
            client = self._clients.get(client_id)
        if client is None:
            raise OAuthError(401, "invalid_client", f"unknown client {client_id!r}")
        if client.method != method:
            raise OAuthError(401, "invalid_client", f"registered for {client.method}, got {method}")
        if method != "none" and not hmac.compare_digest(client.secret.encode(), secret.encode()):
            raise OAuthError(401, "invalid_client", "bad client secret")
        return client

    def _assertion_client(self, form: dict[str, str], endpoint: str) -> OAuthClient:
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise OAuthError(400, "invalid_request", "wrong client_assertion_type")
        assertion = form.get("client_assertion", "")
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise OAuthError(401, "invalid_client", f"not a JWT: {exc}") from exc
        client_id = str(unverified.get("iss", ""))
        with self.lock:
            client = self._clients.get(client_id)
        if client is None or client.method != "private_key_jwt":
            raise OAuthError(401, "invalid_client", f"{client_id!r} does not use private_key_jwt")
        if "client_id" in form and form["client_id"] != client_id:
            raise OAuthError(401, "invalid_client", "client_id differs from the assertion")
        claims = self._verified_assertion(client, assertion, endpoint, error="invalid_client")
        if claims["iss"] != client_id or claims["sub"] != client_id:
            raise OAuthError(401, "invalid_client", "sub must equal the client id")
        return client

    def _verified_assertion(
        self, client: OAuthClient, assertion: str, audience: str, *, error: str
    ) -> dict[str, Any]:
        """An RS256 JWT signed with a key the client publishes, for this endpoint, short-lived
        and never seen before (by its ``jti``)."""
        status = 401 if error == "invalid_client" else 400
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError as exc:
            raise OAuthError(status, error, f"not a JWT: {exc}") from exc
        if header.get("alg") != "RS256":
            raise OAuthError(status, error, f"alg {header.get('alg')!r}")
        if not client.jwks_url:
            raise OAuthError(status, error, "the client has no published keys")
        with urllib.request.urlopen(client.jwks_url, timeout=10) as response:
            published = json.load(response)["keys"]
        matching = [k for k in published if k.get("kid") == header.get("kid")]
        if len(matching) != 1:
            raise OAuthError(status, error, f"kid {header.get('kid')!r} not published")
        try:
            claims: dict[str, Any] = jwt.decode(
                assertion,
                jwt.PyJWK(matching[0]),
                algorithms=["RS256"],
                audience=audience,
                options={"require": ["iss", "sub", "aud", "exp", "jti"], "strict_aud": True},
            )
        except jwt.PyJWTError as exc:
            raise OAuthError(status, error, f"assertion refused: {exc}") from exc
        if claims["exp"] > time.time() + MAX_ASSERTION_LIFETIME:
            raise OAuthError(status, error, "assertion lives too long")
        with self.lock:
            if claims["jti"] in self._seen_jti:
                raise OAuthError(status, error, "assertion replayed (jti seen)")
            self._seen_jti.add(claims["jti"])
        return claims

    # Plumbing ----------------------------------------------------------------------------------

    def _metadata(self, request: Request) -> Reply:
        if request.match["document"] not in self.discovery:
            return Reply(404, {"error": "not_found"})
        return Reply(200, self.metadata())

    def _post_only(self, request: Request) -> Reply:
        return self._error(
            f"/{request.match['endpoint']}", OAuthError(405, "invalid_request", "POST only")
        )

    def _guarded(self, endpoint: str, handler: Any) -> Any:
        """Answer an OAuthError the way this endpoint does: the authorization endpoint with a
        page for the person (it never redirects to an unverified URI), the others with JSON."""

        def run(request: Request) -> Reply:
            try:
                reply: Reply = handler(request)
            except OAuthError as exc:
                if endpoint == "/authorize":
                    self._reject(endpoint, exc)
                    return Reply(400, f"<h1>Cannot continue</h1><p>{html.escape(str(exc))}</p>")
                return self._error(endpoint, exc)
            except Refused as refusal:
                self._reject(endpoint, OAuthError(refusal.reply.status, "refused", str(refusal)))
                return refusal.reply
            return reply

        return run

    def _count(self, grant_type: str, form: dict[str, str] | None = None) -> None:
        with self.lock:
            self._calls[grant_type or "(none)"] += 1
            if form is not None:
                self.forms.append(dict(form))

    def _reject(self, endpoint: str, exc: OAuthError) -> None:
        with self.lock:
            self.rejections.append(
                {
                    "endpoint": endpoint,
                    "status": exc.status,
                    "error": exc.error,
                    "description": exc.description,
                }
            )

    def _error(self, endpoint: str, exc: OAuthError) -> Reply:
        self._reject(endpoint, exc)
        headers = {}
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="strict-oauth"'
        return Reply(
            exc.status, {"error": exc.error, "error_description": exc.description}, headers
        )


def _token(kind: str) -> str:
    return f"{kind}-{secrets.token_urlsafe(24)}"


def _basic_credentials(authorization: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(authorization.removeprefix("Basic "), validate=True).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise OAuthError(401, "invalid_client", "malformed Basic credentials") from exc
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise OAuthError(401, "invalid_client", "malformed Basic credentials")
    # RFC 6749 2.3.1: both were form-encoded before Basic.
    return unquote_plus(client_id), unquote_plus(secret)


def _form(request: Request) -> dict[str, str]:
    def refuse(reason: str) -> Refused:
        raise OAuthError(400, "invalid_request", reason)

    return request.form(refuse, repeatable=REPEATABLE)


CONSENT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in to Example Identity</title></head>
<body style="font-family: sans-serif; max-width: 30rem; margin: 4rem auto">
<h1>Example Identity</h1>
<p id="request"><code>{client}</code> would like to access your account.</p>
<ul id="scopes">{scopes}</ul>
<form method="post" action="{action}">
<input type="hidden" name="consent" value="{consent}">
<button type="submit" name="decision" value="deny">Deny</button>
<button type="submit" name="decision" value="allow">Allow</button>
</form>
</body></html>
"""
