"""How log lines look: the request id on every line, one JSON object per line when
``LOG_FORMAT=json``, and Celery's routine chatter kept out of the way.

Used by ``LOGGING`` in ``config/settings.py`` and by gunicorn's logger in ``config/gunicorn.py``;
imports nothing of Django, so gunicorn's master can load it before the app.
"""

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from celery import current_task
from celery.app.trace import LOG_RECEIVED, LOG_SUCCESS

from connect.redaction import redact_text

#: The id of the request being handled in this context (thread or task), set by
#: ``connect.request_ids.RequestIdMiddleware``; "-" outside any request.
request_id: ContextVar[str] = ContextVar("connect_request_id", default="-")

# What every LogRecord carries; anything else on a record came through ``extra=``.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class RequestIdFilter(logging.Filter):
    """Puts ``request_id`` (and, inside a Celery task, ``task_id``) on every record, for both
    formats. On a handler, so it reaches records propagated from any logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        task = current_task._get_current_object()
        if task is not None and not hasattr(record, "task_id") and task.request.id:
            record.task_id = task.request.id
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp (UTC, ISO 8601), level, logger, message, request_id,
    then the exception and whatever the call passed in ``extra``. The message has been through
    the redaction filter already; an exception's text and the extras are redacted here."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", request_id.get()),
        }
        if record.exc_info:
            line["exception"] = redact_text(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exception"] = redact_text(record.exc_text)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        for name, value in vars(record).items():
            if name in _STANDARD_ATTRIBUTES or name in line:
                continue
            # Anything else as redacted text: Django passes the request itself, whose repr
            # is its path and query string.
            plain = value is None or isinstance(value, bool | int | float)
            line[name] = value if plain else redact_text(str(value))
        return json.dumps(line, ensure_ascii=False)


#: Celery's per-task lines (``celery.app.trace``, ``celery.worker.strategy``) and beat's
#: (``celery.beat``) that say only that routine work happened, by their format strings.
ROUTINE_CELERY_LINES = frozenset({LOG_RECEIVED, LOG_SUCCESS, "Scheduler: Sending due task %s (%s)"})


class RoutineCeleryLines(logging.Filter):
    """Turns Celery's "received", "succeeded" and "Sending due task" lines into DEBUG lines.

    Beat sends the sweeper every 5 seconds and the worker receives and finishes it: three INFO
    lines every 5 seconds, and three per doorbell under load, that bury everything else.
    Failures, retries, rejections and what our own tasks log keep their levels; with
    ``LOG_LEVEL=DEBUG`` the routine lines show again. Set on those loggers in ``LOGGING``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        routine = isinstance(record.msg, str) and record.msg in ROUTINE_CELERY_LINES
        if record.levelno != logging.INFO or not routine:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
