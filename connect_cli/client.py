"""A small HTTP client for a Connect server: JSON in, JSON out, the error envelope turned into
``ApiError`` with the server's own message."""

from typing import Any
from urllib.parse import quote

import click
import requests

TIMEOUT = 30.0
USER_AGENT = "connect-cli/0.1"

EXIT_API = 1  # the server refused (4xx): its message is shown
EXIT_USAGE = 2  # click's own: a wrong flag or argument, or no server/token configured
EXIT_UNREACHABLE = 3  # no answer, or a 5xx, or an answer that is not ours


class ApiError(click.ClickException):
    """An answer outside 2xx, with the envelope's code and message."""

    exit_code = EXIT_API

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{message} ({code}, HTTP {status})")
        self.status, self.code, self.api_message = status, code, message


class ServerFailed(ApiError):
    """A 5xx: the server, not the request, is at fault."""

    exit_code = EXIT_UNREACHABLE


class Unreachable(click.ClickException):
    exit_code = EXIT_UNREACHABLE


def segment(value: str) -> str:
    """One path segment: a uid's ``/`` travels as ``%2F``, as Vercel's clients send it."""
    return quote(value, safe="")


class Client:
    """Calls one server with one bearer token."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers["Accept"] = "application/json"

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        token: str | None = None,
    ) -> Any:
        """The decoded JSON answer (None for 204); ApiError or Unreachable otherwise."""
        headers = {}
        bearer = token or self.token
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        query = {k: v for k, v in (params or {}).items() if v not in (None, "", ())}
        try:
            response = self.session.request(
                method,
                self.url + path,
                json=body,
                params=query,
                headers=headers,
                timeout=TIMEOUT,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise Unreachable(f"Cannot reach {self.url}: {exc.__class__.__name__}: {exc}") from exc
        if (response.status_code == 204 or not response.content) and response.ok:
            return None
        try:
            data = response.json()
        except ValueError:
            data = None
        if not response.ok or 300 <= response.status_code < 400:
            error = data.get("error") if isinstance(data, dict) else None
            if isinstance(error, dict) and "message" in error:
                raise (ServerFailed if response.status_code >= 500 else ApiError)(
                    response.status_code, str(error.get("code", "error")), str(error["message"])
                )
            snippet = response.text[:200].strip() or response.reason
            kind = ServerFailed if response.status_code >= 500 else ApiError
            raise kind(response.status_code, "http_error", f"{self.url}{path}: {snippet}")
        if data is None:
            raise Unreachable(f"{self.url}{path} did not answer JSON: is this a Connect server?")
        return data

    def pages(self, path: str, key: str, params: dict[str, Any], limit: int | None) -> list[Any]:
        """Every item of a cursor-paginated list (``pagination.next``), or the first ``limit``."""
        items: list[Any] = []
        cursor: str | None = None
        while True:
            page_size = min(100, limit - len(items)) if limit else 100
            page = self.call("GET", path, params={**params, "limit": page_size, "cursor": cursor})
            items.extend(page.get(key, []))
            cursor = (page.get("pagination") or {}).get("next")
            if not cursor or (limit and len(items) >= limit):
                return items[:limit] if limit else items
