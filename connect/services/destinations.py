from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from connect import errors
from connect.models import AuditEvent, Connector, Delivery, Environment, TriggerDestination
from connect.models.deliveries import DeliveryStatus
from connect.models.destinations import (
    DestinationKind,
    DisabledReason,
    new_signing_secret,
    no_base_url_message,
)
from connect.services.audit import Actor, audit_record


def _record(
    destination: TriggerDestination,
    type: AuditEvent.Type,
    *,
    actor: Actor,
    fields: dict[str, Any] | None = None,
) -> None:
    audit_record(
        team=destination.connector.team_id,
        type=type,
        actor=actor,
        targets={
            "connectorId": destination.connector.public_id,
            "destinationId": destination.public_id,
        },
        fields=fields,
    )


@transaction.atomic
def destination_save(*, destination: TriggerDestination, actor: Actor) -> TriggerDestination:
    """Save a destination; a new one gets its own ``whsec_`` signing secret. Turning on one the
    app had disabled clears the reason (the audit log keeps it)."""
    if not destination.has_secret("signing_secret"):
        destination.seal("signing_secret", new_signing_secret())
    reenabled = destination.enabled and destination.disabled_at is not None
    if reenabled:
        _record(
            destination,
            AuditEvent.Type.DESTINATION_REENABLED,
            actor=actor,
            fields={"wasDisabledFor": destination.disabled_reason},
        )
        destination.mark_enabled()
    destination.full_clean()
    destination.save()
    _record(destination, AuditEvent.Type.DESTINATION_SAVED, actor=actor)
    return destination


@dataclass(frozen=True)
class DestinationSpec:
    project_public_id: str
    environment: str
    path: str


@dataclass
class DestinationsReplaced:
    destinations: list[TriggerDestination]
    new_secrets: dict[int, str] = field(repr=False)  # shown once, for rows created now


@transaction.atomic
def destinations_replace(
    *,
    connector: Connector,
    specs: list[DestinationSpec],
    actor: Actor,
    only_project_id: int | None = None,
) -> DestinationsReplaced:
    """Make the connector's enabled destinations exactly ``specs``; rows that stay (or come
    back) keep their secrets, and a removed row with a delivery history is disabled, not lost.

    ``only_project_id`` confines the replacement to one project (a deployment may manage only
    its own project's destinations).
    """
    if len(specs) > settings.CONNECT_MAX_DESTINATIONS:
        raise errors.InvalidRequest(
            f"At most {settings.CONNECT_MAX_DESTINATIONS} destinations per connector."
        )
    wanted: dict[tuple[int, int, str], DestinationSpec] = {}
    for spec in specs:
        if not spec.path.startswith("/"):
            raise errors.InvalidRequest("A destination path starts with '/'.")
        environment = (
            Environment.objects.select_related("project")
            .filter(
                project__public_id=spec.project_public_id,
                project__team_id=connector.team_id,
                slug=spec.environment,
            )
            .first()
        )
        if environment is None:
            raise errors.InvalidRequest(
                f"No environment {spec.environment!r} in project {spec.project_public_id!r}."
            )
        if only_project_id is not None and environment.project_id != only_project_id:
            raise errors.Forbidden("A deployment may only manage its own project's destinations.")
        if not environment.base_url:
            raise errors.InvalidRequest(no_base_url_message(environment))
        wanted[(environment.project_id, environment.pk, spec.path)] = spec
    # Trigger destinations only: the lifecycle destination is set on its own.
    existing = TriggerDestination.objects.select_for_update().filter(
        connector=connector, kind=DestinationKind.TRIGGER
    )
    if only_project_id is not None:
        # The limit is per connector: other projects' rows, which stay, count too.
        others = (
            TriggerDestination.objects.filter(
                connector=connector, enabled=True, kind=DestinationKind.TRIGGER
            )
            .exclude(project_id=only_project_id)
            .count()
        )
        if others + len(wanted) > settings.CONNECT_MAX_DESTINATIONS:
            raise errors.InvalidRequest(
                f"At most {settings.CONNECT_MAX_DESTINATIONS} destinations per connector; "
                f"other projects already have {others}."
            )
        existing = existing.filter(project_id=only_project_id)
    kept: list[TriggerDestination] = []
    for destination in existing:
        key = (destination.project_id, destination.environment_id, destination.path)
        if key in wanted:
            wanted.pop(key)
            if not destination.enabled:
                destination.mark_enabled()
                destination.save(
                    update_fields=[
                        "enabled",
                        "disabled_at",
                        "disabled_reason",
                        "failing_since",
                        "slow_until",
                    ]
                )
            kept.append(destination)
        elif destination.deliveries.exists():
            # Its deliveries and their attempts are the log of what was sent: keep them (and
            # let already accepted events still go out); new events no longer fan out to it.
            if destination.enabled:
                destination.enabled = False
                destination.save(update_fields=["enabled"])
        else:
            destination.delete()
    new_secrets: dict[int, str] = {}
    for project_id, environment_id, path in wanted:
        secret = new_signing_secret()
        destination = TriggerDestination(
            connector=connector, project_id=project_id, environment_id=environment_id, path=path
        )
        destination.seal("signing_secret", secret)
        destination.save()
        new_secrets[destination.pk] = secret
        kept.append(destination)
    audit_record(
        team=connector.team_id,
        type=AuditEvent.Type.DESTINATIONS_REPLACED,
        actor=actor,
        targets={"connectorId": connector.public_id},
        fields={"count": len(kept)},
    )
    return DestinationsReplaced(destinations=kept, new_secrets=new_secrets)


