"""An installation's end: its grants are revoked (at the provider where it can) and dropped."""

import logging

from django.db import transaction
from django.utils import timezone

from connect.models import Connector, Grant, Installation
from connect.models.installations import GrantStatus
from connect.providers import get_provider
from connect.providers.base import ProviderError
from connect.services.audit import Actor, audit_record
from connect.services.tokens import credentials_for

logger = logging.getLogger(__name__)


def _revoke_upstream(connector: Connector, grants: list[Grant]) -> int:
    """Best effort, before anything is dropped here; returns how many the provider confirmed."""
    provider = get_provider(connector.type)
    if provider is None:
        return 0
    credentials = credentials_for(connector)
    endpoints = connector.grant_endpoints_digest()
    confirmed = 0
    now = timezone.now()
    for grant in grants:
        if not grant.tokens_belong_to(endpoints):
            continue  # tokens go only to the URLs they came from
        token, hint = provider.revocable_token(
            access_token=grant.reveal("access_token"), refresh_token=grant.reveal("refresh_token")
        )
        if not token:
            continue
        try:
            outcome = provider.revoke(credentials, token, hint=hint, now=now)
        except (ProviderError, OSError):
            logger.info("revoking a grant of %s failed upstream", connector.public_id)
            continue
        confirmed += int(outcome.succeeded)
    return confirmed


def installation_remove(
    *, installation: Installation, actor: Actor, delete: bool, revoke_upstream: bool = True
) -> None:
    """End an installation: revoke its grants and mark it revoked (or delete it, from the admin).

    ``revoke_upstream`` is False when the provider itself told us (an uninstall webhook): the
    tokens are already dead there.
    """
    connector = installation.connector
    grants = list(installation.grants.all())
    confirmed = _revoke_upstream(connector, grants) if revoke_upstream else 0
    with transaction.atomic():
        audit_record(
            team=connector.team_id,
            type="installation.removed",
            actor=actor,
            targets={"connectorId": connector.public_id, "installationId": installation.public_id},
            fields={"grants": len(grants), "providerRevoked": confirmed, "deleted": delete},
        )
        if delete:
            installation.delete()
            return
        for grant in grants:
            grant.seal("access_token", "")
            grant.seal("refresh_token", "")
            grant.status = GrantStatus.REVOKED
            grant.version += 1
            grant.save()
        installation.status = Installation.Status.REVOKED
        installation.is_default = False
        installation.updated_at = timezone.now()
        installation.save(update_fields=["status", "is_default", "updated_at"])


def installation_removed_by_provider(*, connector: Connector, tenant_id: str) -> bool:
    installation = Installation.objects.filter(
        connector=connector, tenant_id=tenant_id, status=Installation.Status.ACTIVE
    ).first()
    if installation is None:
        return False
    installation_remove(
        installation=installation,
        actor=f"provider:{connector.type}",
        delete=False,
        revoke_upstream=False,
    )
    return True
