"""The SSRF guard sees through address spellings (issue 8, point 9).

Every hostile form is sent through ``connect.http.session()`` at a real listener on loopback:
in production mode none of them may reach it, and each is refused before any connection (no
connect timeout is waited for). In development the opening is narrow: only the canonical
loopback names reach the listener; ``0.0.0.0``, encoded and embedded forms stay refused.
"""

import datetime
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from connect import http


class _Counting(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    hits: list[str]


class _Server6(_Server):
    address_family = socket.AF_INET6


@dataclass
class Sentinel:
    """Listeners on 127.0.0.1 and ::1 that count every request reaching them."""

    port4: int
    port6: int
    servers: list[_Server] = field(default_factory=list)

    @property
    def hits(self) -> list[str]:
        return [hit for server in self.servers for hit in server.hits]


def serve(server: _Server) -> _Server:
    server.hits = []
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


@pytest.fixture
def sentinel() -> Iterator[Sentinel]:
    four = serve(_Server(("127.0.0.1", 0), _Counting))
    six = serve(_Server6(("::1", 0), _Counting))
    yield Sentinel(port4=four.server_port, port6=six.server_port, servers=[four, six])
    for server in (four, six):
        server.shutdown()
        server.server_close()


# Teredo keeps the client's IPv4 inverted in the last 32 bits: this one's client is 127.0.0.1.
TEREDO_TO_LOOPBACK = "2001:0:4136:e378:8000:63bf:80ff:fffe"
TEREDO_TO_METADATA = "2001:0:4136:e378:8000:63bf:5601:5601"  # client 169.254.169.254

# (name, host as written in the URL). "{v6}" marks hosts served on the IPv6 listener's port.
HOSTILE = [
    ("loopback", "127.0.0.1"),
    ("loopback by name", "localhost"),
    ("IPv6 loopback", "[::1]{v6}"),
    ("another loopback address", "127.0.0.2"),
    ("this host", "0.0.0.0"),
    ("this host, one number", "0"),
    ("decimal", "2130706433"),
    ("hex", "0x7f000001"),
    ("hex, upper case", "0X7F000001"),
    ("hex, shortened", "0x7f.1"),
    ("hex octets", "0x7f.0x0.0x0.0x1"),
    ("octal", "0177.0.0.1"),
    ("octal, padded", "0177.0000.0000.0001"),
    ("zero-padded decimal", "127.000.000.001"),
    ("shortened", "127.1"),
    ("shortened to three", "127.0.1"),
    ("trailing dot", "127.0.0.1."),
    ("full-width digits", "\uff11\uff12\uff17.\uff10.\uff10.\uff11"),
    ("ideographic full stops", "127\u30020\u30020\u30021"),
    ("percent-encoded dots", "127%2e0%2e0%2e1"),
    ("IPv4-mapped", "[::ffff:127.0.0.1]"),
    ("IPv4-mapped, hex", "[::ffff:7f00:1]"),
    ("IPv4-mapped, long form", "[0:0:0:0:0:ffff:7f00:1]"),
    ("IPv4-mapped this host", "[::ffff:0.0.0.0]"),
    ("IPv4-compatible", "[::127.0.0.1]"),
    ("NAT64", "[64:ff9b::127.0.0.1]"),
    ("NAT64, hex", "[64:ff9b::7f00:1]"),
    ("local-use NAT64", "[64:ff9b:1::7f00:1]"),
    ("6to4", "[2002:7f00:1::]"),
    ("6to4 with an interface id", "[2002:7f00:1:0:1:2:3:4]"),
    ("Teredo", f"[{TEREDO_TO_LOOPBACK}]"),
    ("IPv6 unspecified", "[::]"),
    ("IPv6 with a zone", "[fe80::1%25lo]"),
    # Not loopback, so nothing listens; a refusal must still come before any connect attempt.
    ("cloud metadata", "169.254.169.254"),
    ("cloud metadata, mapped", "[::ffff:169.254.169.254]"),
    ("cloud metadata, NAT64", "[64:ff9b::a9fe:a9fe]"),
    ("cloud metadata, 6to4", "[2002:a9fe:a9fe::]"),
    ("cloud metadata, Teredo", f"[{TEREDO_TO_METADATA}]"),
    ("cloud metadata, decimal", "2852039166"),
    ("private 10/8", "10.0.0.1"),
    ("private 10/8, mapped", "[::ffff:10.0.0.1]"),
    ("private 172.16/12", "172.16.0.1"),
    ("private 192.168/16", "192.168.1.1"),
    ("shared address space", "100.64.0.1"),
    ("IETF protocol assignments", "192.0.0.8"),
    ("documentation", "192.0.2.1"),
    ("6to4 relay anycast", "192.88.99.1"),
    ("benchmarking", "198.18.0.1"),
    ("multicast", "224.0.0.1"),
    ("reserved", "240.0.0.1"),
    ("broadcast", "255.255.255.255"),
    ("unique local", "[fd00::1]"),
    ("link local", "[fe80::1]"),
    ("site local", "[fec0::1]"),
    ("IPv6 multicast", "[ff02::1]"),
    ("IPv6 documentation", "[2001:db8::1]"),
    ("IPv6 discard", "[100::1]"),
    ("IETF IPv6 assignments", "[2001:2::1]"),
]
CANONICAL_LOOPBACK = {"loopback", "loopback by name", "IPv6 loopback", "another loopback address"}


def url_for(host: str, sentinel: Sentinel) -> str:
    if host.endswith("{v6}"):
        return f"http://{host.removesuffix('{v6}')}:{sentinel.port6}/probe"
    return f"http://{host}:{sentinel.port4}/probe"


def assert_refused_before_connecting(url: str, sentinel: Sentinel) -> None:
    started = time.monotonic()
    with pytest.raises(http.BlockedDestination):
        http.session().get(url, timeout=(3, 3))
    assert time.monotonic() - started < 1, "refused only after trying to connect"
    assert sentinel.hits == [], f"{url} reached the listener"


def test_at_least_25_hostile_forms_are_tried() -> None:
    assert len(HOSTILE) - len(CANONICAL_LOOPBACK) >= 25


@pytest.mark.parametrize(("name", "host"), HOSTILE, ids=[name for name, _ in HOSTILE])
def test_production_refuses_every_spelling_of_a_non_public_address(
    settings: Any, sentinel: Sentinel, name: str, host: str
) -> None:
    settings.CONNECT_ALLOW_LOOPBACK = False

    assert_refused_before_connecting(url_for(host, sentinel), sentinel)


@pytest.mark.parametrize(
    ("name", "host"),
    [(n, h) for n, h in HOSTILE if n not in CANONICAL_LOOPBACK],
    ids=[n for n, _ in HOSTILE if n not in CANONICAL_LOOPBACK],
)
def test_development_still_refuses_encoded_and_embedded_loopback(
    settings: Any, sentinel: Sentinel, name: str, host: str
) -> None:
    settings.CONNECT_ALLOW_LOOPBACK = True

    assert_refused_before_connecting(url_for(host, sentinel), sentinel)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]{v6}"])
