"""Real processes for the forwarding tests: a private Redis on a free port, Celery workers and
beat, each in its own session so a test can SIGKILL a whole worker (its parent and its pool
children) and so cleanup reaches only what the test started.

The workers share the test's database (the test database, committed rows only), its ``var/``
directory (encryption keys and ``SECRET_KEY``) and its ``PUBLIC_URL`` (the JWT issuer).
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Self
from urllib.parse import quote

import redis
from django.conf import settings
from django.db import connection

from config.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).parent / "celery")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], object],
    *,
    timeout: float,
    interval: float = 0.1,
    every: Callable[[], object] | None = None,
    message: Callable[[], str] = lambda: "",
) -> None:
    """Poll ``condition`` (calling ``every`` before each poll) until it holds or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if every is not None:
            every()
        if condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s. {message()}")
        time.sleep(interval)


@contextlib.contextmanager
def doorbell_via(url: str) -> Iterator[None]:
    """Ring this process's doorbells (the web side) through another broker for a while."""

    def use(url: str, transport_options: dict[str, Any]) -> None:
        celery_app.conf.broker_url = url
        celery_app.conf.broker_transport_options = transport_options
        # What Celery does after a fork: forget pooled connections to the previous broker.
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    saved = celery_app.conf.broker_url, celery_app.conf.broker_transport_options
    use(url, {"visibility_timeout": 3600})
    try:
        yield
    finally:
        use(*saved)


def database_url() -> str:
    """The test database as a URL for a subprocess (``NAME`` is the test database's name)."""
    db = connection.settings_dict
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    host = db["HOST"] or "127.0.0.1"
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{user}{password}@{host}{port}/{db['NAME']}"


def celery_env(*, redis_url: str, schedule: str, **extra: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("CELERY_", "PYTEST_"))
    }
    env.update(
        DATABASE_URL=database_url(),
        REDIS_URL=redis_url,
        CONNECT_VAR_DIR=str(settings.VAR_DIR),
        PUBLIC_URL=settings.PUBLIC_URL,
        CONNECT_ALLOW_LOOPBACK="1",
        CONNECT_DELIVERY_SCHEDULE=schedule,
        CONNECT_CACHE_PREFIX=f"test-worker-{os.getpid()}",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class PrivateRedis:
    """A ``redis-server`` of our own, never the shared one: tests flush and restart it."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--logfile",
                str(self.workdir / "redis.log"),
            ],
            start_new_session=True,
        )
        wait_until(self._answers, timeout=10, message=lambda: "private redis-server is not up")

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def flush_and_restart(self) -> None:
        """Everything queued is gone: the doorbells waiting in Redis and the unacked ones."""
        self.client().flushall()
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class CeleryProcess:
    """``celery -A config worker`` or ``beat`` as a subprocess in its own process group."""

    def __init__(self, kind: str, env: dict[str, str], log: Path, *args: str) -> None:
        self.kind, self.env, self.log, self.args = kind, env, log, args
        self.process: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None
        self.restarts = 0

    def start(self) -> Self:
        self._out = self.log.open("ab")
        self.process = subprocess.Popen(
            [CELERY, "-A", "config", self.kind, "--loglevel", "INFO", *self.args],
            cwd=ROOT,
            env=self.env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def wait_ready(self, timeout: float = 30) -> Self:
        marker = "ready." if self.kind == "worker" else "beat: Starting..."
        wait_until(
            lambda: marker in self.output(),
            timeout=timeout,
            message=lambda: f"celery {self.kind} did not start:\n{self.tail()}",
        )
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal the whole group: the worker's parent and every pool child at once."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        # Pool children may outlive a parent that went first; the group must be empty.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None
        if self._out is not None:
            self._out.close()
            self._out = None

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def revive(self) -> None:
        """What a supervisor (systemd, Kubernetes) does: start it again if it exited by itself.

        A Celery worker can: kombu's Redis transport sometimes meets a broker restart with an
        "Unrecoverable error" (AttributeError in ``_connparams`` while restoring unacked
        messages), and the worker shuts down.
        """
        if self.process is None or self.process.poll() is None:
            return
        self.restarts += 1
        if self._out is not None:
            self._out.close()
        self.start()


def worker(env: dict[str, str], log: Path, name: str, concurrency: int = 2) -> CeleryProcess:
    return CeleryProcess(
        "worker",
        env,
        log,
        "--concurrency",
        str(concurrency),
        "--hostname",
        f"{name}@%h",
        # Faster start; none of these carry deliveries.
        "--without-mingle",
        "--without-gossip",
        "--without-heartbeat",
    )


def beat(env: dict[str, str], log: Path, schedule_file: Path) -> CeleryProcess:
    return CeleryProcess("beat", env, log, "--schedule", str(schedule_file))
