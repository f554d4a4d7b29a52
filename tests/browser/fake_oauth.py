"""The strict OAuth server of ``tests/oauth_server.py`` with the browser half added: an
authorization endpoint with a consent page, and the ``authorization_code`` grant (RFC 6749 4.1,
RFC 7636 PKCE).

Strict the same way: ``GET /authorize`` refuses a ``response_type`` other than ``code``, an
unknown client, a ``redirect_uri`` not registered for it, a missing ``state`` and a missing or
non-S256 PKCE challenge (OAuth 2.1 requires PKCE of every client). The token endpoint wants the
code once, within ten minutes, from the client it was issued to, with the identical
``redirect_uri`` and a ``code_verifier`` whose S256 is the challenge; a replayed code revokes the
tokens it produced (RFC 6749 4.1.2).
"""

import base64
import hashlib
import html
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit

from tests.oauth_server import IssuedGrant, OAuthError, StrictOAuthServer, _form, _Handler

CODE_LIFETIME = 600
VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")


@dataclass(frozen=True)
class PendingCode:
    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str
    issued_at: float


class ConsentOAuthServer(StrictOAuthServer):
    def __init__(self) -> None:
        super().__init__()
        self.redirect_uris: dict[str, str] = {}
        #: Every grant an authorization code was exchanged for, in order.
        self.issued: list[IssuedGrant] = []
        self._consents: dict[str, dict[str, str]] = {}
        self._codes: dict[str, PendingCode] = {}
        self._spent: dict[str, str | None] = {}  # code -> the family it produced

    def start(self) -> Self:
        super().start()
        assert self._httpd is not None
        # Nobody knows the port yet, so no request has met the plain handler.
        self._httpd.RequestHandlerClass = _ConsentHandler
        return self

    @property
    def authorization_endpoint(self) -> str:
        return f"{self.url}/authorize"

    def register_redirect(self, client_id: str, redirect_uri: str) -> None:
        with self._lock:
            self.redirect_uris[client_id] = redirect_uri

    # The browser side --------------------------------------------------------------------------

    def authorize(self, query: dict[str, str]) -> str:
        """Check an authorization request; the id of the consent page it shows."""
        client_id = query.get("client_id", "")
        with self._lock:
            client = self._clients.get(client_id)
            registered = self.redirect_uris.get(client_id)
        if client is None:
            raise OAuthError(400, "invalid_client", f"unknown client {client_id!r}")
        if not registered or query.get("redirect_uri") != registered:
            # RFC 6749 4.1.2.1: never redirect to an unverified URI; tell the person instead.
            raise OAuthError(400, "invalid_request", "redirect_uri is not registered")
        if query.get("response_type") != "code":
            raise OAuthError(400, "unsupported_response_type", query.get("response_type", ""))
        if not query.get("state"):
            raise OAuthError(400, "invalid_request", "state is required")
        if not query.get("code_challenge") or query.get("code_challenge_method") != "S256":
            raise OAuthError(400, "invalid_request", "PKCE with S256 is required")
        asked = set(query.get("scope", "").split())
        if client.scopes and not asked <= client.scopes:
            raise OAuthError(400, "invalid_scope", f"not allowed: {asked - client.scopes}")
        consent = secrets.token_urlsafe(12)
        with self._lock:
            self._consents[consent] = dict(query)
        return consent

    def decide(self, consent: str, decision: str) -> str:
        with self._lock:
            query = self._consents.pop(consent, None)
        if query is None:
            raise OAuthError(400, "invalid_request", "no such consent")
        params = {"state": query["state"]}
        if decision == "allow":
            code = secrets.token_urlsafe(24)
            with self._lock:
                self._codes[code] = PendingCode(
                    client_id=query["client_id"],
                    redirect_uri=query["redirect_uri"],
                    scope=query.get("scope", ""),
                    code_challenge=query["code_challenge"],
                    issued_at=time.time(),
                )
            params = {"code": code, **params}
        else:
            params = {"error": "access_denied", **params}
        return f"{query['redirect_uri']}?{urlencode(params)}"

    # The token endpoint ------------------------------------------------------------------------

    def token(self, headers: Any, form: dict[str, str]) -> dict[str, Any]:
        if form.get("grant_type") != "authorization_code":
            return super().token(headers, form)
        client = self._authenticate(headers, form, self.token_endpoint)
        presented = form.get("code", "")
        with self._lock:
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
            raise OAuthError(400, "invalid_grant", "code issued to another client")
        if form.get("redirect_uri") != code.redirect_uri:
            raise OAuthError(400, "invalid_grant", "redirect_uri differs from the authorization")
        verifier = form.get("code_verifier", "")
        if not VERIFIER.match(verifier):
            raise OAuthError(400, "invalid_grant", "code_verifier missing or malformed")
        digest = hashlib.sha256(verifier.encode()).digest()
        if base64.urlsafe_b64encode(digest).decode().rstrip("=") != code.code_challenge:
            raise OAuthError(400, "invalid_grant", "code_verifier does not match the challenge")
        issued = self.grant_create(client.client_id, scope=code.scope)
        with self._lock:
            self._spent[presented] = issued.family_id
            self.issued.append(issued)
            return self._answer(issued.access_token, issued.refresh_token, code.scope)


CONSENT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in to Example Identity</title></head>
<body style="font-family: sans-serif; max-width: 30rem; margin: 4rem auto">
<h1>Example Identity</h1>
<p id="request"><code>{client}</code> would like to access your account.</p>
<ul id="scopes">{scopes}</ul>
<form method="post" action="/authorize">
<input type="hidden" name="consent" value="{consent}">
<button type="submit" name="decision" value="deny">Deny</button>
<button type="submit" name="decision" value="allow">Allow</button>
</form>
</body></html>
"""


class _ConsentHandler(_Handler):
    server_version = "StrictOAuth/1.0 (with consent)"

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != "/authorize":
            super().do_GET()
            return
        query = dict(parse_qsl(parts.query))
        try:
            consent = self.oauth.authorize(query)  # type: ignore[attr-defined]
        except OAuthError as exc:
            self.oauth._reject("/authorize", exc)
            self._html(400, f"<h1>Cannot continue</h1><p>{html.escape(str(exc))}</p>")
            return
        scopes = "".join(f"<li>{html.escape(s)}</li>" for s in query.get("scope", "").split())
        self._html(
            200,
            CONSENT_PAGE.format(
                client=html.escape(query["client_id"]), scopes=scopes, consent=consent
            ),
        )

    def _post(self) -> None:
        if urlsplit(self.path).path != "/authorize":
            super()._post()
            return
        try:
            form = _form(self)
            location = self.oauth.decide(  # type: ignore[attr-defined]
                form.get("consent", ""), form.get("decision", "")
            )
        except OAuthError as exc:
            self.oauth._reject("/authorize", exc)
            self._html(400, f"<h1>Cannot continue</h1><p>{html.escape(str(exc))}</p>")
            return
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _html(self, status: int, page: str) -> None:
        data = page.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
