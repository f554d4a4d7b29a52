"""The one way out: every outbound HTTP call (ours and allauth's) goes through ``session()``.

It sets timeouts and the user agent, never follows redirects, ignores proxy variables, and
guards against SSRF: the host must be spelled plainly (a DNS name, a canonical dotted quad or
an IPv6 literal), it is resolved once, every address must be public by the explicit block lists
below (loopback only when ``CONNECT_ALLOW_LOOPBACK`` is on, never in production), and the
socket connects to the address that was checked, so a DNS answer cannot change between the
check and the connect. TLS still checks the certificate against the name in the URL.
"""

import ipaddress
import re
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

from connect import web_urls

CONNECT_TIMEOUT = 3.05
USER_AGENT = "Connect/0.1 (self-hosted credential broker)"

# Explicit lists, not ``ipaddress``'s ``is_global``/``is_private``: their answers changed between
# CPython patch releases (python/cpython#117566, #118391), and a guard must not move with them.
# IANA IPv4 Special-Purpose Address Registry, plus multicast and the reserved class E.
IPV4_BLOCKED = tuple(
    ipaddress.IPv4Network(network)
    for network in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches the local host on Linux
        "10.0.0.0/8",
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "127.0.0.0/8",  # loopback: opened only in development, below
        "169.254.0.0/16",  # link local: cloud metadata services live here
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation (TEST-NET-1)
        "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation (TEST-NET-2)
        "203.0.113.0/24",  # documentation (TEST-NET-3)
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved
        "255.255.255.255/32",  # limited broadcast
    )
)
IPV4_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
IPV6_LOOPBACK = ipaddress.IPv6Address("::1")
IPV6_UNSPECIFIED = ipaddress.IPv6Address("::")
# Only global unicast space is ever reachable; inside it, the IANA IPv6 Special-Purpose
# Address Registry's non-global blocks. Everything outside 2000::/3 (unspecified, loopback,
# discard, ULA, link local, site local, multicast, SRv6, reserved) is refused as well; the
# ranges that lie there are listed anyway, so the list reads as the registry does.
IPV6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
IPV6_BLOCKED = tuple(
    ipaddress.IPv6Network(network)
    for network in (
        "::/128",  # unspecified
        "::1/128",  # loopback: opened only in development, below
        "64:ff9b:1::/48",  # local-use NAT64: the operator picks where the IPv4 sits; never global
        "100::/64",  # discard only
        "100:0:0:1::/64",  # dummy prefix
        "2001::/23",  # IETF protocol assignments (Teredo, 2001::/32, is judged by its IPv4s)
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
        "5f00::/16",  # segment routing (SRv6) SIDs
        "fc00::/7",  # unique local
        "fe80::/10",  # link local
        "fec0::/10",  # site local (deprecated)
        "ff00::/8",  # multicast
    )
)
# IPv6 forms that carry an IPv4 address and reach it through a translator or a tunnel: they are
# judged by that IPv4 (and never by the loopback opening).
IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated, still routed by some stacks
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")

# Host spellings. getaddrinfo (inet_aton) reads "2130706433", "0x7f.1", "0177.0.0.1" and "127.1"
# as 127.0.0.1, so a host that ends in a number must be a canonical dotted quad; anything else
# is refused before it is resolved (WHATWG URL's "ends in a number" rule says what a number is).
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
CANONICAL_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*", re.IGNORECASE)
# ASCII only: IDNA maps full-width digits and ideographic full stops onto plain ones, so a
# non-ASCII host could spell 127.0.0.1 past the checks above.
HOST_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?", re.IGNORECASE)


def default_timeout() -> tuple[float, float]:
    """(connect, read) seconds; a refresh holds a row lock for as long as the read may take."""
    read = float(settings.CONNECT_PROVIDER_TIMEOUT_SECONDS)
    return min(CONNECT_TIMEOUT, read), read


class BlockedDestination(requests.exceptions.ConnectionError):
    """The URL resolves to an address the app must not reach, or does not resolve at all."""


class UnresolvableHost(BlockedDestination):
    """The host does not resolve (no DNS answer): nothing was blocked, there is nowhere to go."""


def failure_reason(exc: BaseException) -> str:
    """An outbound failure as a phrase for people: a host that does not resolve is not the
    SSRF guard at work, and says so; other failures keep their class name, as before."""
    if isinstance(exc, UnresolvableHost):
        return "its host does not resolve (check the host name)"
    if isinstance(exc, BlockedDestination):
        return f"blocked by the outbound guard ({exc})"
    return type(exc).__name__


