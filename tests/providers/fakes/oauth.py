"""The strict generic OAuth server (``tests/oauth_server.py``) with the browser half added:
an authorization endpoint at ``/authorize`` and the ``authorization_code`` grant.

The authorization endpoint shows an error page (no redirect) for an unknown client or a
``redirect_uri`` not registered for it, wants ``response_type=code`` and a state, accepts only
S256 challenges and requires one from public clients (OAuth 2.1). The code works once, for the
client it was issued to, with the same ``redirect_uri``, and only with the verifier matching its
challenge (a verifier without a challenge is refused too, RFC 9700 2.1.1). The answer is RFC 6749
section 5.1's, from the server that also refreshes, rotates and revokes.

Its RFC 8414 metadata is at ``/.well-known/oauth-authorization-server`` (``issuer`` = its URL).
With ``iss_supported`` the metadata says ``authorization_response_iss_parameter_supported`` and
every authorization response (errors too) carries ``iss`` (RFC 9207); ``iss_sent`` makes it send
another value instead, or none at all (``""``), as a mixed-up or lying server would.
"""

import json
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
        #: RFC 9207: advertise the iss parameter and send it on every authorization response.
        self.iss_supported = False
        #: What to send as iss instead of the issuer ("" sends none), whatever is advertised.
        self.iss_sent: str | None = None
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

    @property
    def issuer(self) -> str:
        return self.url

    def metadata(self) -> dict[str, Any]:
        """RFC 8414 section 2 (with RFC 9207's and RFC 7636's additions)."""
        with self._lock:
            methods = sorted({client.method for client in self._clients.values()})
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.authorization_endpoint,
            "token_endpoint": self.token_endpoint,
            "revocation_endpoint": self.revocation_endpoint,
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": methods or ["client_secret_basic"],
            "authorization_response_iss_parameter_supported": self.iss_supported,
        }

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
            return self._response(redirect_uri, {"error": "access_denied", "state": state})
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = Code(
                client.client_id,
                redirect_uri,
                query.get("scope", ""),
                challenge,
                time.time() + CODE_TTL,
            )
        return self._response(redirect_uri, {"code": code, "state": state})

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
        server: AuthorizingOAuthServer = self.oauth  # type: ignore[assignment]
        if parts.path == "/.well-known/oauth-authorization-server":
            body = json.dumps(server.metadata()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if parts.path != "/authorize":
            super().do_GET()
            return
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
