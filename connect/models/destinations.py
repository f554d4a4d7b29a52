import base64
import secrets

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from connect.models.base import SealedSecrets, TeamScopedQuerySet, public_id_field, sealed_field


def new_signing_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class TriggerDestinationQuerySet(TeamScopedQuerySet):
    team_path = "connector__team"


class TriggerDestination(SealedSecrets):
    SEALED_FIELDS = ("signing_secret", "previous_signing_secret")

    public_id = public_id_field("dst")
    connector = models.ForeignKey(
        "connect.Connector", on_delete=models.CASCADE, related_name="destinations"
    )
    project = models.ForeignKey("connect.Project", on_delete=models.CASCADE, related_name="+")
    environment = models.ForeignKey(
        "connect.Environment", on_delete=models.CASCADE, related_name="destinations"
    )
    path = models.CharField(max_length=500, default="/", help_text="Appended to the base URL.")
    enabled = models.BooleanField(default=True)
    signing_secret_sealed = sealed_field()
    previous_signing_secret_sealed = sealed_field()
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = TriggerDestinationQuerySet.as_manager()

    class Meta:
        ordering = ["connector", "project", "environment", "path"]
        constraints = [
            models.UniqueConstraint(
                fields=["connector", "project", "environment", "path"],
                name="connect_triggerdestination_unique_target",
            ),
            models.CheckConstraint(
                condition=models.Q(path__startswith="/"),
                name="connect_triggerdestination_path_absolute",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.environment_id and self.environment}{self.path}"

    def clean(self) -> None:
        # On the add page the connector is not saved yet: the inline holds it unsaved.
        has_connector = self.connector_id or TriggerDestination.connector.is_cached(self)
        if has_connector and self.project_id and self.connector.team_id != self.project.team_id:
            raise ValidationError({"project": "Pick a project of the connector's team."})
        if (
            self.project_id
            and self.environment_id
            and self.environment.project_id != self.project_id
        ):
            raise ValidationError({"environment": "Pick an environment of this project."})