def loopback_allowed() -> bool:
    """Development only: the setting cannot be turned on in production, and is ignored there."""
    return bool(settings.CONNECT_ALLOW_LOOPBACK) and not getattr(settings, "PRODUCTION", False)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address stands for, if it is one of the forms that embed one."""
    if (
        ip in IPV4_MAPPED
        or ip in NAT64
        or (ip in IPV4_COMPATIBLE and ip not in (IPV6_LOOPBACK, IPV6_UNSPECIFIED))
    ):
        return (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF),)  # the last 32 bits
    if ip in SIX_TO_FOUR:
        return (ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF),)  # bits 16 to 48
    if ip.teredo is not None:  # the relay server, and the client (stored inverted)
        return ip.teredo
    return ()


def _public_ipv4(ip: ipaddress.IPv4Address) -> bool:
    return not any(ip in network for network in IPV4_BLOCKED)


def address_allowed(address: str) -> bool:
    """Whether a resolved address may be connected to."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # a scope id names an interface
    if isinstance(ip, ipaddress.IPv4Address):
        if ip in IPV4_LOOPBACK:
            return loopback_allowed()
        return _public_ipv4(ip)
    if ip == IPV6_LOOPBACK:
        return loopback_allowed()
    inside = embedded_ipv4(ip)
    if inside:
        return all(_public_ipv4(v4) for v4 in inside)
    return ip in IPV6_GLOBAL_UNICAST and not any(ip in network for network in IPV6_BLOCKED)


def check_host_spelling(host: str) -> None:
    """Refuse hosts whose meaning depends on who parses them (see ``CANONICAL_IPV4``)."""
    if ":" in host:  # an IPv6 literal (its brackets already gone)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise BlockedDestination(f"{host!r} is not an IPv6 address") from None
        if "%" in host:
            raise BlockedDestination(f"{host!r} names a network interface")
        return
    if not HOST_NAME.fullmatch(host):
        raise BlockedDestination(f"{host!r} is not a plain ASCII host name")
    labels = host.split(".")
    if labels[-1] == "" and len(labels) > 1:
        labels.pop()
    if NUMERIC_LABEL.fullmatch(labels[-1]) and not CANONICAL_IPV4.fullmatch(host):
        raise BlockedDestination(f"{host!r} is not a canonical IPv4 address (a.b.c.d)")


def resolve_allowed(host: str, port: int) -> str:
    """The first address of ``host``; refuses the host if any address is not allowed."""
    check_host_spelling(host)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnresolvableHost(f"cannot resolve {host!r}") from exc
    addresses = [str(info[4][0]) for info in infos]
    blocked = [a for a in addresses if not address_allowed(a)]
    if not addresses or blocked:
        raise BlockedDestination(f"{host!r} resolves to a non-public address")
    return addresses[0]


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
        self.detach()
        self.close()

    def detach(self) -> None:
        """Stop watching the connections this thread opens from now on; those already watched
        stay cut at the deadline. For an answer whose body is read later, elsewhere (a
        streamed response): detach where the deadline was entered, ``close`` when done."""
        if self._token is not None:
            _DEADLINE.reset(self._token)
            self._token = None

    def close(self) -> None:
        """The exchange is over: the timer stops and the watched connections are closed."""
        if self._timer is not None:
            self._timer.cancel()
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
        # Connect to the checked address, then put the name back: urllib3 reads ``host`` (the
        # name) for TLS's SNI and certificate check after connecting, and a certificate names
        # the host, not its address.
        name = self._dns_host
        self._dns_host = resolve_allowed(name, self.port)
        try:
            return super()._new_conn()  # type: ignore[misc]
        finally:
            self._dns_host = name


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
        try:
            parts = urlsplit(url.decode() if isinstance(url, bytes) else url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:  # "[::1", a port out of range: a bad URL is not a crash
            raise BlockedDestination(f"not a valid URL: {exc}") from None
        if parts.scheme not in web_urls.allowed_schemes() or not parts.hostname:
            # http:// only outside production, as for every URL that is configured.
            raise BlockedDestination(f"not an allowed URL: {parts.scheme}://{parts.hostname}")
        resolve_allowed(parts.hostname, port)
        return super().request(method, url, *args, **kwargs)


def session() -> GuardedSession:
    return GuardedSession()
