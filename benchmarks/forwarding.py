"""Webhook forwarding and ingest (SPEC section 12), on PostgreSQL, Redis and real processes.

Usage: ``make bench`` (after benchmarks/run.py), or ``.venv/bin/python benchmarks/forwarding.py``.
Needs PostgreSQL, Redis and ``wrk``. Environment: BENCH_FWD_DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/connect_bench_fwd, dropped, created and migrated here),
BENCH_FWD_REDIS_URL (default redis://127.0.0.1:6379/3: its own database number on the shared
Redis, never flushed), BENCH_BACKLOG (default 10000), BENCH_SECONDS (default 10),
BENCH_CONNECTIONS (default 16; ingest is also measured with 2).

Measures, against a loopback receiver that answers 204:

* the backlog: BENCH_BACKLOG events with one delivery each, created in bulk, then two Celery
  worker processes (concurrency 1 each) and beat start; the time until every delivery succeeded,
  and deliveries per second over it;
* ingest: ``POST /connect/trigger/<id>`` through gunicorn (2 workers) with wrk, a custom
  connector with an HMAC-SHA256 header, each request a body of its own (the same body again
  within the replay window is acknowledged as a replay, not stored), while the workers forward
  what comes in: p50/p99 latency; then the time until that forwarding caught up;
* SQL queries per ingest, from Django's test client under ``CaptureQueriesContext``.
"""

