"""What every provider fake shares: a loopback HTTP server with a route table, consent pages a
browser can click through, a call log, and the authorization-code and token bookkeeping a strict
authorization server keeps.

A fake answers with the provider's documented payloads (``tests/fakes/payloads/<name>/``),
filled in with the tokens it minted, and refuses what the provider refuses. Every refusal is
recorded in ``rejections`` so a test can say which check fired; a crash inside a fake is
recorded in ``bugs`` and fails the test when the fake stops, never passing as a provider outage.

The same fake serves unit, API, security and browser tests: by default its authorization
endpoint consents at once (``deny`` declines instead), so a test client can follow the redirect;
with ``consent_page`` it shows an HTML page whose buttons a real browser clicks.
"""

import base64
import copy
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit

PAYLOADS = Path(__file__).resolve().parent / "payloads"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
CODE_TTL = 600


def payload(provider: str, name: str) -> dict[str, Any]:
    """A recorded, documented response shape, without its ``_source`` note."""
    data = json.loads((PAYLOADS / provider / f"{name}.json").read_text())
    assert data.get("_source", "").startswith("https://"), f"{provider}/{name} names no source"
    data.pop("_source")
    return copy.deepcopy(data)


def fill(template: dict[str, Any], **values: Any) -> dict[str, Any]:
    """The documented payload with our values in its fields. Only fields the documentation
    shows may be set, so the shape stays the provider's."""
    for key, value in values.items():
        assert key in template, f"{key!r} is not in the documented payload"
        template[key] = value
    return template


def pkce_s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def token(prefix: str) -> str:
    return f"{prefix}{secrets.token_urlsafe(24)}"


class Refused(Exception):
    """A handler refuses the request: ``reply`` goes back, ``reason`` goes into the log."""

    def __init__(self, reply: "Reply", reason: str) -> None:
        super().__init__(reason)
        self.reply, self.reason = reply, reason


@dataclass
class Reply:
    """An answer; status 0 is no answer at all (the connection is closed unanswered)."""

    status: int
    body: Any = None  # dict/list: JSON; str: HTML (or ``content_type``); None: empty
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = ""
    #: Sent instead of ``body`` with ``Transfer-Encoding: chunked``, one chunk as each comes.
    stream: Iterable[bytes] | None = None

    def encoded(self) -> tuple[bytes, str]:
        if self.body is None:
            return b"", ""
        if isinstance(self.body, str):
            return self.body.encode(), self.content_type or "text/html; charset=utf-8"
        return json.dumps(self.body).encode(), "application/json; charset=utf-8"


#: Say nothing and close the connection: the caller's read timeout has to fire.
SILENCE = Reply(0)


def redirect(location: str) -> Reply:
    return Reply(302, None, {"Location": location})


def with_query(url: str, params: dict[str, str]) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


def error_page(reason: str, status: int = 400) -> Refused:
    """What a provider shows when it will not redirect back (bad client or redirect_uri)."""
    return Refused(Reply(status, f"<h1>Error</h1><p>{reason}</p>"), reason)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: Message
    body: bytes
    match: dict[str, str] = field(default_factory=dict)

    @property
    def content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    def form(
        self, refuse: Callable[[str], Refused], *, repeatable: frozenset[str] = frozenset()
    ) -> dict[str, str]:
        """The urlencoded body; anything else (JSON, repeated parameters but ``repeatable``
        ones, whose first value is kept) is refused."""
        if self.content_type != FORM:
            raise refuse(f"content type {self.content_type!r}, want {FORM}")
        raw = self.body.decode()
        try:
            pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=bool(raw))
        except ValueError as exc:
            raise refuse("malformed form body") from exc
        form: dict[str, str] = {}
        for name, value in pairs:
            if name in form and name not in repeatable:
                raise refuse(f"parameter {name!r} repeated")
            form.setdefault(name, value)
        return form

    def json(self, refuse: Callable[[str], Refused], *, allow_empty: bool = False) -> Any:
        if not self.body and allow_empty:
            return {}
        if self.content_type != JSON:
            raise refuse(f"content type {self.content_type!r}, want {JSON}")
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise refuse("body is not JSON") from exc

    def bearer(self) -> str:
        value = self.headers.get("Authorization") or ""
        return value[7:] if value.startswith("Bearer ") else ""

    def basic(self, *, form_encoded: bool) -> tuple[str, str] | None:
        """Basic credentials; RFC 6749 2.3.1 servers form-decode both halves, GitHub's API
        does not."""
        value = self.headers.get("Authorization") or ""
        if not value.startswith("Basic "):
            return None
        try:
            decoded = base64.b64decode(value[6:], validate=True).decode()
        except ValueError:
            return ("", "")
        client_id, _, secret = decoded.partition(":")
        if form_encoded:
            return unquote_plus(client_id), unquote_plus(secret)
        return client_id, secret