def test_development_opens_only_canonical_loopback(
    settings: Any, sentinel: Sentinel, host: str
) -> None:
    settings.CONNECT_ALLOW_LOOPBACK = True

    response = http.session().get(url_for(host, sentinel), timeout=(3, 3))

    assert response.status_code == 200
    assert sentinel.hits == ["/probe"]


def test_production_mode_ignores_a_loopback_opening(settings: Any, sentinel: Sentinel) -> None:
    """Settings refuse the flag in production at start-up; the guard does not trust that alone."""
    settings.CONNECT_ALLOW_LOOPBACK = True
    settings.PRODUCTION = True

    assert_refused_before_connecting(url_for("127.0.0.1", sentinel), sentinel)


# What a resolver may answer (A/AAAA records) for a name the URL spells innocently.
RESOLVED_BLOCKED = [
    "127.0.0.1",
    "0.0.0.0",
    "10.1.2.3",
    "169.254.169.254",
    "100.100.100.200",
    "::ffff:127.0.0.1",
    "::ffff:a9fe:a9fe",
    "::7f00:1",
    "64:ff9b::7f00:1",
    "64:ff9b::a00:1",
    "64:ff9b:1::808:808",  # local-use NAT64: where the IPv4 sits is the operator's choice
    "2002:a00:1::1",
    TEREDO_TO_LOOPBACK,
    "2001:0:a00:1:8000:63bf:f7f7:f7f7",  # Teredo relay on a private address
    "fe80::1%2",
    "fc00::1",
    "5f00::1",  # SRv6
    "3fff::1",  # documentation (RFC 9637)
    "100:0:0:1::1",  # dummy prefix
    "4000::1",  # outside global unicast space
    "::",
    "::1",
]
RESOLVED_PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "140.82.112.3",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
    "2001:0:4136:e378:8000:63bf:f7f7:f7f7",  # Teredo: relay 65.54.227.120, client 8.8.8.8
]


@pytest.mark.parametrize("address", RESOLVED_BLOCKED)
def test_a_resolved_non_public_address_is_refused(settings: Any, address: str) -> None:
    settings.CONNECT_ALLOW_LOOPBACK = False

    assert not http.address_allowed(address)


@pytest.mark.parametrize("address", RESOLVED_PUBLIC)
def test_public_addresses_and_their_embedded_forms_are_allowed(settings: Any, address: str) -> None:
    settings.CONNECT_ALLOW_LOOPBACK = False

    assert http.address_allowed(address)


def test_the_block_lists_are_the_iana_registries_not_is_global() -> None:
    """Spot checks where ``ipaddress.is_global`` has answered differently across releases."""
    assert not http.address_allowed("192.0.0.9")  # is_global says True; 192.0.0.0/24 is ours
    assert ipaddress.ip_address("100.64.0.1").is_global is False
    assert not http.address_allowed("100.64.0.1")
    for network in ("10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "198.18.0.0/15"):
        assert ipaddress.IPv4Network(network) in http.IPV4_BLOCKED
    for network in ("fc00::/7", "fe80::/10", "ff00::/8", "2001:db8::/32", "100::/64"):
        assert ipaddress.IPv6Network(network) in http.IPV6_BLOCKED


# TLS keeps checking the name, not the pinned address ------------------------------------------


def self_signed_for_localhost(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_the_pinned_address_still_verifies_the_certificate_of_the_name(
    settings: Any, tmp_path: Path
) -> None:
    """Pinning the checked address must not make TLS check the address instead of the host
    name: providers' certificates name hosts, so every HTTPS provider call failed."""
    settings.CONNECT_ALLOW_LOOPBACK = True
    cert_file, key_file = self_signed_for_localhost(tmp_path)
    server = _Server(("127.0.0.1", 0), _Counting)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    names: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment,misc,return-value]
    server.socket = context.wrap_socket(server.socket, server_side=True)
    serve(server)
    try:
        response = http.session().get(
            f"https://localhost:{server.server_port}/tls", verify=str(cert_file), timeout=(3, 3)
        )
    finally:
        server.shutdown()
        server.server_close()

    assert response.status_code == 200
    assert server.hits == ["/tls"]
    assert names == ["localhost"]
