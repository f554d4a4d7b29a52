"""Charts of the hourly counters as inline SVG, drawn on the server.

No library, no script, no style attribute (the content security policy allows none): shapes
with classes that ``static/connect/activity.css`` colours, and a ``<title>`` on each bar or
point that the browser shows on hover. Every value is escaped by ``format_html``.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from connect.services import activity

WIDTH = 360
HEIGHT = 130
LEFT = 34  # room for the y axis labels
BOTTOM = 18  # room for the x axis labels
TOP = 8


@dataclass(frozen=True)
class Series:
    name: str
    #: A class of ``activity.css`` (its colour), e.g. ``s-ok``.
    css: str
    values: Sequence[float | None]


def _nice_max(value: float) -> float:
    """A round ceiling for the y axis (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    magnitude = 1.0
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def _hour_label(hour: datetime, span: timedelta) -> str:
    # A day's chart starts at yesterday's hour: "13:00" alone read as later today.
    if span <= timedelta(hours=24):
        return f"{span.total_seconds() / 3600:.0f} h ago"
    return hour.strftime("%d %b")


def _frame(hours: Sequence[datetime], top_value: float, unit: str) -> SafeString:
    plot_bottom = HEIGHT - BOTTOM
    span = hours[-1] - hours[0] + timedelta(hours=1) if hours else timedelta(0)
    first, last = (hours[0], hours[-1]) if hours else (None, None)
    return format_html(
        '<line class="axis" x1="{l}" y1="{b}" x2="{r}" y2="{b}"/>'
        '<line class="grid" x1="{l}" y1="{t}" x2="{r}" y2="{t}"/>'
        '<text class="tick" x="{lx}" y="{ty}" text-anchor="end">{top}{unit}</text>'
        '<text class="tick" x="{lx}" y="{b}" text-anchor="end">0</text>'
        '<text class="tick" x="{l}" y="{xy}">{start}</text>'
        '<text class="tick" x="{r}" y="{xy}" text-anchor="end">{end}</text>',
        l=LEFT,
        r=WIDTH,
        b=plot_bottom,
        t=TOP,
        lx=LEFT - 4,
        ty=TOP + 4,
        xy=HEIGHT - 4,
        top=_number(top_value),
        unit=unit,
        start=_hour_label(first, span) if first else "",
        end="now" if last else "",
    )


def _figure(
    title: str, summary: str, body: SafeString, series: Sequence[Series], css: str
) -> SafeString:
    legend = format_html_join(
        "",
        '<li><svg class="swatch" width="10" height="10" aria-hidden="true">'
        '<rect class="{}" width="10" height="10"/></svg>{}</li>',
        ((s.css, s.name) for s in series),
    )
    return format_html(
        '<figure class="connect-chart {css}"><figcaption><strong>{title}</strong> '
        '<span class="connect-chart-summary">{summary}</span></figcaption>'
        '<svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{title}: '
        '{summary}">{body}</svg><ul class="connect-legend">{legend}</ul></figure>',
        css=css,
        title=title,
        summary=summary,
        w=WIDTH,
        h=HEIGHT,
        body=body,
        legend=legend,
    )


def stacked_bars(
    *,
    title: str,
    summary: str,
    hours: Sequence[datetime],
    series: Sequence[Series],
    css: str = "",
) -> SafeString:
    """One bar per hour, the series stacked bottom up."""
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(hours))]
    top = _nice_max(max(totals, default=0))
    plot_height = HEIGHT - BOTTOM - TOP
    slot = (WIDTH - LEFT) / max(len(hours), 1)
    bar = max(slot * 0.8, 1.0)
    shapes = []
    for i, hour in enumerate(hours):
        base = float(HEIGHT - BOTTOM)
        for s in series:
            value = s.values[i] or 0
            if not value:
                continue
            height = value / top * plot_height
            base -= height
            shapes.append(
                format_html(
                    '<rect class="{}" x="{}" y="{}" width="{}" height="{}">'
                    "<title>{} — {}: {}</title></rect>",
                    s.css,
                    f"{LEFT + i * slot + (slot - bar) / 2:.1f}",
                    f"{base:.1f}",
                    f"{bar:.1f}",
                    f"{height:.1f}",
                    hour.strftime("%d %b %H:00"),
                    s.name,
                    _number(value),
                )
            )
    body = _frame(hours, top, "") + mark_safe("".join(shapes))  # noqa: S308 - each one escaped
    return _figure(title, summary, body, series, css)