@dataclass
class IssuedCode:
    client_id: str
    redirect_uri: str
    challenge: str
    challenge_method: str
    scope: str
    extra: dict[str, Any]
    expires: float


class CodeProblem(Exception):
    """Why a code cannot be redeemed: ``unknown``, ``client``, ``redirect_uri``, ``pkce``."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind, self.detail = kind, detail


@dataclass
class TokenFamily:
    """One authorization: the refresh tokens it went through and its access tokens."""

    client_id: str
    scope: str
    refresh_token: str
    extra: dict[str, Any]
    rotated: set[str] = field(default_factory=set)
    access_tokens: set[str] = field(default_factory=set)
    active: bool = True


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


Route = tuple[str, str, Callable[[Request], Reply]]


class LoopbackServer:
    """A real HTTP server on 127.0.0.1 that answers from ``routes()``.

    Handlers take a ``Request`` and return a ``Reply``, or raise ``Refused`` (recorded through
    ``refused``). An exception escaping a handler is a bug of the fake: it is kept in ``bugs``,
    answered with a 500, and fails the test when the fake stops.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.bugs: list[str] = []
        #: Show an HTML consent page (for a browser to click) instead of consenting at once.
        self.consent_page = False
        #: Consenting at once, the person declines: authorize redirects with access_denied.
        self.deny = False
        #: Set when the fake stops: wakes handlers told to hold their answer.
        self.released = threading.Event()
        self._consents: dict[str, Callable[[bool], str]] = {}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def routes(self) -> list[Route]:
        raise NotImplementedError

    # Running -------------------------------------------------------------------------------------

    def start(self) -> Self:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        httpd.daemon_threads = True
        httpd.fake = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.released.set()
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
        if exc_type is None:
            assert self.bugs == [], self.bugs

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the fake first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    # Answering -----------------------------------------------------------------------------------

    def record(self, request: Request) -> None:
        """Every request, before it is routed."""

    def refused(self, request: Request, refusal: Refused) -> None:
        """A handler said no."""

    def dispatch(self, request: Request) -> Reply:
        self.record(request)
        # Read afresh each time: a knob (a base path) may move a route while the fake runs.
        routes = [(m, re.compile(p + r"\Z"), h) for m, p, h in self.routes()]
        for method, pattern, handler in routes:
            found = pattern.match(request.path)
            if method == request.method and found:
                request.match = found.groupdict()
                try:
                    return handler(request)
                except Refused as refusal:
                    self.refused(request, refusal)
                    return refusal.reply
        if any(pattern.match(request.path) for _, pattern, _ in routes):
            return Reply(405, {"error": "method_not_allowed"})
        return Reply(404, {"error": "not_found", "path": request.path})

    # Consent -------------------------------------------------------------------------------------

    def consent(self, *, decide: Callable[[bool], str], page: Callable[[str], str]) -> Reply:
        """Where the authorization endpoint sends the person: ``decide(allowed)`` is the
        redirect back to the client. At once (declined with ``deny``), or with ``consent_page``
        after a click on the page that ``page(ticket)`` renders; its form posts the ticket and a
        ``decision`` (``allow`` or anything else) back to the same path."""
        if not self.consent_page:
            return redirect(decide(not self.deny))
        ticket = secrets.token_urlsafe(12)
        with self.lock:
            self._consents[ticket] = decide
        return Reply(200, page(ticket))

    def decided(self, request: Request) -> Reply:
        """The consent page's form: the person clicked one of its buttons."""
        form = request.form(lambda reason: error_page(reason))
        with self.lock:
            decide = self._consents.pop(form.get("consent", ""), None)
        if decide is None:
            raise error_page("no such consent (already decided, or never shown)")
        return redirect(decide(form.get("decision") == "allow"))


