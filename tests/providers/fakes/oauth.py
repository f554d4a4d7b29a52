"""The strict generic OAuth server (``tests/oauth_server.py``) with the browser half added:
an authorization endpoint at ``/authorize`` and the ``authorization_code`` grant.

The authorization endpoint shows an error page (no redirect) for an unknown client or a
``redirect_uri`` not registered for it, wants ``response_type=code`` and a state, accepts only
S256 challenges and requires one from public clients (OAuth 2.1). The code works once, for the
client it was issued to, with the same ``redirect_uri``, and only with the verifier matching its
challenge (a verifier without a challenge is refused too, RFC 9700 2.1.1). The answer is RFC 6749
section 5.1's, from the server that also refreshes, rotates and revokes.
"""

import secrets
import threading
import time
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from tests.oauth_server import OAuthClient, OAuthError, StrictOAuthServer, _Handler
from tests.providers.fakes.base import fill, payload, pkce_s256, with_query

CODE_TTL = 600


@dataclass
class Code:
    client_id: str
    redirect_uri: str
    scope: str
    challenge: str
    expires: float


class AuthorizingOAuthServer(StrictOAuthServer):
    def __init__(self) -> None:
        super().__init__()
        self.redirect_uris: dict[str, set[str]] = {}
        self.deny = False
        self.subject = "user-4242"
        self._codes: dict[str, Code] = {}
        self.bugs: list[str] = []
        #: Every authorization code answer, in order.
        self.issued: list[dict[str, Any]] = []

    def start(self) -> Self:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _AuthorizingHandler)
        httpd.daemon_threads = True
        httpd.oauth = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    @property
    def authorization_endpoint(self) -> str:
        return f"{self.url}/authorize"

    def register_redirect(self, client_id: str, redirect_uri: str) -> None:
        self.redirect_uris.setdefault(client_id, set()).add(redirect_uri)

    def expire_codes(self) -> None:
        with self._lock:
            self._codes.clear()

    # The authorization endpoint ------------------------------------------------------------------

    def authorize(self, query: dict[str, str]) -> str:
        """Where to send the browser (code or error); an OAuthError shows an error page."""
        with self._lock:
            client = self._clients.get(query.get("client_id", ""))
        if client is None:
            raise OAuthError(400, "invalid_client", f"unknown client {query.get('client_id')!r}")
        redirect_uri = query.get("redirect_uri", "")
        if redirect_uri not in self.redirect_uris.get(client.client_id, set()):
            raise OAuthError(400, "invalid_request", f"redirect_uri {redirect_uri!r} unknown")
        if query.get("response_type") != "code":
            raise OAuthError(400, "unsupported_response_type", str(query.get("response_type")))
        state = query.get("state", "")
        if not state:
            raise OAuthError(400, "invalid_request", "this server insists on a state")
        challenge = query.get("code_challenge", "")
        if challenge and query.get("code_challenge_method") != "S256":
            raise OAuthError(400, "invalid_request", "only S256 challenges")
        if client.method == "none" and not challenge:
            raise OAuthError(400, "invalid_request", "public clients must use PKCE")
        if self.deny:
            return with_query(redirect_uri, {"error": "access_denied", "state": state})
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = Code(
                client.client_id,
                redirect_uri,
                query.get("scope", ""),
                challenge,
                time.time() + CODE_TTL,
            )
        return with_query(redirect_uri, {"code": code, "state": state})

    # The token endpoint --------------------------------------------------------------------------

    def token(self, headers: Any, form: dict[str, str]) -> dict[str, Any]:
        if form.get("grant_type") != "authorization_code":
            return super().token(headers, form)
        client = self._authenticate(headers, form, self.token_endpoint)
        return self._authorization_code(client, form)

    def _authorization_code(self, client: OAuthClient, form: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            code = self._codes.pop(form.get("code", ""), None)
        if code is None or code.expires < time.time():
            raise OAuthError(400, "invalid_grant", "unknown, expired or used code")
        if code.client_id != client.client_id:
            raise OAuthError(400, "invalid_grant", "the code was issued to another client")
        if form.get("redirect_uri", "") != code.redirect_uri:
            raise OAuthError(400, "invalid_grant", "redirect_uri differs from the authorization")
        verifier = form.get("code_verifier", "")
        if code.challenge and pkce_s256(verifier) != code.challenge:
            raise OAuthError(400, "invalid_grant", "code_verifier does not match the challenge")
        if verifier and not code.challenge:
            raise OAuthError(400, "invalid_grant", "code_verifier without a code_challenge")
        scope = self.granted_scope if self.granted_scope is not None else code.scope
        issued = self.grant_create(client.client_id, scope=scope)
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
        with self._lock:
            self.issued.append(body)
        return body


class _AuthorizingHandler(_Handler):
    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != "/authorize":
            super().do_GET()
            return
        server: AuthorizingOAuthServer = self.oauth  # type: ignore[assignment]
        query: dict[str, str] = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            query.setdefault(name, value)
        try:
            location = server.authorize(query)
        except OAuthError as exc:
            server._reject("/authorize", exc)
            body = f"<h1>{exc.error}</h1><p>{exc.description}</p>".encode()
            self.send_response(400)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        except Exception as exc:
            server.bugs.append(repr(exc))
            raise
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()
