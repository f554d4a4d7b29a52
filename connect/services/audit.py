from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser

from connect.models import AuditEvent, Team

Actor = AbstractBaseUser | AnonymousUser | str | None


def actor_label(actor: Actor) -> str:
    """How the log names an actor: a user by id and name, a label as given, else system."""
    if actor is None:
        return "system"
    if isinstance(actor, str):
        return actor
    return f"user:{actor.pk}:{actor.get_username()}" if actor.is_authenticated else "anonymous"


def audit_record(
    *,
    team: Team | int,
    type: AuditEvent.Type,
    actor: Actor = None,
    targets: dict[str, str] | None = None,
    correlation: dict[str, str] | None = None,
    fields: dict[str, Any] | None = None,
) -> AuditEvent:
    """Record an event of ``type`` in ``team``'s audit log, by ``actor``, naming its targets."""
    return AuditEvent.objects.create(
        team_id=team if isinstance(team, int) else team.pk,
        type=type,
        actor=actor_label(actor),
        targets=targets or {},
        correlation=correlation or {},
        fields=fields or {},
    )
