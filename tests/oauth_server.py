"""A strict OAuth 2.0 authorization server on loopback, for tests (RFC 6749, 7009, 7523).

It is as picky as the real ones, so a test passing against it means something:

* client authentication exactly as registered per client — ``client_secret_basic`` (with the
  RFC 6749 2.3.1 form-encoding of id and secret), ``client_secret_post``, ``private_key_jwt``
  (the assertion verified against the JWKS the app publishes for the connector, fetched over
  HTTP: ``iss`` = ``sub`` = client id, ``aud`` = the endpoint called, ``exp`` required and at most
  ten minutes ahead, single-use ``jti``) or ``none`` — and never two methods at once;
* ``POST`` with ``application/x-www-form-urlencoded`` only, no repeated parameters, known grant
  types only;
* refresh tokens rotate on every refresh, and presenting one that was already rotated revokes
  the whole grant, every access token with it (Salesforce, GitHub, RFC 9700 4.14.2);
* RFC 7009 revocation at ``/revoke``.

Knobs (plain attributes, set them from the test): ``expires_in``, ``fail_status`` (answer that
status instead), ``hang_seconds`` (answer nothing for that long), ``delay_seconds`` (process the
token request at once, rotating as usual, but send the answer that much later: a slow provider
whose caller may have stopped listening), ``gate`` (an Event: token
calls are counted, then wait until it is set), ``omit_refresh_token`` (answer without one; the
old refresh token then stays valid), ``granted_scope`` (grant less than asked), ``omit_scope``,
``revocation_status``.

Every token endpoint call is counted per ``grant_type`` before anything is checked; the counts
are readable in process (``calls``) and from other processes at ``GET /stats``.
"""

import base64
import hmac
import json
import secrets
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, unquote_plus

import jwt

FORM = "application/x-www-form-urlencoded"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 600
REPEATABLE = frozenset({"resource", "audience"})  # RFC 8707 lets these repeat
METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")


class OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.status, self.error, self.description = status, error, description


@dataclass
class OAuthClient:
    client_id: str
    method: str
    secret: str = ""
    jwks_url: str = ""
    #: What client credentials may ask for; empty allows anything.
    scopes: frozenset[str] = frozenset()


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