@transaction.atomic
def destination_rotate_secret(
    *, destination: TriggerDestination, actor: Actor, overlap: timedelta = timedelta(hours=24)
) -> str:
    """A new signing secret; the old one keeps signing alongside it for ``overlap``."""
    destination.seal("previous_signing_secret", destination.reveal("signing_secret"))
    destination.previous_secret_expires_at = timezone.now() + overlap
    secret = new_signing_secret()
    destination.seal("signing_secret", secret)
    destination.save()
    audit_record(
        team=destination.connector.team_id,
        type=AuditEvent.Type.DESTINATION_SECRET_ROTATED,
        actor=actor,
        targets={"destinationId": destination.public_id},
    )
    return secret


@transaction.atomic
def destination_disable(
    *,
    destination: TriggerDestination,
    reason: DisabledReason,
    at: datetime,
    fields: dict[str, Any] | None = None,
) -> bool:
    """The app turns a destination off by itself (it answered 410 Gone, or failed every
    attempt for days): it gets no new deliveries, and those still waiting for it fail now,
    to be replayed once a member turns it back on. False if it was already done."""
    changed = TriggerDestination.objects.filter(pk=destination.pk, disabled_at__isnull=True).update(
        enabled=False, disabled_at=at, disabled_reason=reason
    )
    if not changed:
        return False
    destination.enabled, destination.disabled_at, destination.disabled_reason = False, at, reason
    abandoned = Delivery.objects.filter(
        destination_id=destination.pk, status=DeliveryStatus.PENDING
    ).update(status=DeliveryStatus.FAILED, updated_at=at)
    _record(
        destination,
        AuditEvent.Type.DESTINATION_DISABLED,
        actor=None,
        fields={"reason": reason.value, "pendingFailed": abandoned, **(fields or {})},
    )
    return True


@transaction.atomic
def destination_create(
    *, connector: Connector, environment: Environment, path: str, actor: Actor
) -> tuple[TriggerDestination, str]:
    """A new destination of the connector; returns it with its ``whsec_`` signing secret, the
    one time the secret leaves the database. The per-connector limit holds."""
    if not path.startswith("/"):
        raise errors.InvalidRequest("path: A destination path starts with '/'.")
    if not environment.base_url:
        raise errors.InvalidRequest(f"environment: {no_base_url_message(environment)}")
    enabled = (
        TriggerDestination.objects.select_for_update()
        .filter(connector=connector, enabled=True)
        .count()
    )
    if enabled >= settings.CONNECT_MAX_DESTINATIONS:
        raise errors.InvalidRequest(
            f"At most {settings.CONNECT_MAX_DESTINATIONS} destinations per connector."
        )
    secret = new_signing_secret()
    destination = TriggerDestination(
        connector=connector, project=environment.project, environment=environment, path=path
    )
    destination.seal("signing_secret", secret)
    return destination_save(destination=destination, actor=actor), secret
