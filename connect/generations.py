"""What this process knows of the generations (``connect.models.Generation``), kept current.

Database triggers bump a generation on every change that can narrow access (migration 0026
lists them). Each process learns of a bump by one channel, on a background thread started
after the worker forks (``start_listener``: gunicorn's ``post_worker_init``, else the first
token request; never ``AppConfig.ready``, which also runs in ``manage.py`` and Celery's
parent), on a connection of its own outside the pool:

- Redis pub/sub when ``REDIS_URL`` is set: every statement of this app that writes a watched
  table publishes ``check`` on commit (``_publish_on_commit``, a database execute wrapper), so
  an ORM ``update()``, a cascade or the admin are all seen;
- PostgreSQL ``LISTEN connect_generations`` otherwise (the triggers ``NOTIFY`` on commit, so
  even psql is seen).

A message makes the listener read the generations of the scopes this process caches (one
query). While the listener is not known to be subscribed (not started, reconnecting, killed,
SQLite), and always with Redis (which hears only this app's writes, not psql's),
``ensure_fresh`` does that read on the request thread at most once per ``CHECK_INTERVAL``
seconds: a change is then seen within that bound, as with the listener.

Caches stamp each entry with ``epoch()`` before they read the database and keep it only if no
generation they depend on moved since (``still``).
"""

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.backends.signals import connection_created

logger = logging.getLogger(__name__)

CHANNEL = "connect_generations"
#: The fallback's bound: without a listener, generations are read at most this often.
CHECK_INTERVAL = 1.0
#: Tables whose writes can bump a generation (the triggers of migration 0026).
WATCHED_TABLES = (
    "connect_deploymentcredential",
    "connect_environment",
    "connect_project",
    "connect_projectlink",
    "connect_connector",
    "connect_installation",
    "connect_grant",
    "connect_membership",
    "connect_trustedissuer",
    "connect_trustedissuerrule",
    "connect_team",
    "connect_signingkey",
)
#: The scope every change of a signing key bumps (migration 0026's trigger writes ``g``).
SIGNING_KEYS = "g"
#: Scopes this many or more are read whole instead of by name.
TRACKED_LIMIT = 20_000


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: dict[str, int] = {}
        self.tracked: set[str] = set()
        self.epoch = 0  # moves whenever any known value moves
        self.healthy = False  # the listener is subscribed and has caught up
        self.last_check = float("-inf")
        self.listener_pid = 0
        self.listener: threading.Thread | None = None
        self.stop = threading.Event()
        self.checks = 0  # how many reads of the table this process made (tests, metrics)
        #: Redis hears only this app's writes (the publishing wrapper); a write from elsewhere
        #: (psql, another program) bumps a generation all the same, so with Redis the
        #: once-a-second read keeps running as a backstop, listener or not.
        self.backstop = False


_state = _State()


def epoch() -> int:
    """A stamp to take before reading what a cache entry will hold."""
    return _state.epoch


def values(scopes: Iterable[str]) -> tuple[tuple[int, ...], bool]:
    """The known values of ``scopes``, and whether every one was already read at each check.

    A scope seen for the first time is read at every check from now on; an entry filled under
    it may not be kept yet (a change just before it was tracked would go unnoticed)."""
    state = _state
    out = []
    tracked = True
    for scope in scopes:
        if scope not in state.tracked:
            with state.lock:
                if len(state.tracked) < TRACKED_LIMIT:
                    state.tracked.add(scope)
                    tracked = False
        out.append(state.values.get(scope, 0))
    return tuple(out), tracked


def still(scopes: tuple[str, ...], seen: tuple[int, ...]) -> bool:
    """Whether every scope still has the value it had when an entry was filled."""
    known = _state.values
    return all(known.get(s, 0) == v for s, v in zip(scopes, seen, strict=True))


def _apply(rows: Iterable[tuple[str, int]]) -> None:
    state = _state
    with state.lock:
        moved = False
        for scope, value in rows:
            if state.values.get(scope, 0) != value:
                state.values[scope] = value
                moved = True
        if moved:
            state.epoch += 1


def _read(cursor: Any, vendor: str) -> list[tuple[str, int]]:
    with _state.lock:
        tracked = list(_state.tracked)
    _state.checks += 1
    if not tracked:
        return []
    if len(tracked) >= TRACKED_LIMIT:
        cursor.execute("SELECT scope, value FROM connect_generation")
    elif vendor == "postgresql":
        cursor.execute(
            "SELECT scope, value FROM connect_generation WHERE scope = ANY(%s)", [tracked]
        )
    else:
        marks = ", ".join(["%s"] * len(tracked))
        cursor.execute(
            f"SELECT scope, value FROM connect_generation WHERE scope IN ({marks})",  # noqa: S608
            tracked,
        )
    return [(str(s), int(v)) for s, v in cursor.fetchall()]


def check_now() -> None:
    """Read the generations of the tracked scopes through Django's connection."""
    started = time.monotonic()
    with connection.cursor() as cursor:
        rows = _read(cursor, connection.vendor)
    _apply(rows)
    _state.last_check = started


def ensure_fresh(now: Callable[[], float] = time.monotonic) -> None:
    """The fallback: without a healthy listener, read the generations if the last read is
    ``CHECK_INTERVAL`` old. Starts the listener in a freshly forked process."""
    state = _state
    if state.listener_pid != os.getpid():
        start_listener()
    if state.healthy and not state.backstop:
        return
    if now() - state.last_check >= CHECK_INTERVAL:
        check_now()


