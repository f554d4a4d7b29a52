"""The token path in one process, no HTTP server: time per request and cache memory.

Usage: ``make bench`` runs it after benchmarks/run.py, on the database run.py made (demo team,
``api-key/demo`` connector). Prints microseconds per request for the floor, the token request
with the process-local caches on (warm) and off (cold), and the memory 10,000 entries of each
cache take (tracemalloc, entries copied from real ones).
"""

import copy
import os
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault(
    "DATABASE_URL",
    os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/connect_bench"),
)
os.environ.setdefault("REDIS_URL", os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/2"))
os.environ["CONNECT_RATE_LIMIT_READS"] = "100000000"
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("ALLOWED_HOSTS", "*")
# The keys benchmarks/run.py made with the rows it sealed.
os.environ["CONNECT_VAR_DIR"] = os.environ.get("BENCH_VAR_DIR", str(ROOT / "var" / "bench"))

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.test import Client  # noqa: E402

from connect import issue_writer, local_caches  # noqa: E402
from connect.models import DeploymentCredential, Environment, Project  # noqa: E402
from connect.services.credentials import deployment_credential_create  # noqa: E402

N = int(os.environ.get("BENCH_INPROCESS_REQUESTS", "2000"))
BODY = '{"subject": {"type": "app"}}'


def per_request(client: Client, path: str, method: str, **extra: str) -> float:
    def call() -> Any:
        if method == "GET":
            return client.get(path, **extra)
        return client.post(path, BODY, content_type="application/json", **extra)

    for _ in range(50):
        response = call()
        assert response.status_code == 200, response.content
    started = time.perf_counter()
    for _ in range(N):
        call()
    return (time.perf_counter() - started) / N * 1e6


def entry_bytes(name: str) -> float:
    cache = local_caches.cache(name)
    (key, entry), *_ = list(cache._entries.items())
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    copies = {(key, i): copy.deepcopy(entry) for i in range(10_000)}
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    size = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    del copies
    return size


def main() -> int:
    project = Project.objects.get(slug="demo-app")
    credential = DeploymentCredential(
        project=project, environment=Environment.objects.get(project=project, slug="production")
    )
    token = deployment_credential_create(credential=credential, actor="bench")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    client = Client()
    path = "/v1/connect/token/api-key%2Fdemo"
    floor = per_request(client, "/v1/floor", "GET")
    settings.CONNECT_LOCAL_CACHES = True
    warm = per_request(client, path, "POST", **auth)
    callers, resolutions = entry_bytes("callers"), entry_bytes("resolutions")
    settings.CONNECT_LOCAL_CACHES = False
    cold = per_request(client, path, "POST", **auth)
    issue_writer.flush()
    print(f"in process, {N} requests each (Django test client, no HTTP server):")
    print(f"  floor (DRF constant JSON)      {floor:8.0f} µs")
    print(f"  token, credential, warm caches {warm:8.0f} µs  ({floor / warm:.2f}x the floor)")
    print(f"  token, credential, caches off  {cold:8.0f} µs  ({floor / cold:.2f}x the floor)")
    print(
        f"memory per 10,000 entries: callers {callers / 2**20:.1f} MiB, "
        f"resolutions {resolutions / 2**20:.1f} MiB "
        f"(bounded at CONNECT_LOCAL_CACHE_ENTRIES={settings.CONNECT_LOCAL_CACHE_ENTRIES} each)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
