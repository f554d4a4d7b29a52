"""Two processes counting locally keep a team's limit within the stated tolerance
(``connect/ratelimits.py``: at most ``limit + processes * slack(limit)`` a window)."""

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from connect.ratelimits import WINDOW_SECONDS, slack
from tests.api.conftest import Tenant
from tests.app_server import serving

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
]

LIMIT = 100
PROCESSES = 2


def test_two_processes_stay_within_the_tolerance(
    require_postgres: None, make_tenant: Callable[..., Tenant], tmp_path: Path
) -> None:
    tenant = make_tenant()
    path = f"/v1/connect/token/{tenant.connector.uid.replace('/', '%2F')}"
    env = {"CONNECT_RATE_LIMIT_READS": str(LIMIT), "CONNECT_LOCAL_CACHES": "1"}
    with serving(tmp_path, workers=PROCESSES, threads=4, env=env) as server:
        # The whole burst within one fixed window.
        while time.time() % WINDOW_SECONDS > WINDOW_SECONDS - 20:
            time.sleep(0.5)

        def ask(_: int) -> int:
            return requests.post(
                f"{server.url}{path}",
                json={"subject": {"type": "app"}},
                headers={"Authorization": f"Bearer {tenant.token}", "Connection": "close"},
                timeout=10,
            ).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = Counter(pool.map(ask, range(4 * LIMIT)))
        assert set(statuses) == {200, 429}
        assert LIMIT <= statuses[200] <= LIMIT + PROCESSES * slack(LIMIT), statuses
        assert len(server.pids_that_answered(200)) == PROCESSES
