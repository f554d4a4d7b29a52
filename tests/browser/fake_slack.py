"""Slack's OAuth v2 install, on loopback, with a consent page a browser clicks through.

Strict where Slack is strict (https://api.slack.com/authentication/oauth-v2 and
https://api.slack.com/methods/oauth.v2.access):

* ``GET /oauth/v2/authorize`` refuses an unknown ``client_id``, a ``redirect_uri`` other than the
  one registered for the app, a missing ``scope`` and unknown scopes, with an HTML error page;
  otherwise it shows the consent page, with "Allow" and "Cancel" (form POSTs, no JavaScript);
* "Allow" redirects to ``redirect_uri`` with ``code`` and ``state``; "Cancel" with
  ``error=access_denied`` and ``state``;
* ``POST /api/oauth.v2.access`` takes ``application/x-www-form-urlencoded`` only, the client
  either as ``client_id`` + ``client_secret`` in the body or as Basic (never both), a code that
  is single use, ten minutes old at most and issued to that client, and the same
  ``redirect_uri`` the authorize step had. Like Slack it answers HTTP 200 with
  ``{"ok": false, "error": …}`` when it refuses.

The success answer has the documented shape of oauth.v2.access (the example on its page, with
this fake's own values); ``installs`` records what each one handed out.
"""

import base64
import html
import json
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit

FORM = "application/x-www-form-urlencoded"
CODE_LIFETIME = 600  # seconds; Slack: "codes expire after ten minutes"
#: Scopes this fake knows; Slack refuses others with ``invalid_scope``.
KNOWN_SCOPES = frozenset(
    {"chat:write", "channels:read", "channels:history", "commands", "users:read", "team:read"}
)


@dataclass(frozen=True)
class Code:
    client_id: str
    redirect_uri: str
    scope: str
    issued_at: float


@dataclass(frozen=True)
class Install:
    """What one successful oauth.v2.access handed out."""

    team_id: str
    team_name: str
    bot_token: str
    scope: str


