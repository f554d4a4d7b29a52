"""Tables for people, JSON for scripts (``--format json`` prints the server's answer as is)."""

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import click

Column = tuple[str, Callable[[dict[str, Any]], Any]]


def when(millis: Any) -> str:
    """Epoch milliseconds as ``2026-12-03 06:40:12Z``; blank when absent."""
    if not isinstance(millis, int | float) or millis <= 0:
        return ""
    return datetime.fromtimestamp(millis / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column], empty: str) -> None:
    """An aligned table, or ``empty`` when there are no rows."""
    if not rows:
        click.echo(empty)
        return
    cells = [[text(get(row)) for _, get in columns] for row in rows]
    heads = [name for name, _ in columns]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    click.echo("  ".join(h.upper().ljust(w) for h, w in zip(heads, widths, strict=True)).rstrip())
    for line in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def fields(pairs: Sequence[tuple[str, Any]]) -> None:
    """``Name:  value`` lines for one object."""
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        click.echo(f"{(key + ':').ljust(width + 1)}  {text(value)}")
