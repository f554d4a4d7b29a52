"""Token API throughput against the floor (SPEC section 12), through gunicorn on PostgreSQL.

Usage: ``make bench`` (needs PostgreSQL and Redis; ``wrk`` from your package manager).
Environment: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/connect_bench,
created and migrated here), BENCH_REDIS_URL (default redis://127.0.0.1:6379/2),
BENCH_SECONDS (default 10), BENCH_CONNECTIONS (default 16), BENCH_WORKERS (default 2),
BENCH_REVOCATIONS (default 30), BENCH_ROUNDS (default 5: each scenario's seconds are split
into that many rounds, interleaved with the floor's).
Prints requests per second, the ratio to the floor, and p50/p99 latency for each scenario.
"""

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
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
REVOCATIONS = int(os.environ.get("BENCH_REVOCATIONS", "30"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
VAR_DIR = Path(os.environ.get("BENCH_VAR_DIR", str(ROOT / "var" / "bench")))


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
    # Kept after the run: benchmarks/inprocess.py opens the same sealed rows with its keys.
    var_dir = str(VAR_DIR)
    shutil.rmtree(var_dir, ignore_errors=True)
    VAR_DIR.mkdir(parents=True)
    env = {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "PUBLIC_URL": base,
        "CONNECT_VAR_DIR": var_dir,
        "CONNECT_RATE_LIMIT_READS": "100000000",
        "CONNECT_RATE_LIMIT_WRITES": "100000000",
        "CONNECT_RATE_LIMIT_PREFIX": f"bench-{os.getpid()}",
        "LOG_LEVEL": "ERROR",  # not a line per refused request while revocations are timed
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
    token_body = json.dumps({"subject": {"type": "app"}})
    token_url = "/v1/connect/token/api-key%2Fdemo"
    results: dict[str, dict[str, float]] = {}
    revocations: list[float] = []
    for label, extra in (("warm", {}), ("cold", {"CONNECT_LOCAL_CACHES": "0"})):
        server = start_server(port, {**env, **extra})
        try:
            scenarios = {
                f"floor (DRF constant JSON), {label}": (f"{base}/v1/floor", lua("GET")),
                f"token, credential, {label}": (
                    f"{base}{token_url}",
                    lua("POST", credential, token_body),
                ),
                f"token, OIDC caller, {label}": (
                    f"{base}{token_url}",
                    lua("POST", oidc, token_body),
                ),
            }
            for url, script in scenarios.values():
                wrk(url, script, 2)  # warm up: connections, caches, the first last-used write
            # Interleaved rounds: on a shared machine the speed drifts by a factor of two
            # within a minute, so each scenario is compared with the floor of its own round.
            rounds: dict[str, list[dict[str, float]]] = {name: [] for name in scenarios}
            for _ in range(ROUNDS):
                for name, (url, script) in scenarios.items():
                    rounds[name].append(wrk(url, script, max(1, SECONDS // ROUNDS)))
            floor_name = f"floor (DRF constant JSON), {label}"
            for name, runs in rounds.items():
                results[name] = {
                    "rps": statistics.median(r["rps"] for r in runs),
                    "ratio": statistics.median(
                        r["rps"] / f["rps"] for r, f in zip(runs, rounds[floor_name], strict=True)
                    ),
                    "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                    "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                    "non_2xx": sum(r["non_2xx"] for r in runs),
                }
                print(f"  {name}: {results[name]}", flush=True)
            if label == "warm":
                revocations = revocation_latencies(f"{base}{token_url}", credential, token_body)
                print(f"  revocation latencies (s): {revocations}", flush=True)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    print(
        f"{CONNECTIONS} connections, {WORKERS} gunicorn workers, {SECONDS}s each in {ROUNDS} "
        "interleaved rounds; medians over the rounds, the ratio to the floor of the same round"
    )
    print("warm: the token path's process-local caches on (default); cold: CONNECT_LOCAL_CACHES=0")
    print(f"{'scenario':38} {'req/s':>9} {'ratio':>6} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for name, r in results.items():
        print(
            f"{name:38} {r['rps']:9.0f} {r['ratio']:6.2f} {r['p50_ms']:8.2f} "
            f"{r['p99_ms']:8.2f} {r['non_2xx']:8.0f}"
        )
    if revocations:
        ordered = sorted(revocations)
        p50 = ordered[len(ordered) // 2]
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        print(
            f"revocation until every answer is refused ({len(ordered)} revocations): "
            f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms"
        )
    return 1 if any(r["non_2xx"] for r in results.values()) else 0


def start_server(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
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
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    return server


def _status(url: str, token: str, body: str) -> int:
    request = urllib.request.Request(
        url,
        data=body.encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def revocation_latencies(
    url: str, credential: str, body: str, rounds: int = REVOCATIONS
) -> list[float]:
    """Revoke the credential (a committed UPDATE, as the admin's revoke is) with both workers'
    caches warm, and time until the last request either worker answered with a token; then
    restore it and warm again. Each request is a new connection, so both workers take part."""
    prefix = credential.split("_")[1]
    latencies = []
    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        for _ in range(rounds):
            while sum(_status(url, credential, body) == 200 for _ in range(20)) < 20:
                pass  # warm: twenty answers in a row
            conn.execute(
                "UPDATE connect_deploymentcredential SET revoked_at = now() WHERE prefix = %s",
                [prefix],
            )
            revoked_at = time.monotonic()
            last_answer, refused_in_a_row = revoked_at, 0
            while refused_in_a_row < 20:
                if _status(url, credential, body) == 200:
                    last_answer, refused_in_a_row = time.monotonic(), 0
                else:
                    refused_in_a_row += 1
            latencies.append(last_answer - revoked_at)
            conn.execute(
                "UPDATE connect_deploymentcredential SET revoked_at = NULL WHERE prefix = %s",
                [prefix],
            )
    return latencies


if __name__ == "__main__":
    sys.exit(main())
