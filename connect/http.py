"""The one way out: every outbound HTTP call (ours and allauth's) goes through ``session()``.

It sets timeouts and the user agent, never follows redirects, ignores proxy variables, and
guards against SSRF: the host is resolved once, every address must be global (loopback only
when ``CONNECT_ALLOW_LOOPBACK`` is on, never in production), and the socket connects to the
address that was checked, so a DNS answer cannot change between the check and the connect.
"""

import ipaddress
import socket
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


class _PinnedMixin:
    _dns_host: str
    port: int

    def _new_conn(self) -> socket.socket:
        self._dns_host = resolve_allowed(self._dns_host, self.port)
        return super()._new_conn()  # type: ignore[misc]


class _PinnedHTTPConnection(_PinnedMixin, HTTPConnection):
    pass


class _PinnedHTTPSConnection(_PinnedMixin, HTTPSConnection):
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
        if parts.scheme not in web_urls.allowed_schemes() or not parts.hostname:
            # http:// only outside production, as for every URL that is configured.
            raise BlockedDestination(f"not an allowed URL: {parts.scheme}://{parts.hostname}")
        resolve_allowed(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        return super().request(method, url, *args, **kwargs)


def session() -> GuardedSession:
    return GuardedSession()
