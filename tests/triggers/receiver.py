"""A deployment on loopback that records every forwarded request and answers as it is told.

``answer(path, (status, headers), ...)`` queues answers for a path; the last one repeats, and a
path with none answers 200; ``say(path, body)`` gives that path's answers a body (else empty).
``delay`` (every path) and ``slow(path, seconds)`` answer late.
``drip(path, every, length, phase)`` answers 200 one byte at a time, ``every`` seconds apart:
the body (``length`` bytes), or the header block itself (padded with a ``length``-byte header).
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
        self._drips: dict[str, tuple[float, int, str]] = {}
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._answers: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self._bodies: dict[str, bytes] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        #: Set when the receiver stops: late answers stop waiting.
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, path: str, *answers: tuple[int, dict[str, str]]) -> None:
        with self._lock:
            self._answers[path] = list(answers)

    def say(self, path: str, body: bytes) -> None:
        with self._lock:
            self._bodies[path] = body

    def _body_for(self, path: str) -> bytes:
        with self._lock:
            return self._bodies.get(path, b"")

    def slow(self, path: str, seconds: float) -> None:
        with self._lock:
            self._slow[path] = seconds

    def drip(self, path: str, every: float, length: int, phase: str = "body") -> None:
        assert phase in {"body", "headers"}
        with self._lock:
            self._drips[path] = (every, length, phase)

    def stop_dripping(self, path: str) -> None:
        with self._lock:
            self._drips.pop(path, None)

    def _drip_for(self, path: str) -> tuple[float, int, str] | None:
        with self._lock:
            return self._drips.get(path)

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
                drip = receiver._drip_for(self.path)
                if drip is not None:
                    self._drip(*drip)
                    return
                status, headers = receiver._next_answer(self.path)
                answer = receiver._body_for(self.path)
                receiver._stopped.wait(receiver._delay_for(self.path))
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the sender is gone (a test killed it); nobody to answer

            # A check that calls a URL (an API key's verifyUrl) is recorded and answered alike.
            do_GET = do_POST

            def _drip(self, every: float, length: int, phase: str) -> None:
                if phase == "headers":
                    head = b"HTTP/1.1 200 OK\r\nX-Padding: "
                    payload, tail = b"x" * length, b"\r\nContent-Length: 0\r\n\r\n"
                else:
                    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % length
                    payload, tail = b"." * length, b""
                try:
                    self.wfile.write(head)
                    for index in range(len(payload)):
                        self.wfile.write(payload[index : index + 1])
                        time.sleep(every)
                    self.wfile.write(tail)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the sender hung up, as it should at its deadline
                self.close_connection = True

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
        self._stopped.set()
        self.down()
