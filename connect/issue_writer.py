"""Token issue records (``stk_``) written off the request, in batches.

``record`` appends the issue (its ``public_id`` already made, so the answer carries
``tokenId``) to a bounded in-process buffer; a background thread writes what is pending with
one multi-row INSERT every ``CONNECT_ISSUE_FLUSH_MS`` milliseconds, or as soon as
``CONNECT_ISSUE_BATCH`` rows wait. At most one batch is ever pending: a request that finds
``CONNECT_ISSUE_BATCH`` rows not yet committed waits for the writer (up to a second, then
writes its own row itself), so a crash
(SIGKILL, power loss) loses at most one batch of issue records, and never a grant or a secret
(those are written on the request, as before). ``flush`` (gunicorn's ``worker_exit``, and at
interpreter exit) writes what is left on a clean shutdown.

A grant (or project) deleted before its records are written: the batch locks the rows it
refers to (``FOR KEY SHARE``) and leaves out records whose grant or project is gone, so the
batch never fails. ``CONNECT_ISSUE_WRITER=sync`` writes every record on the request (tests).
"""

import atexit
import logging
import os
import threading
import time
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet

from connect.models import Grant, Project, TokenIssue

logger = logging.getLogger(__name__)


class _Writer:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.room = threading.Condition(self.lock)
        self.pending: list[TokenIssue] = []
        self.in_flight = 0  # rows taken by the thread and not yet committed
        self.pid = 0
        self.thread: threading.Thread | None = None
        self.written = 0
        self.dropped = 0  # records whose grant or project was deleted first


_writer = _Writer()
#: How long a request waits for room in the buffer before it writes its record itself.
BACKPRESSURE_SECONDS = 1.0


def buffered() -> bool:
    return settings.CONNECT_ISSUE_WRITER != "sync"


def record(issue: TokenIssue) -> TokenIssue:
    """Record ``issue``: buffered (written within ``CONNECT_ISSUE_FLUSH_MS``), or at once when
    the writer is synchronous or a whole batch is already waiting."""
    if not buffered():
        return TokenIssue.objects.record(issue)
    writer = _writer
    if writer.pid != os.getpid():
        _start()
    batch = settings.CONNECT_ISSUE_BATCH
    deadline = time.monotonic() + BACKPRESSURE_SECONDS
    with writer.lock:
        while len(writer.pending) + writer.in_flight >= batch:
            # A whole batch is at risk already: wait for the writer to commit it.
            writer.wake.notify()
            left = deadline - time.monotonic()
            if left <= 0:
                break
            writer.room.wait(left)
        else:
            writer.pending.append(issue)
            if len(writer.pending) >= batch:
                writer.wake.notify()
            return issue
    return TokenIssue.objects.record(issue)  # the writer is stuck: write it here


def _start() -> None:
    writer = _writer
    with writer.lock:
        if writer.pid == os.getpid():
            return
        # After a fork the parent's rows are the parent's to write; this process starts empty.
        writer.pending, writer.in_flight, writer.pid = [], 0, os.getpid()
        writer.thread = threading.Thread(target=_run, name="issue-writer", daemon=True)
        writer.thread.start()
    atexit.register(flush)


def _run() -> None:
    writer = _writer
    interval = settings.CONNECT_ISSUE_FLUSH_MS / 1000
    while True:
        with writer.lock:
            if not writer.pending:
                writer.wake.wait(interval)
            deadline = time.monotonic() + interval
            while (
                writer.pending
                and len(writer.pending) < settings.CONNECT_ISSUE_BATCH
                and time.monotonic() < deadline
            ):
                writer.wake.wait(deadline - time.monotonic())
            batch, writer.pending = writer.pending, []
            writer.in_flight = len(batch)
            writer.room.notify_all()
        if batch:
            try:
                _write(batch)
            except Exception:
                logger.exception("could not write %d token issue records", len(batch))
            finally:
                with writer.lock:
                    writer.in_flight = 0
                    writer.room.notify_all()
                connection.close()


def _write(batch: list[TokenIssue]) -> None:
    """One transaction: lock the grants and projects referred to, insert the records whose
    grant and project still exist, in one statement."""
    grant_ids = {issue.grant_id for issue in batch}
    project_ids = {issue.project_id for issue in batch}
    with transaction.atomic():
        grants = Grant.objects.filter(pk__in=grant_ids)
        projects = Project.objects.filter(pk__in=project_ids)
        if connection.vendor == "postgresql":
            # FOR KEY SHARE: a concurrent delete waits for this insert, a refresh does not.
            live_grants = set(_key_share(grants))
            live_projects = set(_key_share(projects))
        else:
            live_grants = set(grants.values_list("pk", flat=True))
            live_projects = set(projects.values_list("pk", flat=True))
        rows = [i for i in batch if i.grant_id in live_grants and i.project_id in live_projects]
        TokenIssue.objects.bulk_create(rows)
    _writer.written += len(rows)
    _writer.dropped += len(batch) - len(rows)


def _key_share(queryset: QuerySet[Any]) -> list[int]:
    sql, params = queryset.values_list("pk", flat=True).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} FOR KEY SHARE", params)
        return [row[0] for row in cursor.fetchall()]


def flush(timeout: float = 10.0) -> None:
    """Write every pending record now (worker shutdown); waits for a batch in flight."""
    writer = _writer
    if writer.pid != os.getpid():
        return
    deadline = time.monotonic() + timeout
    with writer.lock:
        batch, writer.pending = writer.pending, []
    if batch:
        try:
            _write(batch)
        except Exception:
            logger.exception("could not write %d token issue records at exit", len(batch))
    while writer.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)


def wait_written(timeout: float = 5.0) -> bool:
    """Until nothing is pending or in flight (tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with _writer.lock:
            if not _writer.pending and not _writer.in_flight:
                return True
        time.sleep(0.005)
    return False
