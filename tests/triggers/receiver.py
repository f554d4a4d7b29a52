"""A deployment on loopback that records every forwarded request and answers as it is told.

``answer(path, (status, headers), ...)`` queues answers for a path; the last one repeats, and a
path with none answers 200. ``delay`` (every path) and ``slow(path, seconds)`` answer late.
``down()`` closes the listening socket (connections are refused) and ``up()`` listens again on
the same port.
"""

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

from tests.triggers.processes import free_port


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    at: float  # time.time() when the request arrived


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.delay = 0.0
        self._slow: dict[str, float] = {}
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._answers: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, path: str, *answers: tuple[int, dict[str, str]]) -> None:
        with self._lock:
            self._answers[path] = list(answers)

    def slow(self, path: str, seconds: float) -> None:
        with self._lock:
            self._slow[path] = seconds

    def _delay_for(self, path: str) -> float:
        with self._lock:
            return self._slow.get(path, self.delay)

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self._received if path is None or r.path == path]

    def webhook_ids(self) -> set[str]:
        return {r.headers["webhook-id"] for r in self.received()}

    def _next_answer(self, path: str) -> tuple[int, dict[str, str]]:
        with self._lock:
            queued = self._answers.get(path)
            if not queued:
                return 200, {}
            return queued.pop(0) if len(queued) > 1 else queued[0]

    def _record(self, received: Received) -> None:
        with self._lock:
            self._received.append(received)

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver._record(
                    Received(
                        path=self.path,
                        headers={k.lower(): v for k, v in self.headers.items()},
                        body=body,
                        at=time.time(),
                    )
                )
                status, headers = receiver._next_answer(self.path)
                time.sleep(receiver._delay_for(self.path))
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except (BrokenPipeError, ConnectionResetError):
                    return  # the sender is gone (a test killed it); nobody to answer

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def down(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()
