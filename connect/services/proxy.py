"""The authenticated proxy: a deployment calls a provider's API through Connect, which adds the
grant's token, so the token never leaves Connect (SPEC section 15).

``/v1/connect/proxy/{connector}/{path}``: the caller authenticates as for the token endpoint,
names the subject and installation in ``Connect-Subject`` / ``Connect-Installation``; the grant
is chosen and its token obtained by the token endpoint's own services (``tokens.grant_choose``,
``tokens.token_obtain``: same link and environment checks, same refresh). The request goes to
the connector type's API base from the registry (``Provider.proxy_base_url``) through the SSRF
guard, with the provider's ``Authorization``; on a 401 the grant is renewed and the request
sent once more. The answer streams back as the provider gave it: status, body, and the headers
of ``ANSWER_HEADERS`` and ``ANSWER_HEADER_PATTERN`` (content, caching, paging, rate limits).

Nothing of the caller's own credentials goes on: not its ``Authorization``, not its cookies,
not the ``Connect-*`` headers, not hop-by-hop headers. The path is checked on the request
target exactly as it arrived (``proxy_target``), since the WSGI server and Django decode
``%2F`` and ``%2E`` before routing.
"""

import logging
import re
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import unquote, urlsplit

import requests
from django.conf import settings
from django.db import connection, models
from django.utils import timezone

from connect import errors, http, ratelimits
from connect.callers import Caller
from connect.models import Connector, Grant, ProxyCall
from connect.services import grants, tokens
from connect.web_urls import UnsafeURL, check_web_url

logger = logging.getLogger(__name__)

#: Where the proxy lives; what follows is ``{connector}/{path}``.
PREFIX = "/v1/connect/proxy/"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

#: RFC 9110 section 7.6.1, and the proxy ones: they describe one connection, never forwarded.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
#: Never sent to the provider: the caller's credentials and cookies, what the proxy sets
#: itself, and what would tell the provider about Connect's own network.
NOT_FORWARDED = HOP_BY_HOP | {
    "authorization",
    "cookie",
    "host",
    "content-length",
    "expect",
    "forwarded",
    "via",
    "x-real-ip",
    "x-request-id",
}
NOT_FORWARDED_PREFIXES = ("connect-", "x-forwarded-", "proxy-")

#: The provider's answer headers passed back (besides ``ANSWER_HEADER_PATTERN``): never its
#: cookies, nor headers about its own connection or its site's browser policies.
ANSWER_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "content-encoding",
        "content-language",
        "content-disposition",
        "content-range",
        "accept-ranges",
        "etag",
        "last-modified",
        "cache-control",
        "expires",
        "vary",
        "link",
        "location",
        "retry-after",
        "www-authenticate",
    }
)
#: Rate limits (X-RateLimit-*, RateLimit-*, x-ms-ratelimit-*, Sforce-Limit-Info) and what
#: providers answer about scopes and their own request ids.
ANSWER_HEADER_PATTERN = re.compile(
    r"(.*rate-?limit.*|sforce-limit-info|x-github-.+|x-oauth-scopes|x-accepted-oauth-scopes"
    r"|x-slack-.+|x-ms-.+|request-id|client-request-id|x-envoy-upstream-service-time)",
    re.IGNORECASE,
)

