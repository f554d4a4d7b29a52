"""Fixtures for the operations tests: a tenant that can ask for tokens, real Celery processes on
a private Redis, and a reader for what ``/metrics`` answers."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import Tenant, make_tenant  # noqa: F401  (the runtime API's tenant)
from tests.triggers.processes import PrivateRedis, celery_env

METRICS_TOKEN = "metrics-token-for-the-tests-0123456789abcdef"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def scrape(base_url: str, token: str = METRICS_TOKEN) -> Samples:
    response = requests.get(
        f"{base_url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    workdir = tmp_path / "redis"
    workdir.mkdir()
    with PrivateRedis(workdir) as server:
        yield server


@pytest.fixture
def process_env(private_redis: PrivateRedis, tmp_path: Path) -> dict[str, str]:
    """What the Celery processes of a test run with: its database, its Redis, its metrics."""
    return celery_env(
        redis_url=private_redis.url,
        schedule="0,5,300",
        CONNECT_METRICS_DIR=str(tmp_path / "metrics"),
    )
