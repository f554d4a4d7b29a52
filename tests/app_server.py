"""The app as production runs it: gunicorn worker processes serving the test database.

Tests that need several processes to meet on the database (row locks, single flight across
processes) start one with ``serving``; the test must use ``django_db(transaction=True)`` so the
workers see its rows.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]
TOKEN_PATH = re.compile(r"^<(\d+)> (\d{3}) /v1/connect/token/")


@dataclass
class Gunicorn:
    url: str
    access_log: Path
    app_log: Path

    def pids_that_answered(self, status: int) -> Counter[str]:
        served: Counter[str] = Counter()
        for line in self.access_log.read_text().splitlines():
            match = TOKEN_PATH.match(line)
            if match and int(match.group(2)) == status:
                served[match.group(1)] += 1
        return served


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def row_lock_waiters() -> int:
    """Transactions of the test database waiting for a lock (a grant's row, in these tests)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        (count,) = cursor.fetchone()
    return int(count)


def database_url_of_this_test() -> str:
    db = connection.settings_dict
    user = quote(str(db["USER"] or ""), safe="")
    password = f":{quote(str(db['PASSWORD']), safe='')}" if db["PASSWORD"] else ""
    host = db["HOST"] or "127.0.0.1"
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{user}{password}@{host}{port}/{db['NAME']}"


@contextmanager
def serving(
    tmp_path: Path,
    *,
    workers: int,
    threads: int,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    graceful: bool = False,
) -> Iterator[Gunicorn]:
    """gunicorn on the test database in ``workers`` processes of ``threads`` threads each;
    ``args`` go on its command line (``("-c", "config/gunicorn.py")``, as production runs it).
    It stops at once (its process group killed), or, ``graceful``, as a deploy stops it
    (SIGTERM: in-flight requests finish, keep-alive connections run out, exit hooks run),
    which takes seconds."""
    port = free_port()
    access_log, error_log = tmp_path / "access.log", tmp_path / "error.log"
    app_log = tmp_path / "app.log"
    environment = {
        **os.environ,
        "DATABASE_URL": database_url_of_this_test(),
        "DATABASE_POOL_MAX": str(threads),
        "CONNECT_RATE_LIMIT_READS": "100000",
        "CONNECT_RATE_LIMIT_PREFIX": f"test-rl-{uuid.uuid4().hex[:8]}",
        "CONNECT_CACHE_PREFIX": f"test-{uuid.uuid4().hex[:8]}",
        # Tests count issue records as soon as the answers are in, and move a grant's expiry
        # by writing its row and asking at once: the token path's caches would honour that
        # write within their push (milliseconds), not at once. tests/perf turns both on.
        "CONNECT_ISSUE_WRITER": "sync",
        "CONNECT_LOCAL_CACHES": "0",
        **(env or {}),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(threads),
            "--preload",  # workers are ready the moment they are forked
            "--access-logfile",
            str(access_log),
            "--access-logformat",
            "%(p)s %(s)s %(U)s",
            "--error-logfile",
            str(error_log),
            *args,
        ],
        cwd=ROOT,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, for the stop
        # The app's own log (tracebacks of a 500 included), for a test to show when it fails.
        stderr=app_log.open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            booted = error_log.exists() and error_log.read_text().count("Booting worker") >= workers
            try:
                healthy = requests.get(f"{url}/v1/health", timeout=1).status_code == 200
            except requests.RequestException:
                healthy = False
            if booted and healthy:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                log = error_log.read_text() if error_log.exists() else "(no log)"
                pytest.fail(f"gunicorn did not come up:\n{log[-3000:]}")
            time.sleep(0.1)
        yield Gunicorn(url=url, access_log=access_log, app_log=app_log)
    finally:
        if graceful:
            process.terminate()
        else:
            os.killpg(process.pid, signal.SIGKILL)  # the arbiter and its workers, at once
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
