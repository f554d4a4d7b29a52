"""How loud a logged answer is: an upstream's failure is a warning here, not our error.

Django logs every 5xx answer as an ERROR on ``django.request`` ("Bad Gateway: /v1/connect/
token/…"). A 502, 503 or 504 is answered on purpose, when a provider (or another upstream) did
not answer; its cause is logged as a warning where it happened (``connect.services.grants``).
An ERROR, which pages whoever runs the app, stays for what is ours to fix: a 500. Imports
nothing of Django, like ``connect.redaction``, so the logging configuration can load it early.
"""

import logging

#: Answers that say an upstream failed: Bad Gateway, Service Unavailable, Gateway Timeout.
UPSTREAM_FAILURES = frozenset({502, 503, 504})


class UpstreamFailureFilter(logging.Filter):
    """On ``django.request``: an answer that reports an upstream's failure is logged at WARNING
    (records keep every other field; redaction runs on them as before)."""

    def filter(self, record: logging.LogRecord) -> bool:
        upstream = getattr(record, "status_code", None) in UPSTREAM_FAILURES
        if upstream and record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True
