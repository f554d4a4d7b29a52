from django.core.exceptions import ValidationError
from django.db import models

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