# What a path may hold, as it arrived: RFC 3986 pchar and "/" (percent escapes checked apart).
_PATH_CHARS = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*")
_QUERY_CHARS = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?%\[\]|{}^`\"<>]*")
_ESCAPE = re.compile(r"%(..)?", re.DOTALL)
_CONNECTOR = re.compile(r"scl_[A-Za-z0-9]+|[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*")
STREAM_CHUNK = 64 * 1024


# The request target --------------------------------------------------------------------------


@dataclass(frozen=True)
class ProxyTarget:
    connector_ref: str
    #: The provider path as it arrived (percent escapes kept), checked: starts with "/".
    path: str
    query: str = ""


def _refuse(reason: str) -> errors.ConnectError:
    return errors.InvalidRequest(f"The proxied path is refused: {reason}.")


def _check_escapes(path: str) -> None:
    """Percent escapes: well formed, and never for what would change the path's shape once
    decoded (``/`` ``\\`` ``.``), a second round of decoding (``%``), or a control byte."""
    for match in _ESCAPE.finditer(path):
        pair = match.group(1) or ""
        if not re.fullmatch(r"[0-9A-Fa-f]{2}", pair):
            raise _refuse("a malformed percent escape")
        byte = int(pair, 16)
        if chr(byte) in "/\\.%" or byte < 0x20 or byte == 0x7F:
            raise _refuse(f"an encoded {chr(byte)!r}" if byte >= 0x20 else "an encoded control")


def proxy_path_check(path: str) -> str:
    """The provider path (what follows the connector, as it arrived), or ``invalid_request``.

    It can only name a resource under the API base: it starts with ``/``; its segments are
    RFC 3986 characters (no backslash, space, control or non-ASCII character), never empty
    but the last (no ``//host``), never ``.`` or ``..``; the first holds no ``:`` (``https:``)
    or ``@`` (``user@host``); and no escape decodes to ``/``, ``\\``, ``.``, ``%`` or a control
    byte, so no server down the line can decode one into a separator or a dot segment.
    """
    if not path or path[0] != "/":
        raise _refuse("name a path after the connector")
    if not _PATH_CHARS.fullmatch(path):
        raise _refuse("a character outside RFC 3986's path characters")
    _check_escapes(path)
    segments = path[1:].split("/")
    for index, segment in enumerate(segments):
        if segment == "" and index != len(segments) - 1:
            raise _refuse("an empty segment")
        if segment in (".", ".."):
            raise _refuse("a dot segment")
    if ":" in segments[0] or "@" in segments[0]:
        raise _refuse("an absolute URL or an authority")
    return path


def proxy_target(raw_target: str, *, script_name: str = "") -> ProxyTarget:
    """The connector, path and query of a proxy request target exactly as it arrived.

    The connector is an ``scl_`` id, or a ``service/name`` uid (as two segments, or one with
    its slash escaped as ``%2F``).
    """
    if not raw_target.startswith("/"):
        parts = urlsplit(raw_target)  # the absolute form: GET http://host/v1/… HTTP/1.1
        raw_target = parts.path + (f"?{parts.query}" if parts.query else "")
    path, _, query = raw_target.partition("?")
    prefix = script_name.rstrip("/") + PREFIX
    if not path.startswith(prefix):
        raise _refuse("not under the proxy's prefix")
    rest = path[len(prefix) :]
    first, slash, remainder = rest.partition("/")
    if first.startswith("scl_"):
        connector_ref, provider_path = first, slash + remainder
    elif "%2f" in first.lower():
        connector_ref, provider_path = unquote(first), slash + remainder
    else:
        second, slash2, remainder2 = remainder.partition("/")
        connector_ref, provider_path = f"{first}/{second}", slash2 + remainder2
    if not _CONNECTOR.fullmatch(connector_ref):
        raise errors.NotFound("No such connector.")
    if not _QUERY_CHARS.fullmatch(query):
        raise _refuse("a character a query may not hold")
    return ProxyTarget(connector_ref, proxy_path_check(provider_path), query)


def target_url(base: str, target: ProxyTarget) -> str:
    """``base`` and the checked path: and, however a URL parser reads it, still under base."""
    url = base.rstrip("/") + target.path + (f"?{target.query}" if target.query else "")
    parsed, within = urlsplit(url), urlsplit(base)
    if (parsed.scheme, parsed.netloc) != (within.scheme, within.netloc) or not (
        parsed.path.startswith(within.path.rstrip("/") + "/")
    ):
        raise _refuse("it leaves the API base")
    return url


# The request ---------------------------------------------------------------------------------


def forwarded_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """What of the caller's headers goes to the provider (see ``NOT_FORWARDED``), and the
    encodings it accepts (``identity`` unless it named some: the body is passed as it comes)."""
    named = {
        name.strip().lower() for name in headers.get("Connection", "").split(",") if name.strip()
    }
    kept: dict[str, str] = {}
    for name, value in headers.items():
        low = name.lower()
        if low in NOT_FORWARDED or low in named or low.startswith(NOT_FORWARDED_PREFIXES):
            continue
        kept[name] = value
    if not any(name.lower() == "accept-encoding" for name in kept):
        kept["Accept-Encoding"] = "identity"
    return kept


def answer_headers(raw: Any) -> list[tuple[str, str]]:
    """The provider's answer headers that go back to the caller (repeated ones joined)."""
    named = {n.strip().lower() for n in (raw.get("Connection") or "").split(",") if n.strip()}
    joined: dict[str, tuple[str, list[str]]] = {}
    for name, value in raw.items():
        low = name.lower()
        if low in HOP_BY_HOP or low in named or low == "set-cookie":
            continue
        if low in ANSWER_HEADERS or ANSWER_HEADER_PATTERN.fullmatch(low):
            joined.setdefault(low, (name, []))[1].append(value)
    return [(name, ", ".join(values)) for name, values in joined.values()]


def body_read(stream: IO[bytes] | Any, *, length: int | None, limit: int, ends_at: float) -> Any:
    """The caller's body, at most ``limit`` bytes, in memory up to Django's in-memory limit
    (``FILE_UPLOAD_MAX_MEMORY_SIZE``) and on disk beyond it; rewound, ready to send (again).
    ``length`` None: the server ends the stream (a chunked upload). Raises
    ``payload_too_large``, or ``provider_timeout`` past ``ends_at`` (monotonic)."""
    if length is not None and length > limit:
        raise errors.PayloadTooLarge(f"The body is larger than {limit} bytes.")
    spool = tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE)  # noqa: SIM115
    read = 0
    try:
        while length is None or read < length:
            if time.monotonic() > ends_at:
                raise errors.ProviderTimeout("The body took too long to arrive.")
            want = STREAM_CHUNK if length is None else min(STREAM_CHUNK, length - read)
            chunk = stream.read(want)
            if not chunk:
                break
            read += len(chunk)
            if read > limit:
                raise errors.PayloadTooLarge(f"The body is larger than {limit} bytes.")
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


@dataclass(frozen=True)
class ProxyAsk:
    caller: Caller
    target: ProxyTarget
    method: str
    #: The ``Connect-Subject`` and ``Connect-Installation`` headers.
    subject_header: str
    installation_header: str
    headers: Mapping[str, str] = field(repr=False)
    #: Monotonic moment the whole call must have ended by (``CONNECT_PROXY_TIMEOUT``).
    ends_at: float = 0.0


def subject_from_header(caller: Caller, value: str) -> tokens.TokenAsk:
    """``app`` or ``user:<id>`` (a user of the caller's own project, as at the token
    endpoint)."""
    value = value.strip()
    if value == "app":
        return tokens.TokenAsk(subject=caller.subject(type="app"))
    kind, colon, user_id = value.partition(":")
    if kind == "user" and colon and user_id:
        return tokens.TokenAsk(subject=caller.subject(type="user", id=user_id))
    raise errors.InvalidRequest("Send Connect-Subject: app, or user:<id>.")


# Calls in flight -----------------------------------------------------------------------------

_process_slots: dict[int, threading.BoundedSemaphore] = {}
_process_slots_guard = threading.Lock()


def _process_semaphore() -> threading.BoundedSemaphore:
    limit = settings.CONNECT_PROXY_PROCESS_CONCURRENCY
    with _process_slots_guard:
        if limit not in _process_slots:
            _process_slots[limit] = threading.BoundedSemaphore(limit)
        return _process_slots[limit]


@dataclass
class _Slots:
    """This call's place among the process's and the team's calls in flight."""

    semaphore: threading.BoundedSemaphore | None = None
    team: ratelimits.InFlight | None = None

    def release(self) -> None:
        if self.team is not None:
            self.team.release()
            self.team = None
        if self.semaphore is not None:
            self.semaphore.release()
            self.semaphore = None


def _slots_take(caller: Caller) -> _Slots:
    semaphore = _process_semaphore()
    if not semaphore.acquire(blocking=False):
        raise errors.RateLimited(
            "Too many proxied calls in flight on this server; try again shortly.", retry_after=1
        )
    slots = _Slots(semaphore=semaphore)
    limit = settings.CONNECT_PROXY_TEAM_CONCURRENCY
    slots.team = ratelimits.in_flight_acquire(
        bucket=f"proxy:team:{caller.team_id}",
        limit=limit,
        seconds=settings.CONNECT_PROXY_TIMEOUT_SECONDS + 5,
    )
    if slots.team is None:
        slots.release()
        raise errors.RateLimited(
            f"More than {limit} proxied calls in flight for this team; try again shortly.",
            retry_after=1,
        )
    return slots


# Recording -----------------------------------------------------------------------------------


@dataclass
class CallRecord:
    """What is known of a call so far; ``save`` writes it once, as a ``ProxyCall``."""

    caller: Caller
    method: str
    path: str
    started: float = field(default_factory=time.monotonic)
    connector: Connector | None = None
    grant: Grant | None = None
    retried: bool = False
    request_bytes: int = 0
    saved: bool = False

    def save(
        self,
        *,
        outcome: str,
        status: int,
        error_code: str = "",
        response_bytes: int = 0,
    ) -> None:
        if self.saved:
            return
        self.saved = True
        try:
            ProxyCall.objects.create(
                team_id=self.caller.team_id,
                connector=self.connector,
                grant=self.grant,
                project_id=self.caller.project_id,
                environment=self.caller.environment,
                method=self.method[:10],
                path=self.path[:512],
                outcome=outcome,
                status=status,
                error_code=error_code[:60],
                retried=self.retried,
                latency_ms=int((time.monotonic() - self.started) * 1000),
                request_bytes=self.request_bytes,
                response_bytes=response_bytes,
                created_at=timezone.now(),
            )
        except Exception:
            # The call itself has been answered; a lost record must not turn it into an error.
            logger.exception("could not record a proxied call")


# Sending -------------------------------------------------------------------------------------


class StreamCut(Exception):
    """The provider's body stopped short (the deadline, or its connection broke) after the
    answer's head had gone back: the caller's connection is ended without a clean end."""


class ProxiedAnswer:
    """The provider's answer: ``status``, ``headers``, and the body streamed by iterating.
    ``close`` (called by the server when it is done, read to the end or not) ends the call:
    the provider's connection, the deadline, the slots, and the call's record."""

    def __init__(
        self,
        *,
        response: requests.Response,
        session: http.GuardedSession,
        deadline: http.Deadline,
        slots: _Slots,
        record: CallRecord,
    ) -> None:
        self.status = response.status_code
        self.headers = answer_headers(response.raw.headers)
        self._response, self._session = response, session
        self._deadline, self._slots, self._record = deadline, slots, record
        self._sent = 0
        self._failed = False
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        raw = self._response.raw
        try:
            remaining = self._deadline.remaining()
            if remaining <= 0:
                raise http.DeadlineExceeded("the answer took too long")
            conn = raw.connection
            if conn is not None and conn.sock is not None:
                conn.sock.settimeout(remaining)
            chunk = raw.read1(STREAM_CHUNK, decode_content=False)
        except Exception as exc:
            self._failed = True
            logger.warning("proxied answer cut after %d bytes: %r", self._sent, exc)
            raise StreamCut(str(exc)) from exc
        if not chunk:
            if self._deadline.passed():
                self._failed = True
                raise StreamCut("the answer took too long")
            raise StopIteration
        self._sent += len(chunk)
        return bytes(chunk)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._response.close()
            self._session.close()
        finally:
            self._deadline.close()
            self._slots.release()
            self._record.save(
                outcome=ProxyCall.Outcome.FAILED if self._failed else ProxyCall.Outcome.ANSWERED,
                status=self.status,
                response_bytes=self._sent,
            )


def _send(
    session: http.GuardedSession,
    *,
    method: str,
    url: str,
    headers: dict[str, str],
    body: Any,
    deadline: http.Deadline,
) -> requests.Response:
    if body is not None:
        body.seek(0)
    remaining = deadline.remaining()
    if remaining <= 0:
        raise errors.ProviderTimeout("The provider did not answer in time.")
    try:
        return session.request(
            method,
            url,
            headers=headers,
            data=body,
            stream=True,
            timeout=(min(http.CONNECT_TIMEOUT, remaining), remaining),
        )
    except http.BlockedDestination as exc:
        logger.warning("proxy target refused by the SSRF guard: %s", exc)
        raise errors.Forbidden(
            "The connector's API base is not an address Connect may call."
        ) from exc
    except requests.RequestException as exc:
        # The deadline cuts the socket: that reads as a broken connection, not a timeout.
        if isinstance(exc, requests.Timeout) or deadline.passed():
            raise errors.ProviderTimeout("The provider did not answer in time.") from exc
        logger.warning("proxy target unreachable: %r", exc)
        raise errors.ProviderUnavailable(
            "The provider could not be reached.", retry_after=grants.PROVIDER_RETRY_AFTER
        ) from exc


def _api_base(choice: tokens.GrantChoice) -> str:
    connector = choice.connector
    base = choice.provider.proxy_base_url(connector.config, choice.installation.metadata or {})
    if not base:
        hint = ": set apiBaseUrl in its configuration" if connector.type == "oauth" else ""
        raise errors.InvalidRequest(
            f"This {choice.provider.label} connector has no API base for the proxy{hint}."
        )
    try:
        return check_web_url(base).rstrip("/")
    except UnsafeURL as exc:
        raise errors.InvalidRequest(f"The connector's API base {exc}.") from exc


def proxy_call(*, ask: ProxyAsk, body: Any, record: CallRecord) -> ProxiedAnswer:
    """Send one proxied call and return the provider's answer, its body still to stream.

    Raises the API's errors (the token endpoint's, ``invalid_request`` for a path or a type
    without an API base, ``forbidden`` for a base the SSRF guard refuses, ``rate_limited`` when
    the team or this process has too many calls in flight, ``provider_unavailable``,
    ``provider_timeout``); the caller records those. Once an answer is returned, closing it
    records the call.
    """
    caller = ask.caller
    token_ask = subject_from_header(caller, ask.subject_header)
    installation = ask.installation_header.strip() or None
    token_ask = tokens.TokenAsk(subject=token_ask.subject, installation_ref=installation)
    try:
        choice = tokens.grant_choose(
            caller=caller, connector_ref=ask.target.connector_ref, ask=token_ask
        )
    except errors.ConnectError:
        # For the record (the Activity page lists refusals by connector): the team's own only.
        ref = ask.target.connector_ref
        record.connector = (
            Connector.objects.filter(team_id=caller.team_id)
            .filter(models.Q(public_id=ref) | models.Q(uid=ref))
            .first()
        )
        raise
    record.connector = choice.connector
    base = _api_base(choice)
    url = target_url(base, ask.target)
    slots = _slots_take(caller)
    deadline = http.Deadline(max(ask.ends_at - time.monotonic(), 0.0))
    session = http.session()
    answered = False
    try:
        obtained = tokens.token_obtain(choice=choice, now=timezone.now())
        grant = obtained.grant
        record.grant = grant if grant.pk else None
        if not choice.provider.static_token and not grant.tokens_belong_to(
            choice.connector.grant_endpoints_digest()
        ):
            raise errors.NoToken(
                "The connector's API addresses changed after this grant's tokens were issued; "
                "the subject must authorize again."
            )
        if getattr(connection, "pool", None) is not None and not connection.in_atomic_block:
            # The provider may take the whole time limit: the database connection goes back
            # to the pool meanwhile (a refresh on 401 takes one again).
            connection.close()
        headers = forwarded_headers(ask.headers)
        subject_type = grant.subject_type
        headers["Authorization"] = choice.provider.proxy_authorization(
            obtained.token, subject_type=subject_type
        )
        deadline.__enter__()
        response = _send(
            session, method=ask.method, url=url, headers=headers, body=body, deadline=deadline
        )
        if response.status_code == 401 and not choice.provider.static_token:
            response.close()
            record.retried = True
            renewed = grants.grant_refresh_on_demand(
                grant_id=grant.pk,
                connector=choice.connector,
                provider=choice.provider,
                request=choice.request,
                wait=max(min(settings.CONNECT_PROVIDER_WAIT_SECONDS, deadline.remaining()), 0),
                rejected_version=grant.version,
            )
            headers["Authorization"] = choice.provider.proxy_authorization(
                renewed.reveal("access_token"), subject_type=subject_type
            )
            response = _send(
                session, method=ask.method, url=url, headers=headers, body=body, deadline=deadline
            )
        deadline.detach()
        answered = True
        return ProxiedAnswer(
            response=response, session=session, deadline=deadline, slots=slots, record=record
        )
    finally:
        if not answered:
            deadline.detach()
            deadline.close()
            slots.release()
            session.close()
