"""JSON bodies as the API accepts them: valid JSON whose strings can be stored.

JSON may spell a lone surrogate (``"\\ud800"``) or a NUL (``"\\u0000"``). Python decodes both,
but the first cannot be encoded again and PostgreSQL refuses the second in text and jsonb, so
either would fail later, deep in a query or a hash, as a 500. They are refused here instead, as
a bad request. Only bodies that spell such an escape at all pay for the walk.
"""

import io
import re
from collections.abc import Mapping
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

SUSPECT_ESCAPE = re.compile(rb"\\u(?:[dD][89a-fA-F]|0000)")


def _storable(value: Any) -> bool:
    if isinstance(value, str):
        if "\x00" in value:
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(v) for v in value)
    return True


def storable_json(raw: bytes, data: Any) -> bool:
    """Whether ``data``, parsed from ``raw``, holds no NUL and no lone surrogate."""
    return not SUSPECT_ESCAPE.search(raw) or _storable(data)


class StrictJSONParser(JSONParser):
    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        raw = stream.read()
        data = super().parse(io.BytesIO(raw), media_type, parser_context)
        if not storable_json(raw, data):
            raise ParseError("The body spells a NUL or a lone surrogate.")
        return data