def lines(
    *,
    title: str,
    summary: str,
    hours: Sequence[datetime],
    series: Sequence[Series],
    unit: str = "",
    css: str = "",
) -> SafeString:
    """One polyline per series; an hour without a value breaks the line."""
    known = [v for s in series for v in s.values if v is not None]
    top = _nice_max(max(known, default=0))
    plot_height = HEIGHT - BOTTOM - TOP
    slot = (WIDTH - LEFT) / max(len(hours), 1)
    shapes = []
    for s in series:
        runs: list[list[str]] = [[]]
        for i, value in enumerate(s.values):
            if value is None:
                runs.append([])
                continue
            x = LEFT + i * slot + slot / 2
            y = HEIGHT - BOTTOM - value / top * plot_height
            runs[-1].append(f"{x:.1f},{y:.1f}")
            shapes.append(
                format_html(
                    '<circle class="{}" cx="{}" cy="{}" r="{}">'
                    "<title>{} — {}: {}{}</title></circle>",
                    s.css,
                    f"{x:.1f}",
                    f"{y:.1f}",
                    2 if len(hours) <= 48 else 1,
                    hours[i].strftime("%d %b %H:00"),
                    s.name,
                    _number(value),
                    unit,
                )
            )
        for run in runs:
            if len(run) > 1:
                shapes.append(
                    format_html('<polyline class="{}" points="{}"/>', s.css, " ".join(run))
                )
    body = _frame(hours, top, unit) + mark_safe("".join(shapes))  # noqa: S308 - each one escaped
    return _figure(title, summary, body, series, css)


def _percent(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "—"


def activity_charts(hours: Sequence[activity.Hour]) -> list[SafeString]:
    """The four charts of a stretch of hours: token requests (answered, refused, failed),
    their latency (p50, p95), deliveries, installs and consents."""
    starts = [h.start for h in hours]
    requests = sum(h.token_requests for h in hours)
    failed = [h.token_failures for h in hours]
    failures = sum(failed)
    # Refusals (a bad credential, a subject that never consented) are the caller's: the rate
    # is of failures, as health counts them; refusals are said apart.
    refused = [h.token_errors - h.token_failures for h in hours]
    refusing = f" · {sum(refused):,} refused" if sum(refused) else ""
    merged = sum((h.latency for h in hours), start=Counter[str]())
    p50, p95 = activity.percentile(merged, 0.5), activity.percentile(merged, 0.95)
    delivered = {
        outcome: [h.deliveries.get(outcome, 0) for h in hours]
        for outcome in ("succeeded", "retrying", "failed")
    }
    installed = [h.installs.get("added", 0) for h in hours]
    removed = [h.installs.get("removed", 0) + h.installs.get("removed_upstream", 0) for h in hours]
    consented = [h.consents.get("completed", 0) for h in hours]
    return [
        stacked_bars(
            title="Token requests",
            summary=f"{requests:,} · failed {_percent(failures, requests)}{refusing}",
            hours=starts,
            series=[
                Series("answered", "s-ok", [h.tokens.get("ok", 0) for h in hours]),
                Series("refused (caller)", "s-refused", refused),
                Series("failed", "s-failed", failed),
            ],
            css="chart-tokens",
        ),
        lines(
            title="Latency",
            summary=(
                f"p50 ≤ {_number(p50)} ms · p95 ≤ {_number(p95)} ms"
                if p50 is not None and p95 is not None
                else "—"
            ),
            hours=starts,
            series=[
                Series("p50", "s-p50", [h.latency_percentile(0.5) for h in hours]),
                Series("p95", "s-p95", [h.latency_percentile(0.95) for h in hours]),
            ],
            unit=" ms",
            css="chart-latency",
        ),
        stacked_bars(
            title="Deliveries",
            summary=" · ".join(f"{sum(n):,} {outcome}" for outcome, n in delivered.items()),
            hours=starts,
            series=[
                Series(outcome, css, delivered[outcome])
                for outcome, css in (
                    ("succeeded", "s-ok"),
                    ("retrying", "s-retrying"),
                    ("failed", "s-failed"),
                )
            ],
            css="chart-deliveries",
        ),
        stacked_bars(
            title="Installs and consents",
            summary=f"{sum(installed):,} installed · {sum(removed):,} removed · "
            f"{sum(consented):,} consents",
            hours=starts,
            series=[
                Series("installed", "s-ok", installed),
                Series("consented", "s-consent", consented),
                Series("removed", "s-failed", removed),
            ],
            css="chart-installs",
        ),
    ]


def activity_panels(
    *, team_ids: Sequence[int], connector_id: int | None = None, now: datetime | None = None
) -> list[tuple[str, list[SafeString]]]:
    """The last 24 hours and the last 7 days, each as its four charts (one query)."""
    week = activity.activity_hours(
        team_ids=team_ids, connector_id=connector_id, hours=24 * 7, now=now
    )
    return [("Last 24 hours", activity_charts(week[-24:])), ("Last 7 days", activity_charts(week))]
