"""Filters that vet a stored value where a page uses it: whatever reached the database, a page
links only to web URLs and writes only hex colours into a stylesheet."""

import re

from django import template

from connect.models.connectors import COLOR_PATTERN
from connect.web_urls import web_url_or_empty

register = template.Library()

_COLOR = re.compile(COLOR_PATTERN)


@register.filter
def web_url(value: object) -> str:
    """The URL when it is an http(s) URL we accept, else an empty string."""
    return web_url_or_empty(value)


@register.filter
def brand_color(value: object, default: str) -> str:
    """A ``#rrggbb`` colour, else ``default``: the value is written inside a ``<style>``."""
    return value if isinstance(value, str) and _COLOR.fullmatch(value) else default
