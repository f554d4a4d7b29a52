"""gunicorn's settings for Connect: ``gunicorn -c config/gunicorn.py config.wsgi``.

Command-line flags (bind address, workers, log files) still override what is set here; what
this file adds is an access log that never records an authorization code, a state or a result
verifier, whatever ``--access-logformat`` asks for (see ``connect/redaction.py``).
"""

from typing import Any

from gunicorn.glogging import Logger

from connect.redaction import RedactingFilter, redact_target, redact_text

_redacting = RedactingFilter()


class RedactingLogger(Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # "Error handling request /connect/callback?code=…" and the like.
        self.error_log.addFilter(_redacting)

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
