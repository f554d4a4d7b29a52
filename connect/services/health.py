"""A connector's health, from what happened to it rather than from its configuration alone.

Read from the hourly counters (``connect.services.activity``) and two small queries, for a page
of connectors at once: the share of token requests that failed for the connector's own reasons
and of deliveries that failed, in the last hour (the current hour and the one before, as the
counters keep whole hours); a provider answering ``invalid_client`` (the client secret no
longer works); grants waiting for their subject to authorize again; installations removed at
the provider in the last day. Each finding says why, in a sentence an admin can act on; the
worst one colours the badge.
"""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum

from django.db.models import Count
from django.utils import timezone

from connect.models import Connector, Grant
from connect.models.activity import ActivityKind
from connect.models.installations import GrantStatus
from connect.services import activity

RECENT = timedelta(hours=1)
REMOVALS_RECENT = timedelta(hours=24)
#: Shares of failed token requests (or deliveries) that turn the badge amber and red.
WARN_SHARE = 0.10
FAIL_SHARE = 0.50


class Level(IntEnum):
    OK = 0
    WARN = 1
    FAIL = 2

    @property
    def css(self) -> str:
        return {Level.OK: "ok", Level.WARN: "warn", Level.FAIL: "fail"}[self]

    @property
    def label(self) -> str:
        return {Level.OK: "Healthy", Level.WARN: "Degraded", Level.FAIL: "Failing"}[self]


@dataclass(frozen=True)
class Finding:
    level: Level
    reason: str


@dataclass(frozen=True)
class Health:
    findings: tuple[Finding, ...] = ()
    #: Said when nothing is wrong: what the last hour looked like.
    summary: str = ""
    level: Level = field(init=False)

    def __post_init__(self) -> None:
        worst = max((f.level for f in self.findings), default=Level.OK)
        object.__setattr__(self, "level", worst)

    @property
    def reason(self) -> str:
        """The worst finding's reason (the first of equals), or the summary."""
        for finding in sorted(self.findings, key=lambda f: -f.level):
            return finding.reason
        return self.summary

    @property
    def reasons(self) -> list[str]:
        return [f.reason for f in sorted(self.findings, key=lambda f: -f.level)] or [self.summary]

    def __str__(self) -> str:
        return f"{self.level.label}: {self.reason}"


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _share_level(failed: int, total: int) -> Level:
    if not failed or not total:
        return Level.OK
    share = failed / total
    if share >= FAIL_SHARE:
        return Level.FAIL
    return Level.WARN if share >= WARN_SHARE else Level.OK


def _token_findings(recent: activity.Hour) -> list[Finding]:
    findings = []
    invalid_client = recent.provider_errors.get("invalid_client", 0)
    if invalid_client:
        findings.append(
            Finding(
                Level.FAIL,
                f"The provider refused the client credentials (invalid_client) "
                f"{_plural(invalid_client, 'time')} in the last hour: check the client secret.",
            )
        )
    failed, total = recent.token_failures, recent.token_requests
    level = _share_level(failed, total)
    if level:
        failures = Counter(
            {k: n for k, n in recent.tokens.items() if activity._is_failure(k)}
        ).most_common(1)
        most = f" (mostly {failures[0][0]})" if failures else ""
        findings.append(
            Finding(
                level,
                f"{failed} of {_plural(total, 'token request')} failed in the last hour{most}.",
            )
        )
    return findings


def _delivery_findings(recent: activity.Hour) -> list[Finding]:
    failed = recent.deliveries.get("failed", 0)
    retrying = recent.deliveries.get("retrying", 0)
    total = failed + retrying + recent.deliveries.get("succeeded", 0)
    if failed:
        level = max(_share_level(failed, total), Level.WARN)
        return [
            Finding(
                level,
                f"{failed} of {_plural(total, 'delivery attempt')} failed for good in the last "
                "hour.",
            )
        ]
    if retrying and _share_level(retrying, total) >= Level.FAIL:
        return [
            Finding(
                Level.WARN,
                f"{retrying} of {_plural(total, 'delivery attempt')} in the last hour will be "
                "retried: the destination is not answering.",
            )
        ]
    return []


def _summary(recent: activity.Hour | None) -> str:
    if recent is None or not (recent.token_requests or sum(recent.deliveries.values())):
        return "No token requests or deliveries in the last hour."
    parts = []
    if recent.token_requests:
        parts.append(_plural(recent.token_requests, "token request"))
    delivered = sum(recent.deliveries.values())
    if delivered:
        parts.append(_plural(delivered, "delivery attempt"))
    return f"{' and '.join(parts)} in the last hour, none failing."


def connectors_health(
    *, connectors: Iterable[Connector], now: datetime | None = None
) -> dict[int, Health]:
    """Health of each connector, by primary key, in three queries whatever their number."""
    now = now or timezone.now()
    connectors = list(connectors)
    ids = [c.pk for c in connectors]
    if not ids:
        return {}
    recent = activity.recent_by_connector(connector_ids=ids, since=now - RECENT)
    removals = activity.recent_by_connector(
        connector_ids=ids, since=now - REMOVALS_RECENT, kinds=[ActivityKind.INSTALL]
    )
    reauth = dict(
        Grant.objects.filter(status=GrantStatus.NEEDS_REAUTH, installation__connector_id__in=ids)
        .order_by()
        .values_list("installation__connector_id")
        .annotate(n=Count("pk"))
        .values_list("installation__connector_id", "n")
    )
    health = {}
    for connector in connectors:
        findings: list[Finding] = []
        if connector.provider.static_token and not connector.has_secret("api_key"):
            findings.append(Finding(Level.FAIL, "API key missing: no token can be handed out."))
        hour = recent.get(connector.pk)
        if hour is not None:
            findings += _token_findings(hour)
            findings += _delivery_findings(hour)
        waiting = reauth.get(connector.pk, 0)
        if waiting:
            findings.append(
                Finding(
                    Level.WARN,
                    f"{_plural(waiting, 'grant')} {'needs' if waiting == 1 else 'need'} "
                    "re-authorization: the subject must connect again.",
                )
            )
        removed = removals.get(connector.pk)
        upstream = removed.installs.get("removed_upstream", 0) if removed else 0
        if upstream:
            findings.append(
                Finding(
                    Level.WARN,
                    f"{_plural(upstream, 'installation')} removed at the provider in the last "
                    "24 h.",
                )
            )
        health[connector.pk] = Health(tuple(findings), summary=_summary(hour))
    return health


def connector_health(*, connector: Connector, now: datetime | None = None) -> Health:
    """One connector's health (``connectors_health`` for a page of them)."""
    return connectors_health(connectors=[connector], now=now)[connector.pk]
