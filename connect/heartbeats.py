"""Heartbeats of the Celery worker and beat, for ``GET /v1/health?deep=1`` and ``/metrics``.

Each says it is alive on its own, so a missing one is named even while the other is down:

- a worker from a thread in each of its pool processes (a task would be no proof while beat is
  down and nothing is scheduled; the thread also beats while every process is busy);
- beat from its scheduler loop (``HeartbeatScheduler``), which runs whether or not any worker
  takes what it sends.

Both write one row (``connect.models.Heartbeat``) every ``HEARTBEAT_SECONDS``. Wired up in
``config/celery.py`` (worker signals) and ``CELERY_BEAT_SCHEDULER`` in ``config/settings.py``.
Imports Django's models only when called: ``config/celery.py`` loads this before Django is set.
"""

import logging
import os
import socket
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from celery.beat import PersistentScheduler
from celery.signals import worker_process_init

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15
#: Deep health wants a worker and beat seen within this.
SEEN_WITHIN = timedelta(seconds=60)


def heartbeat_record(*, process: str, seen_by: str, now: datetime | None = None) -> None:
    """One upsert; a failure is logged, never raised: a heartbeat must not stop its process."""
    from django.db import DatabaseError, connection
    from django.utils import timezone

    from connect.models import Heartbeat

    row = Heartbeat(process=process, seen_at=now or timezone.now(), seen_by=seen_by[:255])
    # Twice at most: in a prefork worker Celery closes the connection pool around every task,
    # from the main thread, and a heartbeat thread caught holding that pool fails once; the
    # second try takes the new pool.
    for attempt in (1, 2):
        try:
            Heartbeat.objects.bulk_create(
                [row],
                update_conflicts=True,
                unique_fields=["process"],
                update_fields=["seen_at", "seen_by"],
            )
            break
        except DatabaseError:
            if attempt == 2:
                logger.warning("could not record the %s heartbeat", process, exc_info=True)
        finally:
            # Back to the pool every time: these processes do no requests that would close a
            # broken connection for them, and a database restart must not end the heartbeats.
            connection.close()


def heartbeats_seen() -> dict[str, datetime | None]:
    """When each process was last seen (None: never)."""
    from connect.models import Heartbeat

    seen = dict(Heartbeat.objects.values_list("process", "seen_at"))
    return {process: seen.get(process) for process in Heartbeat.Process.values}


# The worker ------------------------------------------------------------------------------------


def _worker_beats(name: str) -> None:
    while True:
        heartbeat_record(process="worker", seen_by=name)
        time.sleep(HEARTBEAT_SECONDS)


def _start_worker_heartbeat(name: str) -> None:
    # A daemon: it dies with its process, which is the point.
    threading.Thread(
        target=_worker_beats, args=(name,), name="connect-heartbeat", daemon=True
    ).start()


def worker_process_started(**kwargs: Any) -> None:
    """Celery's ``worker_process_init``: in each prefork pool process, after the fork. (The
    worker's parent process never opens a database connection: its children would inherit
    it, and the pool it came from.)"""
    _start_worker_heartbeat(f"{socket.gethostname()}:{os.getpid()}")


def worker_starting(**kwargs: Any) -> None:
    """Celery's ``worker_init``. Celery's Django fixup connects its own ``worker_process_init``
    receiver here, and that one closes the connection pool a pool process inherited: ours,
    connected after it, starts the heartbeat once that is done, not under its feet."""
    worker_process_init.connect(worker_process_started, dispatch_uid="connect.heartbeats")


def worker_ready(sender: Any = None, **kwargs: Any) -> None:
    """Celery's ``worker_ready``: the solo and thread pools run tasks in this very process,
    and send no ``worker_process_init``."""
    pool = getattr(sender, "pool", None)
    if pool is not None and "prefork" not in type(pool).__module__:
        _start_worker_heartbeat(str(getattr(sender, "hostname", "")) or socket.gethostname())


# Beat ------------------------------------------------------------------------------------------


class HeartbeatScheduler(PersistentScheduler):
    """Celery's default scheduler, beating as it ticks, and ticking at least that often."""

    _beaten_at = float("-inf")

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if time.monotonic() - self._beaten_at >= HEARTBEAT_SECONDS:
            self._beaten_at = time.monotonic()
            heartbeat_record(process="beat", seen_by=f"{socket.gethostname()}:{os.getpid()}")
        return float(min(super().tick(*args, **kwargs), HEARTBEAT_SECONDS))