def listener_healthy() -> bool:
    return _state.healthy


def checks_made() -> int:
    return _state.checks


# The listener -----------------------------------------------------------------------------


def start_listener() -> None:
    """Start this process's listener thread (once per process, after the fork)."""
    state = _state
    with state.lock:
        if state.listener_pid == os.getpid():
            return
        state.listener_pid = os.getpid()
        state.healthy = False
        state.stop = threading.Event()
    if not settings.CONNECT_GENERATIONS_LISTENER:
        return
    if settings.REDIS_URL:
        state.backstop = True
        target: Callable[[threading.Event], None] = _listen_redis
    elif connection.vendor == "postgresql":
        target = _listen_postgresql
    else:
        return  # SQLite: the fallback alone
    thread = threading.Thread(target=target, args=(state.stop,), name="generations", daemon=True)
    state.listener = thread
    thread.start()


def stop_listener() -> None:
    """Stop the listener (tests: the fallback then has to keep the bound)."""
    state = _state
    state.stop.set()
    state.healthy = False
    if state.listener is not None:
        state.listener.join(timeout=5)
        state.listener = None


def _own_postgresql_connection() -> Any:
    import psycopg

    params = connections["default"].get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("pool", None)
    params.pop("server_side_binding", None)
    return psycopg.connect(**params, autocommit=True)


def _check_on(conn: Any) -> None:
    with conn.cursor() as cursor:
        rows = _read(cursor, "postgresql")
    _apply(rows)


class _OwnReader:
    """The listener's reads, on a connection of its own outside Django's pool, kept open."""

    def __init__(self) -> None:
        self.conn: Any = None

    def check(self) -> None:
        if connection.vendor != "postgresql":
            check_now()
            connection.close()
            return
        if self.conn is None or self.conn.closed:
            self.conn = _own_postgresql_connection()
        _check_on(self.conn)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _listen_postgresql(stop: threading.Event) -> None:
    state = _state
    while not stop.is_set():
        try:
            with _own_postgresql_connection() as conn:
                conn.execute(f"LISTEN {CHANNEL}")
                _check_on(conn)  # what was missed before (or while) subscribing
                state.healthy = True
                while not stop.is_set():
                    if any(True for _ in conn.notifies(timeout=0.5, stop_after=1)):
                        for _ in conn.notifies(timeout=0.002):
                            pass  # one read answers every notification already here
                        _check_on(conn)
        except Exception:
            logger.warning("generations listener lost PostgreSQL; polling until it is back")
        state.healthy = False
        stop.wait(0.5)


def _listen_redis(stop: threading.Event) -> None:
    import redis

    state = _state
    while not stop.is_set():
        reader = _OwnReader()
        try:
            client = redis.Redis.from_url(
                settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=2
            )
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(_redis_channel())
            pubsub.get_message(timeout=1)  # the subscription's confirmation
            reader.check()  # what was missed before (or while) subscribing
            state.healthy = True
            while not stop.is_set():
                message = pubsub.get_message(timeout=0.5)
                if message is None:
                    continue
                while pubsub.get_message(timeout=0) is not None:
                    pass  # one read answers every message already here
                reader.check()
        except Exception:
            logger.warning("generations listener lost Redis; polling until it is back")
        state.healthy = False
        with contextlib.suppress(Exception):
            reader.close()
        stop.wait(0.5)


def _redis_channel() -> str:
    # Per database: the processes that share one share their generations.
    database = settings.DATABASES["default"]
    return f"{CHANNEL}:{database.get('HOST') or ''}:{database['NAME']}"


# Publishing (Redis) ---------------------------------------------------------------------------

_redis_client: Any = None


def publish() -> None:
    """Tell every process to read the generations (after a commit that may have bumped one)."""
    global _redis_client
    if not settings.REDIS_URL:
        return
    try:
        if _redis_client is None:
            import redis

            _redis_client = redis.Redis.from_url(
                settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1
            )
        _redis_client.publish(_redis_channel(), "check")
    except Exception:
        # The fallback still bounds staleness where listeners notice the lost connection;
        # a lost publish is logged for the operator.
        logger.warning("could not publish a generation change", exc_info=True)


def _writes_watched(sql: str) -> bool:
    head = sql.lstrip()[:6].upper()
    if head not in ("UPDATE", "DELETE", "INSERT"):
        return False
    return any(table in sql for table in WATCHED_TABLES)


def _publish_on_commit(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    result = execute(sql, params, many, context)
    if isinstance(sql, str) and _writes_watched(sql) and not _only_last_use(sql):
        conn = context["connection"]
        if conn.in_atomic_block:
            transaction.on_commit(publish, using=conn.alias)
        else:
            publish()
    return result


def _only_last_use(sql: str) -> bool:
    # The once-a-minute ``last_used_at`` write of a credential bumps nothing (the trigger
    # ignores it too).
    return (
        sql.lstrip().upper().startswith("UPDATE")
        and '"last_used_at" = ' in sql
        and ("revoked_at" not in sql)
    )


def _install_wrapper(sender: Any, connection: Any, **kwargs: Any) -> None:
    if _publish_on_commit not in connection.execute_wrappers:
        connection.execute_wrappers.append(_publish_on_commit)


connection_created.connect(_install_wrapper)
