from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from connect.models.base import TeamScopedQuerySet


class ProjectLinkQuerySet(TeamScopedQuerySet):
    team_path = "connector__team"


class ProjectLink(models.Model):
    """The authorization for runtime requests: this project may use this connector."""

    connector = models.ForeignKey(
        "connect.Connector", on_delete=models.CASCADE, related_name="links"
    )
    project = models.ForeignKey(
        "connect.Project", on_delete=models.CASCADE, related_name="connector_links"
    )
    environments = models.JSONField(
        default=list, help_text="Environment slugs allowed to use the connector."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = ProjectLinkQuerySet.as_manager()

    class Meta:
        ordering = ["connector", "project"]
        constraints = [
            models.UniqueConstraint(
                fields=["connector", "project"], name="connect_projectlink_unique_project"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.connector.uid} → {self.project.slug}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # A new link, or one whose environments changed, is updated now, whichever path saves
        # it; saving it unchanged (``update_or_create`` with the same set) keeps its time.
        if self._state.adding or self.environments != getattr(self, "_saved_environments", None):
            self.updated_at = timezone.now()
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "updated_at"}
        super().save(*args, **kwargs)
        self._saved_environments = list(self.environments or [])

    @classmethod
    def from_db(cls, *args: Any, **kwargs: Any) -> "ProjectLink":
        link = super().from_db(*args, **kwargs)
        link._saved_environments = list(link.environments or [])
        return link

    def clean(self) -> None:
        # On the add page the connector is not saved yet: the inline holds it unsaved.
        has_connector = self.connector_id or ProjectLink.connector.is_cached(self)
        if has_connector and self.project_id and self.connector.team_id != self.project.team_id:
            raise ValidationError("The project belongs to another team.")
        if not isinstance(self.environments, list) or not all(
            isinstance(slug, str) for slug in self.environments
        ):
            raise ValidationError({"environments": "A list of environment slugs."})

    def allows(self, environment: str) -> bool:
        return environment in self.environments
