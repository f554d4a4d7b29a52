"""The Activity page's events: what the logs recorded, newest first, with correlation ids.

Read from the tables that already record each thing — token issues (``tokenId``), install and
consent flows (``authorizationId``), provider webhooks (``triggerRequestId``) and their
deliveries, calls through the proxy (``proxyCallId``), and the audit rows about installations
and grants — one indexed query per source (the newest ``limit`` before a cursor), merged in
memory. Nothing is written for this page.
"""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from connect.models import (
    AuditEvent,
    AuthorizationRequest,
    Delivery,
    InboundEvent,
    ProxyCall,
    TokenIssue,
)
from connect.models.authorizations import AuthorizationOutcome
from connect.models.deliveries import DeliveryStatus
from connect.models.installations import SubjectType

#: Audit rows shown among the events (the rest are configuration: the audit log has them).
AUDIT_TYPES = (
    AuditEvent.Type.INSTALLATION_ADDED,
    AuditEvent.Type.INSTALLATION_REMOVED,
    AuditEvent.Type.GRANT_NEEDS_REAUTH,
    AuditEvent.Type.TOKEN_REVOKED,
    AuditEvent.Type.TOKEN_IMPORTED,
    AuditEvent.Type.TRIGGER_REJECTED,
)

TOKEN_OUTCOMES = ("issued",)
TRIGGER_OUTCOMES = ("verified", "unverified")
AUDIT_OUTCOMES = ("recorded",)
PROXY_OUTCOMES: tuple[str, ...] = tuple(ProxyCall.Outcome.values)
#: Every outcome the page filters on: fixed choices, never a DISTINCT over a log.
OUTCOMES: tuple[str, ...] = tuple(
    dict.fromkeys(
        (
            *TOKEN_OUTCOMES,
            *AuthorizationOutcome.values,
            *TRIGGER_OUTCOMES,
            *DeliveryStatus.values,
            *AUDIT_OUTCOMES,
            *PROXY_OUTCOMES,
        )
    )
)
BAD_OUTCOMES = frozenset({"failed", "denied", "expired", "unverified"})


@dataclass(frozen=True)
class EventFilter:
    """What the page was asked for; empty values filter nothing."""

    connector_id: int | None = None
    installation_public_id: str = ""
    subject: str = ""
    outcome: str = ""

    def subject_parts(self) -> tuple[str, str]:
        """``user:42`` is a type and an id; ``42`` is an id of any type; ``app`` the app."""
        if self.subject == "app":
            return "app", ""
        kind, sep, rest = self.subject.partition(":")
        return (kind, rest) if sep and kind in SubjectType.values else ("", self.subject)

    def narrow(
        self, rows: QuerySet[Any], *, connector: str, installation: str, grant: str | None = None
    ) -> QuerySet[Any]:
        """``rows`` of the connector, installation and subject asked for, each named by its
        path from the rows (``grant``: where the subject's type and id are, if they have one)."""
        if self.connector_id:
            rows = rows.filter(**{connector: self.connector_id})
        if self.installation_public_id:
            rows = rows.filter(**{installation: self.installation_public_id})
        if grant is not None:
            kind, subject_id = self.subject_parts()
            if subject_id:
                rows = rows.filter(**{f"{grant}subject_id": subject_id})
            if kind:
                rows = rows.filter(**{f"{grant}subject_type": kind})
        return rows


@dataclass(frozen=True)
class Event:
    at: datetime
    kind: str
    what: str
    outcome: str
    #: The admin page of what the event concerns (URL name, primary key).
    link: tuple[str, int]
    connector: Any = None
    installation: Any = None
    subject: str = ""
    correlation: dict[str, str] = field(default_factory=dict)

    @property
    def bad(self) -> bool:
        return self.outcome in BAD_OUTCOMES


def _tokens(
    base: QuerySet[TokenIssue], f: EventFilter, before: datetime, limit: int
) -> Iterator[Event]:
    if f.outcome and f.outcome not in TOKEN_OUTCOMES:
        return
    rows = f.narrow(
        base.filter(created_at__lt=before),
        connector="grant__installation__connector_id",
        installation="grant__installation__public_id",
        grant="grant__",
    )
    for issue in rows.select_related("grant__installation__connector").order_by("-created_at")[
        :limit
    ]:
        grant = issue.grant
        yield Event(
            at=issue.created_at,
            kind="token",
            what=f"Token handed out ({issue.environment})",
            outcome="issued",
            link=("admin:connect_tokenissue_change", issue.pk),
            connector=grant.installation.connector,
            installation=grant.installation,
            subject=grant.subject_label,
            correlation={"tokenId": issue.public_id},
        )


def _authorizations(
    base: QuerySet[AuthorizationRequest], f: EventFilter, before: datetime, limit: int
) -> Iterator[Event]:
    if f.outcome and f.outcome not in AuthorizationOutcome.values:
        return
    rows = base.filter(created_at__lt=before)
    if f.outcome:
        rows = rows.filter(outcome=f.outcome)
    rows = f.narrow(
        rows, connector="connector_id", installation="installation__public_id", grant=""
    )
    for request in rows.select_related("connector", "installation").order_by("-created_at")[:limit]:
        yield Event(
            at=request.created_at,
            kind="authorization",
            what=f"{request.get_kind_display()} flow"
            + (f": {request.error}" if request.error else ""),
            outcome=request.outcome,
            link=("admin:connect_authorizationrequest_change", request.pk),
            connector=request.connector,
            installation=request.installation,
            subject=f"{request.subject_type}:{request.subject_id}" if request.subject_id else "",
            correlation={"authorizationId": request.public_id},
        )


