from django.db import models
from django.utils import timezone

from connect.models.base import TeamScopedQuerySet, public_id_field


class TokenIssueQuerySet(TeamScopedQuerySet):
    team_path = "grant__installation__connector__team"


class TokenIssue(models.Model):
    """One row per token handed out; the token itself is never stored here."""

    public_id = public_id_field("stk")
    grant = models.ForeignKey("connect.Grant", on_delete=models.CASCADE, related_name="issues")
    project = models.ForeignKey("connect.Project", on_delete=models.CASCADE, related_name="+")
    environment = models.CharField(max_length=60)
    scopes = models.JSONField(default=list, blank=True)
    resources = models.JSONField(default=list, blank=True)
    authorization_details = models.JSONField(default=list, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)

    objects = TokenIssueQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.public_id
