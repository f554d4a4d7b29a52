"""The one rule for URLs a person configures or the app learns: absolute ``https://`` URLs
(``http://`` too outside production mode), naming a host, and nothing a browser reads
differently from Python.

It is applied when a URL is saved (model validation, the runtime API, discovery) and again where
one is used (a page that links to it or shows it), so a value written to the database by other
means still never reaches a page as ``javascript:`` or ``data:``.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

MAX_LENGTH = 2048


class UnsafeURL(ValueError):
    """Not a URL we accept; the message says why, in words for the person who typed it."""


def allowed_schemes() -> tuple[str, ...]:
    return ("https",) if settings.PRODUCTION else ("https", "http")


def check_web_url(value: object) -> str:
    """``value`` if it is an absolute http(s) URL we accept, else ``UnsafeURL`` saying why."""
    wanted = " or ".join(f"{scheme}://" for scheme in allowed_schemes())
    if not isinstance(value, str) or not value:
        raise UnsafeURL(f"must be an absolute {wanted} URL")
    if len(value) > MAX_LENGTH:
        raise UnsafeURL(f"must be at most {MAX_LENGTH} characters long")
    # Browsers drop tabs and newlines anywhere in a URL ("java\tscript:") and read "\" as "/"
    # ("https://ok.example\@evil.example" goes to ok.example, Python's parser says evil.example).
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise UnsafeURL("must not contain spaces or control characters")
    if "\\" in value:
        raise UnsafeURL("must not contain backslashes")
    parts = urlsplit(value)
    if parts.scheme not in allowed_schemes():
        if parts.scheme == "http":
            raise UnsafeURL("must use https:// in production")
        if not parts.scheme:
            raise UnsafeURL(f"must be an absolute URL starting with {wanted}")
        raise UnsafeURL(f"must be a {wanted} URL, not {parts.scheme}:")
    if not parts.netloc or not parts.hostname:
        raise UnsafeURL(f"must name a host, as in {allowed_schemes()[0]}://example.com/…")
    if "@" in parts.netloc:
        raise UnsafeURL("must not carry a user name or password")
    try:
        parts.port  # noqa: B018 — parsing the port is the check
    except ValueError as exc:
        raise UnsafeURL("has an invalid port") from exc
    return value


def check_web_origin(value: object) -> str:
    """An origin (``https://app.example.com``, a port allowed): a web URL without a path."""
    check_web_url(value)
    assert isinstance(value, str)
    parts = urlsplit(value)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UnsafeURL("must be an origin such as https://app.example.com, without a path")
    return value


def is_web_url(value: object) -> bool:
    try:
        check_web_url(value)
    except UnsafeURL:
        return False
    return True


def web_url_or_empty(value: object) -> str:
    """For pages: the URL when it passes, else nothing (an icon is left out, a link hidden)."""
    return value if isinstance(value, str) and is_web_url(value) else ""


def validate_web_url(value: object) -> None:
    """The rule as a Django validator, for model and form fields."""
    try:
        check_web_url(value)
    except UnsafeURL as exc:
        raise ValidationError(f"This URL {exc}.", code="invalid_url") from exc
