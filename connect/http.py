"""The one way out: every outbound HTTP call (ours and allauth's) goes through ``session()``.

It sets timeouts and the user agent, never follows redirects, ignores proxy variables, and
guards against SSRF: the host is resolved once, every address must be global (loopback only
when ``CONNECT_ALLOW_LOOPBACK`` is on, never in production), and the socket connects to the
address that was checked, so a DNS answer cannot change between the check and the connect.
"""

import ipaddress
import socket
import threading
import time
from contextlib import suppress
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

CONNECT_TIMEOUT = 3.05
USER_AGENT = "Connect/0.1 (self-hosted credential broker)"


def default_timeout() -> tuple[float, float]:
    """(connect, read) seconds; a refresh holds a row lock for as long as the read may take."""
    read = float(settings.CONNECT_PROVIDER_TIMEOUT_SECONDS)
    return min(CONNECT_TIMEOUT, read), read


class BlockedDestination(requests.exceptions.ConnectionError):
    """The URL resolves to an address the app must not reach."""


def address_allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return bool(settings.CONNECT_ALLOW_LOOPBACK)
    return ip.is_global and not ip.is_multicast


def resolve_allowed(host: str, port: int) -> str:
    """The first address of ``host``; refuses the host if any address is not allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise BlockedDestination(f"cannot resolve {host!r}") from exc
    addresses = [info[4][0] for info in infos]
    blocked = [a for a in addresses if not address_allowed(str(a))]
    if not addresses or blocked:
        raise BlockedDestination(f"{host!r} resolves to a non-public address")
    return str(addresses[0])


class DeadlineExceeded(requests.exceptions.Timeout):
    """The exchange did not finish within its total deadline."""


class Deadline:
    """A limit on a whole exchange: connecting, sending, the answer's headers and its body.

    A socket timeout bounds each read, not their sum: a receiver that sends one byte just
    inside it, again and again, holds the caller as long as it likes. Within ``with deadline:``
    every connection the thread opens is watched, and when the time is up a timer shuts those
    sockets down, which wakes a blocked read or write (TLS included) with an error; ``read_body``
    also checks the clock between reads. Name resolution happens before a socket exists and is
    bounded by the resolver's own timeouts.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends_at = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._expired = False
        self._timer: threading.Timer | None = None
        self._token: Token[Deadline | None] | None = None

    def remaining(self) -> float:
        return self.ends_at - time.monotonic()

    def passed(self) -> bool:
        return self.remaining() <= 0

    def watch(self, sock: socket.socket) -> None:
        # A descriptor of our own for the same connection: shutting it down ends the exchange,
        # and nobody else can close it and let its number be reused by an unrelated socket.
        duplicate = sock.dup()
        with self._lock:
            self._sockets.append(duplicate)
            if self._expired:
                _shut(duplicate)

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            for sock in self._sockets:
                _shut(sock)

    def __enter__(self) -> "Deadline":
        self._token = _DEADLINE.set(self)
        self._timer = threading.Timer(max(self.remaining(), 0.0), self._expire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._token is not None:
            _DEADLINE.reset(self._token)
        with self._lock:
            self._expired = True  # a timer that fires now finds nothing left to cut
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


def _shut(sock: socket.socket) -> None:
    # The peer or urllib3 may have ended the connection already: then there is nothing to cut.
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


_DEADLINE: ContextVar[Deadline | None] = ContextVar("connect_http_deadline", default=None)
BODY_CHUNK = 4096


def read_body(response: requests.Response, deadline: Deadline, *, limit: int, keep: int) -> bytes:
    """Read a streamed answer's body, at most ``limit`` bytes, and return its first ``keep``.

    Raises ``DeadlineExceeded`` if the body has not ended (or reached ``limit``) in time; each
    read waits at most what is left of the deadline.
    """
    raw = response.raw
    kept = bytearray()
    read = 0
    while read < limit:
        remaining = deadline.remaining()
        if remaining <= 0:
            raise DeadlineExceeded(f"the body took longer than {deadline.seconds:g} s")
        connection = raw.connection
        if connection is not None and connection.sock is not None:
            connection.sock.settimeout(remaining)
        chunk = raw.read1(min(BODY_CHUNK, limit - read), decode_content=False)
        if not chunk:
            break
        read += len(chunk)
        kept += chunk[: max(keep - len(kept), 0)]
    if deadline.passed():
        raise DeadlineExceeded(f"the body took longer than {deadline.seconds:g} s")
    return bytes(kept)


class _DeadlineMixin:
    """Puts each new socket under the watch of the deadline in force, if there is one."""

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        deadline = _DEADLINE.get()
        if deadline is not None:
            deadline.watch(sock)
        return sock


class _PinnedMixin:
    _dns_host: str
    port: int

    def _new_conn(self) -> socket.socket:
        self._dns_host = resolve_allowed(self._dns_host, self.port)
        return super()._new_conn()  # type: ignore[misc]


class _PinnedHTTPConnection(_DeadlineMixin, _PinnedMixin, HTTPConnection):
    pass


class _PinnedHTTPSConnection(_DeadlineMixin, _PinnedMixin, HTTPSConnection):
    pass


class _PinnedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _PinnedHTTPConnection


class _PinnedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _PinnedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _PinnedHTTPPool,
            "https": _PinnedHTTPSPool,
        }


class GuardedSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False  # proxy variables would bypass the address check
        self.max_redirects = 0
        self.headers["User-Agent"] = USER_AGENT
        adapter = GuardedAdapter(max_retries=0)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", default_timeout())
        kwargs["allow_redirects"] = False
        # Check before sending for a clear error; the pinned connection checks again on connect.
        parts = urlsplit(url.decode() if isinstance(url, bytes) else url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise BlockedDestination(f"not an http(s) URL: {parts.scheme}://{parts.hostname}")
        resolve_allowed(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        return super().request(method, url, *args, **kwargs)


def session() -> GuardedSession:
    return GuardedSession()
