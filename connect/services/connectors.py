from django.db import transaction
from django.utils import timezone

from connect.models import Connector, ConnectorType, Installation
from connect.services.audit import Actor, audit_record


@transaction.atomic
def connector_save(
    *, connector: Connector, actor: Actor, changed_secrets: list[str] | None = None
) -> Connector:
    """Save a connector (secrets already sealed on it) and give single-account types their
    one implicit installation."""
    created = connector.pk is None
    connector.full_clean()
    connector.updated_at = timezone.now()
    connector.save()
    if connector.is_single_account:
        Installation.objects.get_or_create(
            connector=connector,
            tenant_id=connector.public_id,
            defaults={"display_name": connector.name, "is_default": True},
        )
    audit_record(
        team=connector.team_id,
        type="connector.created" if created else "connector.updated",
        actor=actor,
        targets={"connectorId": connector.public_id},
        # Names of the secrets that changed, never their values.
        fields={"uid": connector.uid, "secretsChanged": changed_secrets or []},
    )
    return connector


def connector_health(*, connector: Connector, unhealthy_grants: int) -> str:
    if connector.type == ConnectorType.API_KEY and not connector.has_secret("api_key"):
        return "API key missing"
    if unhealthy_grants:
        return f"{unhealthy_grants} grant(s) need re-authorization"
    return "OK"
