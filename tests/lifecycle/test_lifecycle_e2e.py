"""A lifecycle event through a real Celery worker on a private Redis that is SIGKILLed while
it sends: the event was written once, with its transition, and reaches the receiver under one
webhook-id, verifiably ours, once the next worker takes the abandoned delivery."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client

from connect import tasks
from connect.models import Delivery, LifecycleEvent
from tests.lifecycle.conftest import OAUTH_UID, World, verified
from tests.triggers.processes import (
    CeleryProcess,
    PrivateRedis,
    celery_env,
    doorbell_via,
    wait_until,
    worker,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def private_redis(require_postgres: None, tmp_path: Path) -> Iterator[PrivateRedis]:
    with PrivateRedis(tmp_path) as server:
        yield server


def test_a_transition_reaches_the_app_once_through_a_killed_worker(
    world: World, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    hook = world.hear(world.oauth, world.owner, "/hooks/lifecycle")
    world.receiver.slow(hook.path, 30)  # the first attempt is in flight when the worker dies
    env = celery_env(
        redis_url=private_redis.url,
        schedule="0,0.5,0.5",
        CONNECT_DELIVERY_LEASE="4",
        CONNECT_DELIVERY_TIMEOUT="2",
        CONNECT_DELIVERY_BUDGET="0.5",
        CONNECT_DELIVERY_SOFT_TIME_LIMIT="3",
        CONNECT_DELIVERY_TIME_LIMIT="3.5",
    )
    workers: list[CeleryProcess] = []
    with doorbell_via(private_redis.url):
        try:
            workers.append(worker(env, tmp_path / "first.log", "first", 1).start().wait_ready())
            # The transition: the app's first token makes its grant (grant.created).
            answer = world.owner.api.token(OAUTH_UID, {"type": "app"})
            assert answer.status_code == 200, answer.content
            wait_until(
                lambda: len(world.receiver.received(hook.path)) == 1,
                timeout=30,
                interval=0.05,
                every=tasks.deliveries_sweep,
                message=lambda: workers[-1].tail(),
            )
            workers[-1].kill()
            world.receiver.slow(hook.path, 0)
            workers.append(worker(env, tmp_path / "second.log", "second", 1).start().wait_ready())
            wait_until(
                lambda: Delivery.objects.filter(status="succeeded").exists(),
                timeout=60,
                interval=0.2,
                every=tasks.deliveries_sweep,
                message=lambda: workers[-1].tail(),
            )
        finally:
            for process in workers:
                process.kill()

    # (The connector's own installation, made when it was saved, was told before the hook.)
    [event] = LifecycleEvent.objects.filter(type="grant.created")
    [delivery] = Delivery.objects.all()
    assert (delivery.status, delivery.attempts, delivery.webhook_id) == (
        "succeeded",
        2,
        event.public_id,
    )
    got = world.receiver.received(hook.path)
    assert len(got) == 2  # at least once: the killed attempt's request had arrived
    origin = world.receiver.url.rstrip("/")
    bodies = [verified(received, hook, origin) for received in got]
    assert {b["id"] for b in bodies} == {event.public_id}
    assert {b["type"] for b in bodies} == {"grant.created"}
    assert Client().get("/.well-known/jwks.json").status_code == 200
