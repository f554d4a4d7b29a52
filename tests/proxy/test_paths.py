"""A proxied path never leaves the API base, however it is spelled: checked on the request
target as it arrived, since the server and Django decode ``%2F`` and ``%2E`` before routing."""

import hashlib
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from connect.services.proxy import proxy_path_check
from tests.app_server import serving
from tests.proxy.conftest import ProxyRig

P = "/v1/connect/proxy/oauth/acme"

ESCAPES = [
    pytest.param(P + "/../../admin/", id="dot-dot"),
    pytest.param(P + "/echo/../../../admin", id="dot-dot-inside"),
    pytest.param(P + "/./me", id="dot"),
    pytest.param(P + "/me/..", id="dot-dot-last"),
    pytest.param(P + "/%2e%2e/%2e%2e/admin", id="encoded-dots"),
    pytest.param(P + "/%2E%2E/admin", id="encoded-dots-upper"),
    pytest.param(P + "/.%2e/admin", id="half-encoded-dots"),
    pytest.param(P + "/%2e/me", id="encoded-dot"),
    pytest.param(P + "/echo%2F..%2F..%2Fadmin", id="encoded-slashes"),
    pytest.param(P + "/echo%2f..%2fme", id="encoded-slash-lower"),
    pytest.param(P + "/%252e%252e/admin", id="double-encoded-dots"),
    pytest.param(P + "/echo%252F..%252Fadmin", id="double-encoded-slash"),
    pytest.param(P + "/echo\\..\\..\\admin", id="backslashes"),
    pytest.param(P + "/echo%5c..%5cadmin", id="encoded-backslashes"),
    pytest.param(P + "//evil.example/steal", id="scheme-relative"),
    pytest.param(P + "/https://evil.example/steal", id="absolute-url"),
    pytest.param(P + "/http:evil.example", id="scheme-only"),
    pytest.param(P + "/@evil.example/steal", id="at-host"),
    pytest.param(P + "/user:pw@evil.example/steal", id="userinfo"),
    pytest.param(P + "/echo//x", id="empty-segment"),
    pytest.param(P + "/%00/me", id="nul"),
    pytest.param(P + "/me%0d%0aHost:%20evil.example", id="crlf"),
    pytest.param(P + "/%u002e%u002e/admin", id="iis-unicode-escape"),
    pytest.param(P + "/me%2", id="truncated-escape"),
    pytest.param(P + "/caf\u00e9", id="non-ascii"),
    pytest.param(P, id="no-path"),
    pytest.param("/v1/connect/proxy/oauth%2Facme/..%2F..%2Fadmin", id="encoded-uid-then-escape"),
    pytest.param("/v1/connect/%70roxy/oauth/acme/me", id="encoded-prefix"),
]


@pytest.mark.parametrize("raw", ESCAPES)
def test_an_escaping_path_is_refused_before_any_call(rig: ProxyRig, raw: str) -> None:
    response = rig.call("GET", "/me", raw=raw)
    assert response.status_code in (400, 404), response.content
    assert response["Connect-Error"] == "1"
    assert rig.server.api_calls == []


def test_ordinary_paths_pass(rig: ProxyRig) -> None:
    for path in ("/echo/users/@me", "/echo/a:b/c;d=e", "/echo/%20space", "/echo/trailing/"):
        assert proxy_path_check(path) == path
        response = rig.call("GET", path, raw=P + path)
        assert response.status_code == 200, (path, response.content)
        assert "Connect-Error" not in response
        assert json.loads(b"".join(response.streaming_content))["path"].startswith("/api/echo/")


def _dechunked(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, body = out + rest[:size], rest[size + 2 :]
    return out


def _raw_request(
    url: str, target: str, bearer: str, *, method: str = "GET", chunked: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request with the target exactly as given (no client normalises it); ``chunked``:
    a body sent with Transfer-Encoding: chunked, in pieces."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = (
            f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {bearer}\r\n"
            "Connect-Subject: app\r\nConnection: close\r\n"
        )
        if chunked is not None:
            head += "Transfer-Encoding: chunked\r\n"
        sock.sendall((head + "\r\n").encode("latin-1", "replace"))
        if chunked is not None:
            for start in range(0, len(chunked), 7000):
                piece = chunked[start : start + 7000]
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


@pytest.mark.django_db(transaction=True)
def test_through_gunicorn_the_raw_target_is_what_is_checked(
    make_proxy_rig: Any, tmp_path: Path
) -> None:
    """As production runs it: gunicorn hands the raw target over; what Django routes on has
    ``%2F`` and ``%2e`` decoded already."""
    rig = make_proxy_rig()
    with serving(tmp_path, workers=1, threads=4, args=("-c", "config/gunicorn.py")) as server:
        status, headers, body = _raw_request(server.url, P + "/echo/users/@me", rig.bearer)
        assert status == 200, body
        assert "connect-error" not in headers
        forms = [
            P + "/echo%2F..%2F..%2Fadmin",
            P + "/%2e%2e/%2e%2e/admin",
            P + "/../../admin",
            P + "/echo\\..\\admin",
            P + "//evil.example/x",
            P + "/%252e%252e/admin",
        ]
        for target in forms:
            status, headers, body = _raw_request(server.url, target, rig.bearer)
            # gunicorn itself may refuse a target before the app sees it; never a provider call.
            assert status in (400, 404), (target, status, body)
            if status != 400 or b"error" in body:
                assert headers.get("connect-error") == "1", (target, headers, body)
        # A chunked upload (no Content-Length): gunicorn ends the stream, the proxy reads it.
        payload = b"0123456789abcdef" * 5000
        status, headers, body = _raw_request(
            server.url, P + "/echo/upload", rig.bearer, method="POST", chunked=payload
        )
        assert status == 200, body
        echo = json.loads(
            _dechunked(body) if "chunked" in headers.get("transfer-encoding", "") else body
        )
        assert (echo["length"], echo["sha256"]) == (
            len(payload),
            hashlib.sha256(payload).hexdigest(),
        )
        # A streamed answer goes back chunked.
        rig.server.stream_step.set()
        status, headers, body = _raw_request(server.url, P + "/stream?chunks=3", rig.bearer)
        assert status == 200
        assert _dechunked(body) == b"chunk 0\nchunk 1\nchunk 2\n"
    assert [call.path for call in rig.server.api_calls] == [
        "/api/echo/users/@me",
        "/api/echo/upload",
        "/api/stream",
    ]
