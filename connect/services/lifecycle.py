"""Lifecycle events: what happened to a connection, told to the app through the outbox.

Each transition (an installation made or ended, a grant made, broken, recovered or revoked, a
connector's secret failing or working again) calls ``lifecycle_emit`` inside its own
transaction: the event and its delivery rows commit with the transition or not at all, so
each fires exactly once. They are sent like trigger events (``connect.services.deliveries``):
bearer JWT, Standard Webhooks signature, retries, replay, the admin's log; the event's ``id``
is the ``webhook-id``.

Events about a user's grant go only to the project whose issuer owns it; the rest go to every
linked project's lifecycle destination.
"""

import json
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from connect import errors
from connect.models import (
    AuditEvent,
    Connector,
    Delivery,
    Environment,
    Grant,
    Installation,
    LifecycleEvent,
    Project,
    ProjectLink,
    TriggerDestination,
)
from connect.models.deliveries import LifecycleEventType
from connect.models.destinations import DestinationKind, no_base_url_message
from connect.models.installations import GrantStatus, InstallationStatus, SubjectType
from connect.services import deliveries
from connect.services.audit import Actor, audit_record
from connect.services.destinations import destination_save

#: What a provider said, as far as an event carries it.
ERROR_KEPT = 500


def _recipients(connector: Connector, grant: Grant | None) -> list[int]:
    destinations = TriggerDestination.objects.filter(
        connector_id=connector.pk, kind=DestinationKind.LIFECYCLE, enabled=True
    )
    if grant is not None and grant.subject_type == SubjectType.USER:
        # A user grant is the business of the project whose users these are, only.
        owner = Q(project__public_id=grant.issuer) if grant.issuer else Q(pk__in=[])
        if grant.project_id is not None:
            owner |= Q(project_id=grant.project_id)
        destinations = destinations.filter(owner)
    return list(destinations.order_by().values_list("pk", flat=True))


def lifecycle_emit(
    type: LifecycleEventType | str,
    *,
    connector: Connector,
    installation: Installation | None = None,
    grant: Grant | None = None,
    error: str = "",
    now: datetime | None = None,
) -> LifecycleEvent:
    """Record one transition and its deliveries. Call it inside the transaction that makes the
    transition (it refuses to run outside one), so both commit together or neither does."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("lifecycle_emit belongs inside the transition's transaction")
    now = now or timezone.now()
    if installation is None and grant is not None:
        installation = grant.installation
    event = LifecycleEvent(
        connector=connector,
        type=str(type),
        installation_public_id=installation.public_id if installation else "",
        grant_public_id=grant.public_id if grant else "",
        created_at=now,
    )
    data: dict[str, object] = {
        "connectorId": connector.public_id,
        "installationId": installation.public_id if installation else None,
        "tenantId": installation.tenant_id if installation else None,
        "grantId": grant.public_id if grant else None,
        "subject": grant.subject_label if grant else None,
    }
    if error:
        data["error"] = error[:ERROR_KEPT]
    payload = {
        "type": str(type),
        "id": event.public_id,
        "timestamp": int(now.timestamp() * 1000),
        "data": data,
    }
    event.body = json.dumps(payload, separators=(",", ":")).encode()
    event.save()
    Delivery.objects.bulk_create(
        [
            Delivery(
                lifecycle_event=event,
                destination_id=pk,
                webhook_id=event.public_id,
                next_attempt_at=now,
            )
            for pk in _recipients(connector, grant)
        ]
    )
    transaction.on_commit(deliveries.deliveries_ring, robust=True)
    return event


@transaction.atomic
def lifecycle_destination_set(
    *, connector: Connector, project: Project, environment: str, path: str | None, actor: Actor
) -> TriggerDestination | None:
    """Set (or, with ``path`` None, remove) the lifecycle destination of one project link and
    environment: a path on that environment's base URL. A new one gets its own signing secret
    (``destination_save``); the caller shows it once."""
    if project.team_id != connector.team_id:
        raise errors.NotFound("No such project.")
    link = ProjectLink.objects.filter(connector=connector, project=project).first()
    if link is None or environment not in (link.environments or []):
        raise errors.InvalidRequest(
            f"The connector is not linked to {project.public_id} in {environment!r}."
        )
    env = Environment.objects.filter(project=project, slug=environment).first()
    if env is None:
        raise errors.InvalidRequest(f"No environment {environment!r} in {project.public_id}.")
    current = (
        TriggerDestination.objects.select_for_update()
        .filter(
            connector=connector, project=project, environment=env, kind=DestinationKind.LIFECYCLE
        )
        .first()
    )
    if path is None:
        if current is not None:
            current.enabled = False
            current.save(update_fields=["enabled"])
            audit_record(
                team=connector.team_id,
                type=AuditEvent.Type.LIFECYCLE_DESTINATION_REMOVED,
                actor=actor,
                targets={"connectorId": connector.public_id, "destinationId": current.public_id},
            )
        return None
    if not path.startswith("/"):
        raise errors.InvalidRequest("A destination path starts with '/'.")
    if not env.base_url:
        raise errors.InvalidRequest(no_base_url_message(env))
    destination = current or TriggerDestination(
        connector=connector, project=project, environment=env, kind=DestinationKind.LIFECYCLE
    )
    destination.path = path
    destination.enabled = True
    return destination_save(destination=destination, actor=actor)


def grant_tokens_stored(grant: Grant, *, connector: Connector, was: str | None) -> None:
    """After ``store_tokens`` made ``grant`` active, in the same transaction: a new grant (or
    one revoked before, ``was`` None or revoked) is created, one that needed
    re-authorization has recovered; an active one changed nothing worth telling."""
    if was is None or was == GrantStatus.REVOKED:
        lifecycle_emit(LifecycleEventType.GRANT_CREATED, connector=connector, grant=grant)
    elif was == GrantStatus.NEEDS_REAUTH:
        if grant.last_error:
            grant.last_error = ""
            grant.save(update_fields=["last_error"])
        lifecycle_emit(LifecycleEventType.GRANT_RECOVERED, connector=connector, grant=grant)


def installation_attached(
    installation: Installation, *, connector: Connector, created: bool, was: str | None
) -> None:
    """After ``attach`` made ``installation`` active, in the same transaction: new, or active
    again after it was removed, it is created; one that was active changed nothing."""
    if created or was == InstallationStatus.REVOKED:
        lifecycle_emit(
            LifecycleEventType.INSTALLATION_CREATED, connector=connector, installation=installation
        )