class StrictOAuthServer:
    def __init__(self) -> None:
        self.expires_in = 3600
        self.fail_status: int | None = None
        self.hang_seconds = 0.0
        self.delay_seconds = 0.0
        self.gate: threading.Event | None = None
        self.omit_refresh_token = False
        self.granted_scope: str | None = None
        self.omit_scope = False
        self.revocation_status = 200

        self._lock = threading.Lock()
        self._released = threading.Event()
        self._clients: dict[str, OAuthClient] = {}
        self._families: dict[str, GrantFamily] = {}
        self._by_refresh: dict[str, str] = {}  # every refresh token ever issued -> family id
        self._access: dict[str, tuple[str, float, str | None]] = {}  # token -> client, exp, fam
        self._seen_jti: set[str] = set()
        self._calls: Counter[str] = Counter()
        self._replays = 0
        self.rejections: list[dict[str, Any]] = []
        self.forms: list[dict[str, str]] = []  # every token request's parameters, as received
        self.revocations: list[dict[str, Any]] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Running -----------------------------------------------------------------------------------

    def start(self) -> Self:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        httpd.daemon_threads = True
        httpd.oauth = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()  # wake hanging handlers
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the server first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.url}/token"

    @property
    def revocation_endpoint(self) -> str:
        return f"{self.url}/revoke"

    @property
    def stats_url(self) -> str:
        return f"{self.url}/stats"

    # Setting up --------------------------------------------------------------------------------

    def add_client(
        self,
        client_id: str,
        *,
        method: str,
        secret: str = "",
        jwks_url: str = "",
        scopes: tuple[str, ...] = (),
    ) -> OAuthClient:
        assert method in METHODS, method
        assert method != "private_key_jwt" or jwks_url, "private_key_jwt needs the JWKS URL"
        client = OAuthClient(client_id, method, secret, jwks_url, frozenset(scopes))
        with self._lock:
            self._clients[client_id] = client
        return client

    def grant_create(self, client_id: str, *, scope: str) -> IssuedGrant:
        """What an authorization code exchange would have left: a user grant with its tokens."""
        with self._lock:
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
        with self._lock:
            self._kill(self._families[family_id], because)

    # Reading -----------------------------------------------------------------------------------

    def family(self, family_id: str) -> GrantFamily:
        with self._lock:
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

    def access_token_active(self, token: str) -> bool:
        with self._lock:
            entry = self._access.get(token)
            if entry is None or entry[1] <= time.time():
                return False
            family_id = entry[2]
            return family_id is None or self._families[family_id].active

    @property
    def calls(self) -> dict[str, int]:
        with self._lock:
            return dict(self._calls)

    @property
    def replays(self) -> int:
        with self._lock:
            return self._replays

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": dict(self._calls),
                "replays": self._replays,
                "rejections": len(self.rejections),
                "revocations": len(self.revocations),
            }

    # The protocol ------------------------------------------------------------------------------

    def token(self, headers: Any, form: dict[str, str]) -> dict[str, Any]:
        grant_type = form.get("grant_type", "")
        client = self._authenticate(headers, form, self.token_endpoint)
        with self._lock:
            if grant_type == "client_credentials":
                return self._client_credentials(client, form)
            if grant_type == "refresh_token":
                return self._refresh(client, form)
        raise OAuthError(400, "unsupported_grant_type", f"grant_type {grant_type!r}")

    def _client_credentials(self, client: OAuthClient, form: dict[str, str]) -> dict[str, Any]:
        if client.method == "none":
            raise OAuthError(400, "unauthorized_client", "public clients have no credentials")
        asked = form.get("scope", "").split()
        if client.scopes and not set(asked) <= client.scopes:
            raise OAuthError(400, "invalid_scope", f"not allowed: {set(asked) - client.scopes}")
        scope = self.granted_scope if self.granted_scope is not None else " ".join(asked)
        return self._answer(self._access_token(client.client_id, None), None, scope)

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

    def revoke(self, headers: Any, form: dict[str, str]) -> None:
        """RFC 7009: 200 whether or not the token was known; authenticated like /token."""
        client = self._authenticate(headers, form, self.revocation_endpoint)
        token = form.get("token", "")
        if not token:
            raise OAuthError(400, "invalid_request", "token is required")
        hint = form.get("token_type_hint", "")
        if hint not in ("", "access_token", "refresh_token"):
            raise OAuthError(400, "unsupported_token_type", hint)
        with self._lock:
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

    def _authenticate(self, headers: Any, form: dict[str, str], endpoint: str) -> OAuthClient:
        authorization = headers.get("Authorization", "")
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
        with self._lock:
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
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise OAuthError(401, "invalid_client", f"not a JWT: {exc}") from exc
        client_id = str(unverified.get("iss", ""))
        with self._lock:
            client = self._clients.get(client_id)
        if client is None or client.method != "private_key_jwt":
            raise OAuthError(401, "invalid_client", f"{client_id!r} does not use private_key_jwt")
        if "client_id" in form and form["client_id"] != client_id:
            raise OAuthError(401, "invalid_client", "client_id differs from the assertion")
        if header.get("alg") != "RS256":
            raise OAuthError(401, "invalid_client", f"alg {header.get('alg')!r}")
        with urllib.request.urlopen(client.jwks_url, timeout=10) as response:
            published = json.load(response)["keys"]
        matching = [k for k in published if k.get("kid") == header.get("kid")]
        if len(matching) != 1:
            raise OAuthError(401, "invalid_client", f"kid {header.get('kid')!r} not published")
        try:
            claims = jwt.decode(
                assertion,
                jwt.PyJWK(matching[0]),
                algorithms=["RS256"],
                audience=endpoint,
                issuer=client_id,
                options={"require": ["iss", "sub", "aud", "exp", "jti"], "strict_aud": True},
            )
        except jwt.PyJWTError as exc:
            raise OAuthError(401, "invalid_client", f"assertion refused: {exc}") from exc
        if claims["sub"] != client_id:
            raise OAuthError(401, "invalid_client", "sub must equal the client id")
        if claims["exp"] > time.time() + MAX_ASSERTION_LIFETIME:
            raise OAuthError(401, "invalid_client", "assertion lives too long")
        with self._lock:
            if claims["jti"] in self._seen_jti:
                raise OAuthError(401, "invalid_client", "assertion replayed (jti seen)")
            self._seen_jti.add(claims["jti"])
        return client

    def _count(self, grant_type: str, form: dict[str, str] | None = None) -> None:
        with self._lock:
            self._calls[grant_type or "(none)"] += 1
            if form is not None:
                self.forms.append(dict(form))

    def _reject(self, endpoint: str, exc: OAuthError) -> None:
        with self._lock:
            self.rejections.append(
                {
                    "endpoint": endpoint,
                    "status": exc.status,
                    "error": exc.error,
                    "description": exc.description,
                }
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


def _form(handler: BaseHTTPRequestHandler) -> dict[str, str]:
    content_type = handler.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type != FORM:
        raise OAuthError(400, "invalid_request", f"content type {content_type!r}, want {FORM}")
    length = int(handler.headers.get("Content-Length") or 0)
    raw = handler.rfile.read(length).decode()
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=bool(raw))
    except ValueError as exc:
        raise OAuthError(400, "invalid_request", "malformed form body") from exc
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form and name not in REPEATABLE:
            raise OAuthError(400, "invalid_request", f"parameter {name!r} repeated")
        form[name] = value
    return form