def _triggers(
    base: QuerySet[InboundEvent], f: EventFilter, before: datetime, limit: int
) -> Iterator[Event]:
    if (f.outcome and f.outcome not in TRIGGER_OUTCOMES) or f.subject:
        return
    rows = base.filter(received_at__lt=before)
    if f.outcome:
        rows = rows.filter(verified=f.outcome == "verified")
    rows = f.narrow(rows, connector="connector_id", installation="installation__public_id")
    for event in rows.select_related("connector", "installation").order_by("-received_at")[:limit]:
        yield Event(
            at=event.received_at,
            kind="trigger",
            what=f"Webhook {event.event_type or 'received'}",
            outcome="verified" if event.verified else "unverified",
            link=("admin:connect_inboundevent_change", event.pk),
            connector=event.connector,
            installation=event.installation,
            correlation={"triggerRequestId": event.public_id},
        )


def _deliveries(
    base: QuerySet[Delivery], f: EventFilter, before: datetime, limit: int
) -> Iterator[Event]:
    if (f.outcome and f.outcome not in DeliveryStatus.values) or f.subject:
        return
    # Trigger deliveries; a lifecycle event's are in its own log (LifecycleEvent's admin).
    rows = base.filter(created_at__lt=before, event__isnull=False)
    if f.outcome:
        rows = rows.filter(status=f.outcome)
    rows = f.narrow(
        rows, connector="event__connector_id", installation="event__installation__public_id"
    )
    chosen = rows.select_related("event__connector", "event__installation", "destination")
    for delivery in chosen.order_by("-created_at")[:limit]:
        assert delivery.event is not None  # filtered above
        attempts = f", {delivery.attempts} attempt(s)" if delivery.attempts else ""
        yield Event(
            at=delivery.created_at,
            kind="delivery",
            what=f"Delivery to {delivery.destination.path or '/'}{attempts}",
            outcome=delivery.status,
            link=("admin:connect_delivery_change", delivery.pk),
            connector=delivery.event.connector,
            installation=delivery.event.installation,
            correlation={
                "triggerRequestId": delivery.event.public_id,
                "webhookId": delivery.webhook_id,
            },
        )


def _audits(
    base: QuerySet[AuditEvent],
    f: EventFilter,
    before: datetime,
    limit: int,
    connector_public_id: str,
) -> Iterator[Event]:
    if (f.outcome and f.outcome not in AUDIT_OUTCOMES) or f.subject:
        return
    rows = base.filter(created_at__lt=before, type__in=AUDIT_TYPES)
    if connector_public_id:
        rows = rows.filter(targets__connectorId=connector_public_id)
    if f.installation_public_id:
        rows = rows.filter(targets__installationId=f.installation_public_id)
    for audit in rows.order_by("-created_at")[:limit]:
        yield Event(
            at=audit.created_at,
            kind="audit",
            what=f"{audit.type} by {audit.actor or 'system'}",
            outcome="recorded",
            link=("admin:connect_auditevent_change", audit.pk),
            correlation={k: str(v) for k, v in (audit.correlation or {}).items()},
        )


def _proxy_calls(
    base: QuerySet[ProxyCall], f: EventFilter, before: datetime, limit: int
) -> Iterator[Event]:
    if f.outcome and f.outcome not in PROXY_OUTCOMES:
        return
    rows = base.filter(created_at__lt=before)
    if f.outcome:
        rows = rows.filter(outcome=f.outcome)
    rows = f.narrow(
        rows,
        connector="connector_id",
        installation="grant__installation__public_id",
        grant="grant__",
    )
    chosen = rows.select_related("connector", "grant__installation")
    for call in chosen.order_by("-created_at")[:limit]:
        grant = call.grant
        yield Event(
            at=call.created_at,
            kind="proxy",
            what=f"Proxied {call.method} {call.path} → {call.status} in {call.latency_ms} ms"
            + (f" ({call.error_code})" if call.error_code else ""),
            outcome=call.outcome,
            link=("admin:connect_proxycall_change", call.pk),
            connector=call.connector,
            installation=grant.installation if grant is not None else None,
            subject=grant.subject_label if grant is not None else "",
            correlation={"proxyCallId": call.public_id},
        )


def events_list(
    *,
    team_ids: Sequence[int],
    event_filter: EventFilter,
    before: datetime,
    limit: int = 50,
    connector_public_id: str = "",
) -> list[Event]:
    """The newest ``limit`` events before ``before`` of the teams, matching the filter: at most
    one query per source, each served by an index on (team, time)."""
    teams = list(team_ids)
    sources: list[Callable[[], Iterator[Event]]] = [
        lambda: _tokens(TokenIssue.objects.for_team_ids(teams), event_filter, before, limit),
        lambda: _authorizations(
            AuthorizationRequest.objects.filter(connector__team_id__in=teams),
            event_filter,
            before,
            limit,
        ),
        lambda: _triggers(InboundEvent.objects.for_team_ids(teams), event_filter, before, limit),
        lambda: _deliveries(Delivery.objects.for_team_ids(teams), event_filter, before, limit),
        lambda: _proxy_calls(
            ProxyCall.objects.filter(team_id__in=teams), event_filter, before, limit
        ),
        lambda: _audits(
            AuditEvent.objects.filter(team_id__in=teams),
            event_filter,
            before,
            limit,
            connector_public_id,
        ),
    ]
    merged = [event for source in sources for event in source()]
    merged.sort(key=lambda e: e.at, reverse=True)
    return merged[:limit]
