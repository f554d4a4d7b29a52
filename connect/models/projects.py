from typing import Protocol

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from connect.models.base import TeamScopedQuerySet, public_id_field
from connect.web_urls import UnsafeURL, check_web_url

STANDARD_ENVIRONMENTS = ("production", "preview", "development")


class ProjectQuerySet(TeamScopedQuerySet):
    pass


class Project(models.Model):
    public_id = public_id_field("prj")
    team = models.ForeignKey("connect.Team", on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["team", "slug"]
        constraints = [
            models.UniqueConstraint(fields=["team", "slug"], name="connect_project_unique_slug"),
        ]

    def __str__(self) -> str:
        return self.name


class EnvironmentQuerySet(TeamScopedQuerySet):
    team_path = "project__team"


class Environment(models.Model):
    public_id = public_id_field("env")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="environments")
    slug = models.SlugField(
        max_length=60, help_text="production, preview, development, or your own (qa, staging…)"
    )
    base_url = models.URLField(
        blank=True, help_text="Where forwarded triggers for this environment are sent."
    )

    objects = EnvironmentQuerySet.as_manager()

    class Meta:
        ordering = ["project", "slug"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "slug"], name="connect_environment_unique_slug"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project.slug}/{self.slug}"

    def clean(self) -> None:
        if self.base_url:
            try:
                check_web_url(self.base_url)
            except UnsafeURL as exc:
                raise ValidationError({"base_url": f"The base URL {exc}."}) from exc


class InEnvironment(Protocol):
    """A row that names a project and one of its environments."""

    @property
    def project_id(self) -> int | None: ...
    @property
    def environment_id(self) -> int | None: ...
    @property
    def environment(self) -> Environment: ...


def check_environment_of_project(row: InEnvironment) -> None:
    """The row's environment is one of its project's (a form may offer any team's)."""
    if row.project_id and row.environment_id and row.environment.project_id != row.project_id:
        raise ValidationError({"environment": "Pick an environment of this project."})
