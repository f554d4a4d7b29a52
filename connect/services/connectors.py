from django.db import transaction
from django.utils import timezone

from connect.models import Connector, ConnectorType, Installation
from connect.services import oidc
from connect.services.audit import Actor, audit_record


@transaction.atomic
def connector_save(
    *, connector: Connector, actor: Actor, changed_secrets: list[str] | None = None
) -> Connector:
    """Save a connector (secrets already sealed on it) and give single-account types their
    one implicit installation."""
    created = connector.pk is None
    if (
        connector.type == ConnectorType.OAUTH
        and connector.config.get("tokenEndpointAuthMethod") == "private_key_jwt"
        and not connector.has_secret("private_key")
    ):
        connector_assertion_key_create(connector=connector)
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


def connector_assertion_key_create(*, connector: Connector) -> None:
    """Give an OAuth connector its own RS256 key for ``private_key_jwt`` client authentication.

    The private half is sealed on the connector; the public half is published at
    ``/connect/connectors/<id>/jwks.json`` for the authorization server to trust.
    """
    pem = oidc.rsa_private_key_pem()
    jwk = oidc.public_jwk(pem)
    connector.seal("private_key", pem)
    connector.config = {
        **connector.config,
        "clientAssertionKeyId": jwk["kid"],
        "clientAssertionJwk": jwk,
    }


def connector_health(*, connector: Connector, unhealthy_grants: int) -> str:
    if connector.type == ConnectorType.API_KEY and not connector.has_secret("api_key"):
        return "API key missing"
    if unhealthy_grants:
        return f"{unhealthy_grants} grant(s) need re-authorization"
    return "OK"