import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
from run import CONNECTIONS, free_port, wrk

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DATABASE_URL = os.environ.get(
    "BENCH_FWD_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/connect_bench_fwd"
)
REDIS_URL = os.environ.get("BENCH_FWD_REDIS_URL", "redis://127.0.0.1:6379/3")
BACKLOG = int(os.environ.get("BENCH_BACKLOG", "10000"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
SIGNING_SECRET = "bench-trigger-secret"
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")
DRAIN_TIMEOUT = 900
# Signed bodies per wrk run; a run that sends more wraps around, and the rest are replays.
BODIES_PER_RUN = 100_000
LINES = ", ".join(['"' + "x" * 60 + '"'] * 12)
# "%d" is the body's number, filled in the same way by Python here and by Lua in wrk.
BODY = '{"type": "order.paid", "data": {"id": "ord_%d", "lines": [' + LINES + "]}}"


def body_of(number: int) -> bytes:
    return (BODY % number).encode()


def ingest_script(first: int, signatures: Path) -> str:
    """A wrk script whose requests carry bodies ``first``, ``first`` + 1, … (each thread takes
    every other one), signed with the HMACs listed in ``signatures``, one line per body."""
    return f"""
local template = {json.dumps(BODY)}
local signatures = {{}}
for line in io.lines({json.dumps(str(signatures))}) do signatures[#signatures + 1] = line end
local threads = 0
function setup(thread)
  thread:set("offset", threads)
  threads = threads + 1
end
local sent = 0
function request()
  local index = (offset + 2 * sent) % #signatures
  sent = sent + 1
  local headers = {{}}
  headers["Content-Type"] = "application/json"
  headers["X-Acme-Signature"] = signatures[index + 1]
  return wrk.format("POST", nil, headers, string.format(template, {first} + index))
end
"""


class Receiver:
    """A deployment on loopback: counts what arrives by webhook-id, answers 204."""

    def __init__(self) -> None:
        self.port = free_port()
        self.lock = threading.Lock()
        self.ids: set[str] = set()
        self.requests = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.ids.add(self.headers.get("webhook-id", ""))
                    receiver.requests += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def recreate_database() -> None:
    admin_url, _, name = DATABASE_URL.rpartition("/")
    with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not happen within {timeout} s")
        time.sleep(0.1)


def drain(count: Callable[[], int], total: int) -> float:
    """Seconds until ``count()`` reaches ``total``."""
    started = time.monotonic()
    wait_for(f"{total} deliveries", lambda: count() >= total, DRAIN_TIMEOUT)
    return time.monotonic() - started


def main() -> int:
    if shutil.which("wrk") is None:
        print("benchmarks need wrk (Debian/Ubuntu: apt-get install wrk)", file=sys.stderr)
        return 2
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    var_dir = Path(tempfile.mkdtemp(prefix="connect-bench-fwd-"))
    env = {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "PUBLIC_URL": base,
        "CONNECT_VAR_DIR": str(var_dir),
        "CONNECT_ALLOW_LOOPBACK": "1",
        "CONNECT_CACHE_PREFIX": f"bench-fwd-{os.getpid()}",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    recreate_database()

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from connect.models import (
        Connector,
        ConnectorType,
        Delivery,
        Environment,
        InboundEvent,
        Project,
        Team,
        TriggerDestination,
    )
    from connect.services.connectors import connector_save
    from connect.services.deliveries import deliveries_ring
    from connect.services.destinations import destination_save

    call_command("migrate", verbosity=0)
    receiver = Receiver()
    team = Team.objects.create(slug="bench", name="Bench")
    project = Project.objects.create(team=team, slug="app", name="App")
    environment = Environment.objects.create(
        project=project, slug="production", base_url=receiver.url
    )
    connector = Connector(
        team=team,
        uid="acme/webhooks",
        type=ConnectorType.OAUTH,
        service="acme",
        name="Acme",
        triggers_enabled=True,
        config={"triggerScheme": "hmac-sha256", "signatureHeader": "x-acme-signature"},
    )
    connector.seal("trigger_signing_secret", SIGNING_SECRET)
    connector = connector_save(connector=connector, actor="bench")
    destination = destination_save(
        destination=TriggerDestination(
            connector=connector, project=project, environment=environment, path="/webhooks/acme"
        ),
        actor="bench",
    )
    body = body_of(0)

    def sign(body: bytes) -> str:
        return hmac.new(SIGNING_SECRET.encode(), body, hashlib.sha256).hexdigest()

    # Three wrk runs (warm-up, 2 and CONNECTIONS connections), each with bodies of its own.
    runs = {}
    for run, connections in enumerate((2, 2, CONNECTIONS)):
        first = (run + 1) * BODIES_PER_RUN
        listing = var_dir / f"signatures-{run}.txt"
        listing.write_text("".join(sign(body_of(first + n)) + "\n" for n in range(BODIES_PER_RUN)))
        runs[run] = (connections, ingest_script(first, listing))

    # The backlog, in bulk: as if the workers had been down while the events came in.
    events = InboundEvent.objects.bulk_create(
        [
            InboundEvent(connector=connector, content_type="application/json", body=body)
            for _ in range(BACKLOG)
        ],
        batch_size=1000,
    )
    Delivery.objects.bulk_create(
        [Delivery(event=event, destination=destination) for event in events], batch_size=1000
    )

    logs = var_dir / "logs"
    logs.mkdir()
    celery = str(BIN / "celery")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for name in ("one", "two"):
            processes.append(
                start(
                    [
                        celery, "-A", "config", "worker", "--concurrency", "1", "--loglevel",
                        "INFO", "--hostname", f"{name}@%h", "--without-mingle", "--without-gossip",
                    ],
                    {**env, "LOG_LEVEL": "INFO"},  # its "ready." line is logged at INFO
                    logs / f"worker-{name}.log",
                )
            )  # fmt: skip
        processes.append(
            start(
                [celery, "-A", "config", "beat", "--schedule", str(var_dir / "beat-schedule")],
                env,
                logs / "beat.log",
            )
        )
        for name in ("one", "two"):
            log = logs / f"worker-{name}.log"
            wait_for(f"worker {name}", lambda log=log: "ready." in log.read_text())
        succeeded = Delivery.objects.filter(status=Delivery.Status.SUCCEEDED).count
        for _ in processes[:2]:
            deliveries_ring()  # one doorbell each; beat's sweeper rings from then on
        backlog_seconds = drain(succeeded, BACKLOG)

        # Queries per ingest, in process.
        client = Client()
        url = f"/connect/trigger/{connector.public_id}"
        counts: list[int] = []
        statements: list[int] = []  # as tests/perf/test_ingest.py counts them
        for number in range(1, 21):
            signed = body_of(number)
            headers = {"x-acme-signature": sign(signed)}
            with CaptureQueriesContext(connection) as queries:
                response = client.post(
                    url, signed, content_type="application/json", headers=headers
                )
            assert response.status_code == 200, response.content
            counts.append(len(queries))
            statements.append(
                sum(
                    not q["sql"].upper().startswith(TRANSACTION_CONTROL)
                    and "connect_generation" not in q["sql"]
                    for q in queries.captured_queries
                )
            )

        web = start(
            [
                str(BIN / "gunicorn"), "-c", str(ROOT / "config" / "gunicorn.py"), "config.wsgi",
                "--bind", f"127.0.0.1:{port}",
                "--workers", "2", "--log-level", "warning",
            ],
            env,
            logs / "gunicorn.log",
        )  # fmt: skip
        processes.append(web)

        def web_up() -> bool:
            try:
                urllib.request.urlopen(f"{base}/v1/health", timeout=1)
            except OSError:
                return False
            return True

        wait_for("gunicorn", web_up)
        wrk(f"{base}{url}", runs[0][1], 2)  # warm up
        # One connection per gunicorn worker shows the service time; more show the queueing.
        ingest = {n: wrk(f"{base}{url}", script, SECONDS, n) for n, script in (runs[1], runs[2])}
        # Requests wrk left in flight still finish: count what is owed once the web has stopped.
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=30)
        owed = Delivery.objects.count()
        catch_up = drain(succeeded, owed)
        lost = len(set(Delivery.objects.values_list("webhook_id", flat=True)) - receiver.ids)
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        receiver.server.shutdown()
        connection.close()
        shutil.rmtree(var_dir, ignore_errors=True)

    ingested = owed - BACKLOG
    rows = [
        ("backlog drained", f"{BACKLOG} deliveries in {backlog_seconds:.1f} s"),
        ("forwarding rate (backlog)", f"{BACKLOG / backlog_seconds:.0f} deliveries/s"),
        *(
            (
                f"ingest, {n} connections",
                f"{r['rps']:.0f} req/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                f"{r['non_2xx']:.0f} non-2xx",
            )
            for n, r in ingest.items()
        ),
        ("forwarding caught up", f"{ingested} ingested events, {catch_up:.1f} s after wrk"),
        ("SQL queries per ingest", f"{min(counts)}..{max(counts)}"),
        (
            "  of which statements",
            f"{min(statements)}..{max(statements)} (not counting savepoints and the "
            "generations read, once a second)",
        ),
        ("delivered / lost", f"{len(receiver.ids)} distinct webhook-ids, {lost} lost"),
        ("duplicates at the receiver", f"{receiver.requests - len(receiver.ids)}"),
    ]
    print("2 worker processes (concurrency 1), beat, gunicorn 2 workers, loopback receiver")
    for name, value in rows:
        print(f"{name:28} {value}")
    return 1 if (lost or any(r["non_2xx"] for r in ingest.values())) else 0


if __name__ == "__main__":
    sys.exit(main())