class SlackRefusal(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class FakeSlack:
    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        team_id: str = "T9TK3CUKW",
        team_name: str = "Slack Softball Team",
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.team_id = team_id
        self.team_name = team_name
        self.installs: list[Install] = []
        self.refusals: list[str] = []
        self._lock = threading.Lock()
        self._pending: dict[str, dict[str, str]] = {}  # consent page id -> authorize params
        self._codes: dict[str, Code] = {}
        self._used_codes: set[str] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        httpd.daemon_threads = True
        httpd.slack = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._httpd is not None
        assert self._thread is not None
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        assert self._httpd is not None, "use FakeSlack as a context manager"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    # The browser side --------------------------------------------------------------------------

    def authorize(self, query: dict[str, str]) -> str:
        """Check the authorize request; the id of the consent it shows."""
        if query.get("client_id") != self.client_id:
            raise SlackRefusal("invalid_client_id")
        if query.get("redirect_uri", self.redirect_uri) != self.redirect_uri:
            raise SlackRefusal("bad_redirect_uri")
        scopes = [s for s in query.get("scope", "").split(",") if s]
        if not scopes:
            raise SlackRefusal("invalid_scope")
        unknown = set(scopes) - KNOWN_SCOPES
        if unknown:
            raise SlackRefusal(f"invalid_scope: {', '.join(sorted(unknown))}")
        consent = secrets.token_urlsafe(12)
        with self._lock:
            self._pending[consent] = dict(query)
        return consent

    def decide(self, consent: str, decision: str) -> str:
        """The person clicked Allow or Cancel: where Slack sends the browser next."""
        with self._lock:
            query = self._pending.pop(consent, None)
        if query is None:
            raise SlackRefusal("invalid_consent")
        redirect_uri = query.get("redirect_uri", self.redirect_uri)
        params = {"state": query.get("state", "")}
        if decision == "allow":
            code = f"{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"
            with self._lock:
                self._codes[code] = Code(
                    client_id=query["client_id"],
                    redirect_uri=query.get("redirect_uri", ""),
                    scope=query["scope"],
                    issued_at=time.time(),
                )
            params = {"code": code, **params}
        else:
            params = {"error": "access_denied", **params}
        return f"{redirect_uri}?{urlencode(params)}"

    # The server side ---------------------------------------------------------------------------

    def access(self, authorization: str, form: dict[str, str]) -> dict[str, Any]:
        if authorization:
            if "client_secret" in form:
                raise SlackRefusal("invalid_arguments")
            decoded = base64.b64decode(authorization.removeprefix("Basic ")).decode()
            client_id, _, secret = decoded.partition(":")
            form = {**form, "client_id": client_id}
        else:
            secret = form.get("client_secret", "")
        if form.get("client_id") != self.client_id:
            raise SlackRefusal("invalid_client_id")
        if secret != self.client_secret:
            raise SlackRefusal("bad_client_secret")
        if form.get("grant_type", "authorization_code") != "authorization_code":
            raise SlackRefusal("invalid_grant_type")
        presented = form.get("code", "")
        with self._lock:
            code = self._codes.pop(presented, None)
            replayed = presented in self._used_codes
            self._used_codes.add(presented)
        if code is None:
            raise SlackRefusal("code_already_used" if replayed else "invalid_code")
        if time.time() - code.issued_at > CODE_LIFETIME:
            raise SlackRefusal("invalid_code")
        if code.client_id != form["client_id"]:
            raise SlackRefusal("invalid_code")
        if form.get("redirect_uri", "") != code.redirect_uri:
            raise SlackRefusal("bad_redirect_uri")
        install = Install(
            team_id=self.team_id,
            team_name=self.team_name,
            bot_token=f"xoxb-17653672481-{secrets.randbelow(10**11)}-{secrets.token_hex(12)}",
            scope=code.scope,
        )
        with self._lock:
            self.installs.append(install)
        # The example answer of https://api.slack.com/methods/oauth.v2.access (no token rotation,
        # no user scopes asked, so authed_user carries only the installer's id).
        return {
            "ok": True,
            "access_token": install.bot_token,
            "token_type": "bot",
            "scope": install.scope,
            "bot_user_id": "U0KRQLJ9H",
            "app_id": "A0KRD7HC3",
            "team": {"name": install.team_name, "id": install.team_id},
            "enterprise": None,
            "authed_user": {"id": "U1234"},
            "is_enterprise_install": False,
        }

    def refuse(self, error: str) -> None:
        with self._lock:
            self.refusals.append(error)


CONSENT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Slack</title>
<style>
body {{ font-family: sans-serif; background: #f8f8f8; margin: 0; }}
main {{ max-width: 32rem; margin: 4rem auto; background: #fff; padding: 2rem;
        border: 1px solid #ddd; border-radius: 8px; }}
button {{ font-size: 1rem; padding: .6rem 1.4rem; border-radius: 4px; cursor: pointer; }}
.allow {{ background: #007a5a; color: #fff; border: 0; }}
</style></head>
<body><main>
<h1>Slack</h1>
<p id="request">An app is requesting permission to access the
<strong>{team}</strong> Slack workspace.</p>
<p>It will be able to:</p>
<ul id="scopes">{scopes}</ul>
<form method="post" action="/oauth/v2/authorize">
<input type="hidden" name="consent" value="{consent}">
<button type="submit" name="decision" value="cancel">Cancel</button>
<button class="allow" type="submit" name="decision" value="allow">Allow</button>
</form>
</main></body></html>
"""


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeSlack/1.0"

    @property
    def slack(self) -> FakeSlack:
        return self.server.slack  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != "/oauth/v2/authorize":
            self._send(404, "text/plain", b"not found")
            return
        query = dict(parse_qsl(parts.query))
        try:
            consent = self.slack.authorize(query)
        except SlackRefusal as exc:
            self.slack.refuse(exc.error)
            page = f"<!doctype html><title>Slack</title><h1>Something went wrong</h1><p>{exc}</p>"
            self._send(400, "text/html; charset=utf-8", page.encode())
            return
        scopes = "".join(
            f"<li><code>{html.escape(s)}</code></li>" for s in query["scope"].split(",")
        )
        page = CONSENT_PAGE.format(
            team=html.escape(self.slack.team_name), scopes=scopes, consent=consent
        )
        self._send(200, "text/html; charset=utf-8", page.encode())

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
        if path == "/oauth/v2/authorize":
            try:
                location = self.slack.decide(form.get("consent", ""), form.get("decision", ""))
            except SlackRefusal as exc:
                self.slack.refuse(exc.error)
                self._send(400, "text/plain", str(exc).encode())
                return
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/api/oauth.v2.access":
            try:
                if content_type != FORM:
                    raise SlackRefusal("invalid_form_data")
                body = self.slack.access(self.headers.get("Authorization", ""), form)
            except SlackRefusal as exc:
                self.slack.refuse(exc.error)
                body = {"ok": False, "error": exc.error}
            self._send(200, "application/json; charset=utf-8", json.dumps(body).encode())
        else:
            self._send(404, "text/plain", b"not found")

    def _send(self, status: int, content_type: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
