from django.db import models
from django.utils import timezone

from connect.models.base import TeamScopedQuerySet


class AuditEventQuerySet(TeamScopedQuerySet):
    pass


class AuditEvent(models.Model):
    """What happened, to what, by whom; correlation ids tie it to tokens, flows and triggers."""

    team = models.ForeignKey("connect.Team", on_delete=models.CASCADE, related_name="audit_events")
    type = models.CharField(max_length=60, db_index=True)
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
