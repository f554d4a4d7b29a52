"""gunicorn's settings for Connect: ``gunicorn -c config/gunicorn.py config.wsgi``.

Command-line flags (bind address, workers, log files) still override what is set here; what
this file adds is:

- an access log that never records an authorization code, a state or a result verifier,
  whatever ``--access-logformat`` asks for (see ``connect/redaction.py``), and carries each
  request's id (in the default format, and as ``request_id`` in JSON lines);
- with ``LOG_FORMAT=json``, gunicorn's own lines (error and access log) as JSON objects too;
- threaded workers (``gthread``), for the proxy's long calls;
- Prometheus' multiprocess mode for ``/metrics``: every worker counts into ``var/metrics/web``
  (``connect/metrics_processes.py``), emptied when the master starts; a worker that exits is
  marked dead there.
"""

import os
from typing import Any

from gunicorn.glogging import Logger

from connect import logs, metrics_processes
from connect.redaction import RedactingFilter, redact_target, redact_text

# Before the app is loaded (--preload loads it before on_starting): prometheus_client reads
# the folder from the environment when it is first imported.
metrics_processes.multiprocess_start("web", empty=False)

# Threaded workers: a proxied call (connect/services/proxy.py) waits on a provider for up to
# CONNECT_PROXY_TIMEOUT seconds, and must hold one thread for it, never a whole process. The
# proxy takes at most CONNECT_PROXY_PROCESS_CONCURRENCY of a worker's threads.
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "8"))

access_log_format = (
    '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" id=%({x-request-id}o)s'
)

_redacting = RedactingFilter()
_request_ids = logs.RequestIdFilter()


def on_starting(server: Any) -> None:
    metrics_processes.multiprocess_empty("web")


def child_exit(server: Any, worker: Any) -> None:
    metrics_processes.process_dead(worker.pid)


class RedactingLogger(Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # "Error handling request /connect/callback?code=…" and the like.
        self.error_log.addFilter(_redacting)
        if os.environ.get("LOG_FORMAT", "").strip().lower() == "json":
            for handler in (*self.error_log.handlers, *self.access_log.handlers):
                handler.addFilter(_request_ids)
                handler.setFormatter(logs.JsonFormatter())

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        # The id the app answered with: by now the app has finished with the request.
        answered = dict((name.lower(), value) for name, value in getattr(resp, "headers", []))
        token = logs.request_id.set(answered.get("x-request-id", "-"))
        try:
            super().access(resp, req, environ, request_time)
        finally:
            logs.request_id.reset(token)

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> Any:
        atoms = super().atoms(resp, req, environ, request_time)
        # Every text atom (request line, referer, headers, environ) goes through the text
        # redaction; path and query are then judged by their decoded form, so a percent-encoded
        # path ("/v1/connect/%72esult/…") is recognised too.
        safe = {key: redact_text(v) if isinstance(v, str) else v for key, v in atoms.items()}
        path, query = environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "")
        safe_path, safe_query = redact_target(path, query)
        if (safe_path, safe_query) != (path, query):
            target = safe_path + (f"?{safe_query}" if safe_query else "")
            safe["r"] = f"{environ['REQUEST_METHOD']} {target} {environ['SERVER_PROTOCOL']}"
            safe["U"], safe["q"] = safe_path, safe_query
            safe["{raw_uri}e"], safe["{path_info}e"] = target, safe_path
            safe["{query_string}e"] = safe_query
        return safe


logger_class = RedactingLogger