class FakeProvider(LoopbackServer):
    """A provider on loopback with one registered client. Subclasses list their ``routes()``
    and keep their own rules."""

    provider = ""

    def __init__(self, *, client_id: str, client_secret: str, redirect_uri: str) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris = {redirect_uri}
        self.calls: list[Recorded] = []
        self.rejections: list[str] = []
        #: Every token endpoint answer this fake gave, in order (what the tests compare with).
        self.issued: list[dict[str, Any]] = []
        self._codes: dict[str, IssuedCode] = {}
        self._families: dict[str, TokenFamily] = {}
        self._by_refresh: dict[str, str] = {}
        self._access: dict[str, tuple[str, float]] = {}  # token -> (family id, expiry)

    # Reading -------------------------------------------------------------------------------------

    def calls_to(self, method: str, path: str) -> list[Recorded]:
        with self.lock:
            return [c for c in self.calls if c.method == method and c.path == path]

    def record(self, request: Request) -> None:
        with self.lock:
            self.calls.append(
                Recorded(
                    request.method,
                    request.path,
                    dict(request.query),
                    {k: v for k, v in request.headers.items()},
                    request.body,
                )
            )

    def refused(self, request: Request, refusal: Refused) -> None:
        with self.lock:
            self.rejections.append(f"{request.method} {request.path}: {refusal}")

    # Client authentication -----------------------------------------------------------------------

    def authenticate_client(self, request: Request, form: dict[str, str], *, methods: str) -> str:
        """RFC 6749 2.3.1: exactly one method, one the provider takes, with the right secret.
        ``methods``: space-separated, of ``client_secret_basic`` and ``client_secret_post``."""
        basic = request.basic(form_encoded=True)
        used = [
            name
            for name, present in (
                ("client_secret_basic", basic is not None),
                ("client_secret_post", "client_secret" in form),
            )
            if present
        ]
        if len(used) > 1:
            raise CodeProblem("client_auth", f"several client authentication methods: {used}")
        if not used:
            raise CodeProblem("client_auth", "no client authentication")
        if used[0] not in methods.split():
            raise CodeProblem("client_auth", f"{used[0]} is not accepted here")
        if basic is not None:
            client_id, secret = basic
            if form.get("client_id", client_id) != client_id:
                raise CodeProblem("client_auth", "client_id differs from Basic")
        else:
            client_id, secret = form.get("client_id", ""), form["client_secret"]
        if client_id != self.client_id:
            raise CodeProblem("client_auth", f"unknown client_id {client_id!r}")
        if not hmac.compare_digest(secret.encode(), self.client_secret.encode()):
            raise CodeProblem("client_auth", "bad client secret")
        return used[0]

    # The authorization endpoint ------------------------------------------------------------------

    def check_authorize(
        self,
        request: Request,
        *,
        require_response_type: bool = True,
        require_redirect_uri: bool = True,
        pkce: str = "optional",  # "optional", "required" or "ignored"
    ) -> tuple[str, str]:
        """The checks every authorization endpoint makes before it shows a consent screen;
        returns (redirect_uri, state). Failures show an error page: no redirect to an
        unverified URI."""
        query = request.query
        if query.get("client_id") != self.client_id:
            raise error_page(f"unknown client_id {query.get('client_id')!r}")
        redirect_uri = query.get("redirect_uri", "")
        if redirect_uri and redirect_uri not in self.redirect_uris:
            raise error_page(f"redirect_uri {redirect_uri!r} is not registered")
        if not redirect_uri:
            if require_redirect_uri:
                raise error_page("redirect_uri is required")
            redirect_uri = next(iter(self.redirect_uris))
        if require_response_type and query.get("response_type") != "code":
            raise error_page(f"response_type {query.get('response_type')!r}")
        if not query.get("state"):
            raise error_page("this fake insists on a state")
        if pkce != "ignored":
            challenge = query.get("code_challenge", "")
            method = query.get("code_challenge_method", "")
            if challenge and method != "S256":
                raise error_page(f"code_challenge_method {method!r}: only S256 here")
            if pkce == "required" and not challenge:
                raise error_page("PKCE is required for this client")
        return redirect_uri, query["state"]

    def issue_code(self, request: Request, *, scope: str = "", **extra: Any) -> str:
        code = token("code-")
        with self.lock:
            self._codes[code] = IssuedCode(
                client_id=request.query.get("client_id", ""),
                redirect_uri=request.query.get("redirect_uri", ""),
                challenge=request.query.get("code_challenge", ""),
                challenge_method=request.query.get("code_challenge_method", ""),
                scope=scope,
                extra=extra,
                expires=time.time() + CODE_TTL,
            )
        return code

    def code_issued(self, **extra: Any) -> str:
        """A code as if this fake's authorize page had issued it (for code injection tests)."""
        code = token("code-")
        with self.lock:
            self._codes[code] = IssuedCode(
                client_id=extra.pop("client_id", self.client_id),
                redirect_uri=extra.pop("redirect_uri", next(iter(self.redirect_uris))),
                challenge=extra.pop("challenge", ""),
                challenge_method="S256" if extra.get("challenge") else "",
                scope=extra.pop("scope", ""),
                extra=extra,
                expires=time.time() + CODE_TTL,
            )
        return code

    def expire_codes(self) -> None:
        """Every code issued so far lapses (the person took too long to come back)."""
        with self.lock:
            self._codes.clear()

    def redeem_code(
        self, code: str, *, client_id: str, redirect_uri: str | None, verifier: str
    ) -> IssuedCode:
        """Spend a code (it works once, even when the attempt fails) after the checks of
        RFC 6749 4.1.3 and RFC 7636 4.6; ``redirect_uri`` None: the provider does not ask."""
        with self.lock:
            issued = self._codes.pop(code, None)
        if issued is None or issued.expires < time.time():
            raise CodeProblem("unknown", "the code is unknown, expired or already used")
        if issued.client_id != client_id:
            raise CodeProblem("client", "the code was issued to another client")
        if redirect_uri is not None and redirect_uri != issued.redirect_uri:
            raise CodeProblem("redirect_uri", f"redirect_uri {redirect_uri!r} differs")
        if issued.challenge:
            if not verifier:
                raise CodeProblem("pkce", "code_verifier is required")
            if pkce_s256(verifier) != issued.challenge:
                raise CodeProblem("pkce", "code_verifier does not match the code_challenge")
        elif verifier:
            # RFC 9700 2.1.1: a verifier without a challenge is a downgrade attempt.
            raise CodeProblem("pkce", "code_verifier sent but no code_challenge was")
        return issued

    # Tokens --------------------------------------------------------------------------------------

    def grant_tokens(
        self,
        *,
        access_prefix: str,
        refresh_prefix: str | None,
        scope: str = "",
        expires_in: float = 3600,
        **extra: Any,
    ) -> tuple[str, str]:
        """A new authorization: its first access token and (with a prefix) refresh token."""
        family_id = secrets.token_hex(8)
        refresh = token(refresh_prefix) if refresh_prefix is not None else ""
        with self.lock:
            self._families[family_id] = TokenFamily(self.client_id, scope, refresh, extra)
            if refresh:
                self._by_refresh[refresh] = family_id
            access = self._mint_access(family_id, access_prefix, expires_in)
        return access, refresh

    def _mint_access(self, family_id: str, prefix: str, expires_in: float) -> str:
        access = token(prefix)
        self._access[access] = (family_id, time.time() + expires_in)
        self._families[family_id].access_tokens.add(access)
        return access

    def refresh_tokens(
        self,
        presented: str,
        *,
        access_prefix: str,
        refresh_prefix: str,
        rotate: bool = True,
        expires_in: float = 3600,
    ) -> tuple[str, str, TokenFamily]:
        """Spend a refresh token: a new access token, and with ``rotate`` a new refresh token
        (the old one dies; presenting it again kills the whole family, RFC 9700 4.14.2)."""
        with self.lock:
            family_id = self._by_refresh.get(presented)
            if family_id is None:
                raise CodeProblem("unknown", "unknown refresh token")
            family = self._families[family_id]
            if not family.active:
                raise CodeProblem("revoked", "the authorization was revoked")
            if presented != family.refresh_token:
                self._kill(family)
                raise CodeProblem("replayed", "a rotated refresh token was replayed")
            new_refresh = ""
            if rotate:
                family.rotated.add(presented)
                new_refresh = family.refresh_token = token(refresh_prefix)
                self._by_refresh[new_refresh] = family_id
            access = self._mint_access(family_id, access_prefix, expires_in)
            return access, new_refresh, family

    def revoke_all(self) -> None:
        """The person revokes the app at the provider: every refresh token dies."""
        with self.lock:
            for family in self._families.values():
                self._kill(family)

    def _kill(self, family: TokenFamily) -> None:
        family.active = False
        for access in family.access_tokens:
            self._access.pop(access, None)

    def access_family(self, access: str) -> TokenFamily | None:
        """The authorization behind a live access token, or None."""
        with self.lock:
            entry = self._access.get(access)
            if entry is None or entry[1] < time.time():
                return None
            family = self._families[entry[0]]
            return family if family.active else None

    def revoke_token(self, presented: str) -> str:
        """Revoke an access or refresh token; returns which it was ("" for unknown)."""
        with self.lock:
            if presented in self._by_refresh:
                self._kill(self._families[self._by_refresh[presented]])
                return "refresh_token"
            if presented in self._access:
                family_id, _ = self._access.pop(presented)
                self._families[family_id].access_tokens.discard(presented)
                return "access_token"
            return ""

    def family_of_refresh(self, refresh: str) -> TokenFamily | None:
        with self.lock:
            family_id = self._by_refresh.get(refresh)
            return self._families[family_id] if family_id else None


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeProvider/1.0"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def fake(self) -> LoopbackServer:
        return self.server.fake  # type: ignore[attr-defined,no-any-return]

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        query: dict[str, str] = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            query.setdefault(name, value)
        request = Request(self.command, parts.path, query, self.headers, body)
        try:
            reply = self.fake.dispatch(request)
        except Exception as exc:
            with self.fake.lock:
                self.fake.bugs.append(f"{self.command} {parts.path}: {exc!r}")
            reply = Reply(500, {"error": "fake_provider_bug", "detail": repr(exc)})
        if reply.status == 0:
            self.close_connection = True
            return
        if reply.stream is not None:
            self._stream(reply)
            return
        data, content_type = reply.encoded()
        self.send_response(reply.status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type or "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        assert reply.stream is not None
        try:
            for chunk in reply.stream:
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True  # the caller went away mid-stream

    do_GET = _handle
    do_POST = _handle
    do_DELETE = _handle
    do_PATCH = _handle
    do_PUT = _handle
