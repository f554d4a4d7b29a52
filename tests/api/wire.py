"""What every error response of the API must look like, whoever produced it."""

import json
from typing import Any

from django.test import Client


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The envelope ``{"error": {"code", "message"[, "vendor"]}}`` and nothing else.

    Works for Django test responses and ``requests`` responses alike.
    """
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers.get("X-Request-Id"), "every API response carries a request id"
    body = response.json()
    assert list(body) == ["error"], body
    error = body["error"]
    assert set(error) in ({"code", "message"}, {"code", "message", "vendor"}), error
    assert error["code"] == code, error
    assert isinstance(error["message"], str), error
    assert error["message"], error
    if "vendor" in error:
        assert isinstance(error["vendor"], dict), error
        assert error["vendor"], error
    return error


APP = {"subject": {"type": "app"}}


def post_json(client: Client, path: str, body: Any = APP, **extra: Any) -> Any:
    """POST a JSON body (a ``str`` is sent as is), as the SDKs do."""
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post(path, data=data, content_type="application/json", **extra)


def delete_json(client: Client, path: str, body: Any = None, **extra: Any) -> Any:
    """DELETE with a JSON body, as the SDKs revoke; ``None`` sends no body at all."""
    if body is None:
        return client.delete(path, **extra)
    data = body if isinstance(body, str) else json.dumps(body)
    return client.delete(path, data=data, content_type="application/json", **extra)
