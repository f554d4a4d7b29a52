from datetime import datetime

from django.db import models
from django.utils import timezone

from connect.models.base import SealedSecrets, public_id_field, sealed_field


class SigningKeyQuerySet(models.QuerySet):
    def published(self, now: datetime) -> "SigningKeyQuerySet":
        """Keys in the JWKS: the current one and those still inside their overlap window."""
        return self.filter(models.Q(retires_at__isnull=True) | models.Q(retires_at__gt=now))


class SigningKey(SealedSecrets):
    """An RS256 key of the app's own OIDC issuer; the newest unretired key signs."""

    SEALED_FIELDS = ("private_key",)

    public_id = public_id_field("key")
    kid = models.CharField(max_length=64, unique=True)
    public_jwk = models.JSONField()
    private_key_sealed = sealed_field()
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    retires_at = models.DateTimeField(null=True, blank=True)

    objects = SigningKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"signing key {self.kid}"
