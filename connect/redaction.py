"""What no log line may carry: the authorization code and state a provider sends to the callback,
and the result verifier a deployment polls with.

Both travel in URLs (``/connect/callback?code=…&state=…``, ``/v1/connect/result/scv_…``), and
URLs are what access logs and Django's ``django.request`` warnings write down: a poll answered
``authorization_pending`` is a 400, logged as ``Bad Request: /v1/connect/result/scv_…`` every
second. Used by the logging configuration in ``config/settings.py`` and by gunicorn's access
logger in ``config/gunicorn.py``; imports nothing of Django, so gunicorn's master can load it.
"""

import logging
import re
from urllib.parse import parse_qsl

REDACTED = "[redacted]"
#: Paths whose whole query string is secret (the provider's code and our state).
SECRET_QUERY_PATHS = ("/connect/callback",)
#: Parameter names whose value is a secret wherever they appear.
SECRET_PARAMETERS = frozenset(
    {
        "access_token",
        "assertion",
        "client_assertion",
        "client_secret",
        "code",
        "code_verifier",
        "id_token",
        "password",
        "refresh_token",
        "state",
        "token",
    }
)
RESULT_PATH = re.compile(r"(/v1/connect/result/)[^/?#\s\"']+")
# A verifier anywhere, its underscore percent-encoded or not.
VERIFIER = re.compile(r"scv(?:_|%5f)[A-Za-z0-9_%\-]+", re.IGNORECASE)
# A request target inside free text (a request line, a referer, a log message).
TARGET = re.compile(r"(?P<path>/[^\s?\"'#]*)\?(?P<query>[^\s\"'#]*)")


def redact_path(path: str) -> str:
    path = RESULT_PATH.sub(rf"\g<1>{REDACTED}", path)
    return VERIFIER.sub(f"scv_{REDACTED}", path)


def redact_query(path: str, query: str) -> str:
    """The query string, or ``[redacted]`` when it may carry a secret: the names are kept only
    when none is one, so no ``?code=`` survives even with its value gone."""
    if not query:
        return query
    names = {name.lower() for name, _ in parse_qsl(query, keep_blank_values=True)}
    if (
        path.rstrip("/").endswith(SECRET_QUERY_PATHS)
        or names & SECRET_PARAMETERS
        or VERIFIER.search(query)
    ):
        return REDACTED
    return query


def redact_target(path: str, query: str) -> tuple[str, str]:
    """A request's (path, query string) as a log may show them."""
    return redact_path(path), redact_query(path, query)


def redact_text(text: str) -> str:
    """Every request target in free text redacted as above, then any verifier left over."""

    def target(match: re.Match[str]) -> str:
        path, query = redact_target(match["path"], match["query"])
        return f"{path}?{query}"

    return redact_path(TARGET.sub(target, text))


class RedactingFilter(logging.Filter):
    """Rewrites a record's message in place, so every handler after it (Django's, pytest's,
    ours) sees only the redacted text. On a logger it applies to records logged there; on a
    handler, to every record the handler writes."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record: the handler reports it, not us
            return True
        safe = redact_text(message)
        if safe != message:
            record.msg, record.args = safe, None
        return True
