"""No log line carries an authorization code, a state or a result verifier (issue 8, point 12).

They travel in URLs: the provider sends the code and our state to ``/connect/callback``, and a
deployment polls ``/v1/connect/result/<verifier>``. gunicorn's access log writes URLs down (a
real gunicorn, started with ``config/gunicorn.py`` as the Procfile does, is asked here), and so
does Django's ``django.request`` logger for every 4xx answer (caught in-process with caplog).
"""

import logging
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from django.db import connection
from django.test import Client

from connect.models import Connector, Project, Team
from tests.providers.flow import Api

ROOT = Path(__file__).resolve().parents[2]
CODE = "code-" + secrets.token_urlsafe(16)
STATE = "state-" + secrets.token_urlsafe(16)
VERIFIER = "scv_" + secrets.token_urlsafe(32)
SECRETS = (CODE, STATE, VERIFIER, VERIFIER.removeprefix("scv_"))
# Everything gunicorn can put on an access line, on top of its default format.
GREEDY_FORMAT = (
    '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" U=%(U)s q=%(q)s '
    "ref=%({referer}i)s raw=%({raw_uri}e)s qs=%({query_string}e)s path=%({path_info}e)s"
)


def assert_no_secret(text: str) -> None:
    for value in SECRETS:
        assert value not in text, f"{value} is in:\n{text}"
    for fragment in ("?code=", "&code=", "state="):
        assert fragment not in text, f"{fragment} is in:\n{text}"


# Django's own warnings ------------------------------------------------------------------------


@pytest.fixture
def project(make_team: Callable[..., Team], make_project: Callable[..., Project]) -> Project:
    return make_project(make_team())


def test_a_pending_result_poll_logs_no_verifier(
    project: Project,
    make_credential: Callable[..., str],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = Api(Client(), make_credential(project))
    connector = make_connector(
        project.team,
        uid="oauth/logged",
        type="oauth",
        client_id="c",
        config={"authorizationEndpoint": "https://auth.example.com/authorize"},
    )
    make_link(connector, project, ["production"])
    verifier = api.consent("oauth/logged", "u-1")["verifier"]

    with caplog.at_level(logging.INFO):
        response = api.result(verifier)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "authorization_pending"
    logged = [r for r in caplog.records if r.name == "django.request"]
    assert [r.getMessage() for r in logged] == ["Bad Request: /v1/connect/result/[redacted]"]
    for record in caplog.records:
        assert verifier not in record.getMessage()
        assert verifier not in str(record.args)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Not Found: /v1/connect/result/scv_a-B_1", "Not Found: /v1/connect/result/[redacted]"),
        ("GET /connect/callback?code=x&state=y HTTP", "GET /connect/callback?[redacted] HTTP"),
        ("/connect/callback?error=access_denied", "/connect/callback?[redacted]"),
        (
            "https://a.example/connect/callback?state=s",
            "https://a.example/connect/callback?[redacted]",
        ),
        ("/elsewhere?CODE=x", "/elsewhere?[redacted]"),
        ("/elsewhere?c%6Fde=x", "/elsewhere?[redacted]"),
        ("/v1/connect/%72esult/scv%5Fabc", "/v1/connect/%72esult/scv_[redacted]"),
        ("polled scv_abc again", "polled scv_[redacted] again"),
        ("/connect/install/scl_1?request=sca_2", "/connect/install/scl_1?request=sca_2"),
        ("GET /v1/health HTTP/1.1", "GET /v1/health HTTP/1.1"),
    ],
)
def test_redaction_keeps_what_is_not_secret_and_nothing_that_is(text: str, expected: str) -> None:
    from connect.redaction import redact_text

    assert redact_text(text) == expected


# gunicorn, as production runs it --------------------------------------------------------------


@dataclass
class Gunicorn:
    url: str
    port: int
    access_log: Path
    error_log: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url_of_this_test() -> str:
    db = connection.settings_dict
    user = quote(str(db["USER"] or ""), safe="")
    password = f":{quote(str(db['PASSWORD']), safe='')}" if db["PASSWORD"] else ""
    host = db["HOST"] or "127.0.0.1"
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{user}{password}@{host}{port}/{db['NAME']}"


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def gunicorn(require_postgres: None, tmp_path: Path) -> Iterator[Gunicorn]:
    port = free_port()
    access_log, error_log = tmp_path / "access.log", tmp_path / "error.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url_of_this_test(),
        "DATABASE_POOL_MAX": "1",
        "CONNECT_RATE_LIMIT_PREFIX": f"test-rl-{uuid.uuid4().hex[:8]}",
        "CONNECT_CACHE_PREFIX": f"test-{uuid.uuid4().hex[:8]}",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "config/gunicorn.py",
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--access-logfile",
            str(access_log),
            "--access-logformat",
            GREEDY_FORMAT,
            "--error-logfile",
            str(error_log),
            "--capture-output",  # Django's own log lines go to the error log too
        ],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            log = error_log.read_text() if error_log.exists() else "(no log)"
            pytest.fail(f"gunicorn exited:\n{log[-3000:]}")
        try:
            return requests.get(f"{url}/v1/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(healthy, "gunicorn to answer")
        yield Gunicorn(url=url, port=port, access_log=access_log, error_log=error_log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def raw_request(port: int, request_line: str) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request_line.encode() + b"\r\nHost: x\r\n\r\n")
        sock.recv(4096)


@pytest.mark.slow
def test_gunicorn_logs_no_code_state_or_verifier(gunicorn: Gunicorn) -> None:
    callback = f"/connect/callback?code={CODE}&state={STATE}"
    referer = f"https://app.example.com{callback}"
    answers = [
        requests.get(gunicorn.url + callback, headers={"Referer": referer}, timeout=10),
        requests.get(f"{gunicorn.url}/v1/connect/result/{VERIFIER}", timeout=10),
        # The same path, percent-encoded: Django routes it all the same.
        requests.get(
            f"{gunicorn.url}/v1/connect/%72esult/scv%5F{VERIFIER[4:]}?state={STATE}", timeout=10
        ),
        requests.get(f"{gunicorn.url}/connect/install/scl_kept?request=sca_kept", timeout=10),
    ]
    raw_request(gunicorn.port, f"GET {callback}")  # no HTTP version: gunicorn logs the line

    assert [a.status_code for a in answers] == [400, 401, 401, 400]
    wait_until(lambda: "scl_kept" in gunicorn.access_log.read_text(), "the access log lines")
    wait_until(lambda: "Invalid request" in gunicorn.error_log.read_text(), "the error log")
    access, errors = gunicorn.access_log.read_text(), gunicorn.error_log.read_text()
    assert_no_secret(access)
    assert_no_secret(errors)
    # Still a useful log: what was asked, with only the secrets gone.
    assert '"GET /connect/callback?[redacted] HTTP/1.1" 400' in access
    assert "ref=https://app.example.com/connect/callback?[redacted]" in access
    assert '"GET /v1/connect/result/[redacted] HTTP/1.1" 401' in access
    assert "/connect/install/scl_kept?request=sca_kept" in access
    assert "Unauthorized: /v1/connect/result/[redacted]" in errors
    assert "Invalid HTTP request line: 'GET /connect/callback?[redacted]'" in errors
