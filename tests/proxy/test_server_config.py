"""The web server a proxied call runs in: threaded workers, and a proxy time limit that ends a
call (and a refresh it waits for) before gunicorn's own timeout would kill the worker."""

import re
import runpy
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def test_gunicorn_runs_threaded_workers_with_room_beside_the_proxy() -> None:
    config = runpy.run_path(str(ROOT / "config/gunicorn.py"))
    assert config["worker_class"] == "gthread"
    assert config["threads"] > settings.CONNECT_PROXY_PROCESS_CONCURRENCY


def test_the_proxy_time_limit_is_under_gunicorns_timeout() -> None:
    web = next(
        line for line in (ROOT / "config/Procfile").read_text().splitlines() if line[:4] == "web:"
    )
    found = re.search(r"--timeout (\d+)", web)
    assert found is not None
    longest = settings.CONNECT_PROXY_TIMEOUT_SECONDS + settings.CONNECT_PROVIDER_WAIT_SECONDS
    assert longest < int(found.group(1))