class _Handler(BaseHTTPRequestHandler):
    server_version = "StrictOAuth/1.0"

    @property
    def oauth(self) -> StrictOAuthServer:
        return self.server.oauth  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/stats":
            self._json(200, self.oauth.stats())
        elif self.path in ("/token", "/revoke"):
            self._error(self.path, OAuthError(405, "invalid_request", "POST only"))
        else:
            self._json(404, {"error": "not_found"})

    def do_POST(self) -> None:
        try:
            self._post()
        except Exception as exc:
            # A bug here must fail the test that met it, not pass as a provider outage.
            self.oauth._reject(self.path, OAuthError(500, "fake_server_bug", repr(exc)))
            raise

    def _post(self) -> None:
        oauth = self.oauth
        if self.path == "/token":
            self._token(oauth)
        elif self.path == "/revoke":
            try:
                form = _form(self)
                if oauth.revocation_status != 200:
                    self._json(oauth.revocation_status, {"error": "temporarily_unavailable"})
                    return
                oauth.revoke(self.headers, form)
            except OAuthError as exc:
                self._error("/revoke", exc)
                return
            self._json(200, {})
        else:
            self._json(404, {"error": "not_found"})

    def _token(self, oauth: StrictOAuthServer) -> None:
        try:
            form = _form(self)
        except OAuthError as exc:
            oauth._count("")
            self._error("/token", exc)
            return
        oauth._count(form.get("grant_type", ""), form)
        if oauth.hang_seconds:
            # Say nothing; the caller's read timeout has to fire. Nothing is processed.
            oauth._released.wait(oauth.hang_seconds)
            self.close_connection = True
            return
        if oauth.fail_status is not None:
            self._json(oauth.fail_status, {"error": "server_error"})
            return
        if oauth.gate is not None:
            oauth.gate.wait(timeout=60)
        try:
            body = oauth.token(self.headers, form)
        except OAuthError as exc:
            oauth._released.wait(oauth.delay_seconds)
            self._error("/token", exc)
            return
        oauth._released.wait(oauth.delay_seconds)
        self._json(200, body)

    def _error(self, endpoint: str, exc: OAuthError) -> None:
        self.oauth._reject(endpoint, exc)
        headers = {}
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="strict-oauth"'
        self._json(exc.status, {"error": exc.error, "error_description": exc.description}, headers)

    def _json(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
