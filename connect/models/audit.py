from typing import TypeAlias

from django.db import models
from django.utils import timezone

from connect.models.base import TeamScopedQuerySet


class AuditEventType(models.TextChoices):
    """Every event the audit log records (``services.audit.audit_record`` takes only these)."""

    TEAM_CREATED = "team.created", "Team created"
    TEAM_UPDATED = "team.updated", "Team updated"
    MEMBER_ADDED = "member.added", "Member added"
    MEMBER_ROLE_CHANGED = "member.role_changed", "Member's role changed"
    MEMBER_REMOVED = "member.removed", "Member removed"
    PROJECT_CREATED = "project.created", "Project created"
    PROJECT_UPDATED = "project.updated", "Project updated"
    PROJECT_DELETED = "project.deleted", "Project deleted"
    ENVIRONMENT_CREATED = "environment.created", "Environment created"
    ENVIRONMENT_UPDATED = "environment.updated", "Environment updated"
    ENVIRONMENT_DELETED = "environment.deleted", "Environment deleted"
    CONNECTOR_CREATED = "connector.created", "Connector created"
    CONNECTOR_UPDATED = "connector.updated", "Connector updated"
    CONNECTOR_DELETED = "connector.deleted", "Connector deleted"
    LINK_CREATED = "link.created", "Project link created"
    LINK_UPDATED = "link.updated", "Project link updated"
    LINK_DELETED = "link.deleted", "Project link deleted"
    DESTINATION_SAVED = "destination.saved", "Destination saved"
    DESTINATION_DELETED = "destination.deleted", "Destination deleted"
    DESTINATION_SECRET_ROTATED = "destination.secret_rotated", "Destination secret rotated"
    DESTINATION_DISABLED = "destination.disabled", "Destination disabled"
    DESTINATION_REENABLED = "destination.reenabled", "Destination re-enabled"
    DESTINATION_REPLAYED = "destination.replayed", "Deliveries replayed to a destination"
    DESTINATIONS_REPLACED = "destinations.replaced", "Destinations replaced"
    CREDENTIAL_CREATED = "credential.created", "Deployment credential created"
    CREDENTIAL_UPDATED = "credential.updated", "Deployment credential updated"
    CREDENTIAL_REVOKED = "credential.revoked", "Deployment credential revoked"
    CREDENTIAL_DELETED = "credential.deleted", "Deployment credential deleted"
    TRUSTED_ISSUER_CREATED = "trusted_issuer.created", "Trusted issuer created"
    TRUSTED_ISSUER_UPDATED = "trusted_issuer.updated", "Trusted issuer updated"
    TRUSTED_ISSUER_DELETED = "trusted_issuer.deleted", "Trusted issuer deleted"
    TRUSTED_ISSUER_RULE_CREATED = "trusted_issuer_rule.created", "Trusted issuer rule created"
    TRUSTED_ISSUER_RULE_UPDATED = "trusted_issuer_rule.updated", "Trusted issuer rule updated"
    TRUSTED_ISSUER_RULE_DELETED = "trusted_issuer_rule.deleted", "Trusted issuer rule deleted"
    AUTHORIZATION_STARTED = "authorization.started", "Authorization started"
    AUTHORIZATION_APPROVAL_REQUESTED = (
        "authorization.approval_requested",
        "Authorization awaiting an administrator's approval",
    )
    AUTHORIZATION_COMPLETED = "authorization.completed", "Authorization completed"
    AUTHORIZATION_FAILED = "authorization.failed", "Authorization failed"
    INSTALLATION_ADDED = "installation.added", "Installation added"
    INSTALLATION_UPDATED = "installation.updated", "Installation updated"
    INSTALLATION_REMOVED = "installation.removed", "Installation removed"
    GRANT_UPDATED = "grant.updated", "Grant updated"
    GRANT_NEEDS_REAUTH = "grant.needs_reauth", "Grant needs re-authorization"
    GRANT_DELETED = "grant.deleted", "Grant deleted"
    TOKEN_IMPORTED = "token.imported", "Token imported"
    TOKEN_REVOKED = "token.revoked", "Token revoked"
    TRIGGER_REJECTED = "trigger.rejected", "Trigger rejected"
    TRIGGER_REPLAYED = "trigger.replayed", "Trigger replayed"


def audit_event_type_choices() -> list[tuple[str, str]]:
    """The field's choices, read when used: a type added later needs no migration."""
    return AuditEventType.choices


class AuditEventQuerySet(TeamScopedQuerySet):
    pass


class AuditEvent(models.Model):
    """What happened, to what, by whom; correlation ids tie it to tokens, flows and triggers."""

    Type: TypeAlias = AuditEventType

    team = models.ForeignKey("connect.Team", on_delete=models.CASCADE, related_name="audit_events")
    type = models.CharField(max_length=60, choices=audit_event_type_choices, db_index=True)
    actor = models.CharField(max_length=255, blank=True)
    targets = models.JSONField(default=dict, blank=True)
    correlation = models.JSONField(default=dict, blank=True)
    fields = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["team", "-created_at"], name="connect_audit_recent"),
            # Retention finds the oldest rows across every team by it.
            models.Index(fields=["created_at"], name="connect_audit_created"),
        ]

    def __str__(self) -> str:
        return f"{self.type} at {self.created_at:%Y-%m-%d %H:%M:%S}"
