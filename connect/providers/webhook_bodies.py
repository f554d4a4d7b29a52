"""Reading webhook bodies after their signature checked out."""

import json
from typing import Any

from connect.providers.base import MalformedWebhook


def json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedWebhook("the body is not JSON") from exc
    except RecursionError as exc:
        # A few hundred kilobytes of "[" fit in the size limit and exhaust the parser's stack.
        raise MalformedWebhook("the body nests too deeply") from exc
    if not isinstance(payload, dict):
        raise MalformedWebhook("the body is not a JSON object")
    return payload


def text(value: object) -> str:
    return value if isinstance(value, str) else str(value) if isinstance(value, int) else ""


def obj(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
