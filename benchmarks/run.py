"""Token API throughput against the floor (SPEC section 12), through gunicorn on PostgreSQL.

Usage: ``make bench`` (needs PostgreSQL and Redis; ``wrk`` from your package manager).
Environment: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/connect_bench,
created and migrated here), BENCH_REDIS_URL (default redis://127.0.0.1:6379/2),
BENCH_SECONDS (default 10), BENCH_CONNECTIONS (default 16), BENCH_WORKERS (default 2).
Prints requests per second, the ratio to the floor, and p50/p99 latency for each scenario.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/connect_bench"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/2")
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def recreate_database() -> None:
    admin_url, _, name = DATABASE_URL.rpartition("/")
    with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def manage(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout


def wrk(url: str, script: str, duration: int, connections: int = CONNECTIONS) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    out = subprocess.run(
        ["wrk", "--latency", "-t2", f"-c{connections}", f"-d{duration}s", "-s", handle.name, url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    os.unlink(handle.name)

    def latency(pct: str) -> float:
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert match, out
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert rps, out
    return {
        "rps": float(rps.group(1)),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "non_2xx": float(errors.group(1)) if errors else 0.0,
    }


def lua(method: str, token: str = "", body: str = "") -> str:
    lines = [f'wrk.method = "{method}"']
    if token:
        lines.append(f'wrk.headers["Authorization"] = "Bearer {token}"')
    if body:
        lines.append('wrk.headers["Content-Type"] = "application/json"')
        lines.append(f"wrk.body = {json.dumps(body)}")
    return "\n".join(lines) + "\n"


def main() -> int:
    if shutil.which("wrk") is None:
        print("benchmarks need wrk (Debian/Ubuntu: apt-get install wrk)", file=sys.stderr)
        return 2
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    var_dir = tempfile.mkdtemp(prefix="connect-bench-")
    env = {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "PUBLIC_URL": base,
        "CONNECT_VAR_DIR": var_dir,
        "CONNECT_RATE_LIMIT_READS": "100000000",
        "CONNECT_RATE_LIMIT_WRITES": "100000000",
        "CONNECT_RATE_LIMIT_PREFIX": f"bench-{os.getpid()}",
        "LOG_LEVEL": "WARNING",
    }
    recreate_database()
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "demo")
    credential = (
        manage(
            env,
            "deployment_credential",
            "create",
            "--team",
            "demo",
            "--project",
            "demo-app",
            "--environment",
            "production",
        )
        .strip()
        .splitlines()[-1]
    )
    oidc = manage(
        env,
        "oidc_token",
        "--team",
        "demo",
        "--project",
        "demo-app",
        "--environment",
        "production",
        "--ttl",
        "3600",
    ).strip()
    server = subprocess.Popen(
        [
            str(Path(PYTHON).parent / "gunicorn"),
            "-c",
            str(ROOT / "config" / "gunicorn.py"),
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(WORKERS),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/v1/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        token_body = json.dumps({"subject": {"type": "app"}})
        scenarios = {
            "floor (DRF constant JSON)": (f"{base}/v1/floor", lua("GET")),
            "token, deployment credential": (
                f"{base}/v1/connect/token/api-key%2Fdemo",
                lua("POST", credential, token_body),
            ),
            "token, OIDC caller": (
                f"{base}/v1/connect/token/api-key%2Fdemo",
                lua("POST", oidc, token_body),
            ),
        }
        results = {}
        for name, (url, script) in scenarios.items():
            wrk(url, script, 2)  # warm up: connections, caches, the first last-used write
            results[name] = wrk(url, script, SECONDS)
        floor = results["floor (DRF constant JSON)"]["rps"]
        print(f"{CONNECTIONS} connections, {WORKERS} gunicorn workers, {SECONDS}s each")
        print(
            f"{'scenario':32} {'req/s':>9} {'ratio':>6} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}"
        )
        for name, r in results.items():
            print(
                f"{name:32} {r['rps']:9.0f} {r['rps'] / floor:6.2f} {r['p50_ms']:8.2f} "
                f"{r['p99_ms']:8.2f} {r['non_2xx']:8.0f}"
            )
        return 1 if any(r["non_2xx"] for r in results.values()) else 0
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
