"""What the provider says about installations outside a flow: one it made (an install an owner
approved), one it changed, one it ended (its grants are revoked where it can, and dropped)."""

import logging
from collections.abc import Mapping
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from connect.models import AuditEvent, Connector, Grant, Installation
from connect.models.activity import ActivityKind
from connect.models.deliveries import LifecycleEventType
from connect.models.installations import GrantStatus
from connect.providers import get_provider
from connect.providers.base import ProviderError
from connect.services import activity, lifecycle
from connect.services.audit import Actor, audit_record
from connect.services.configuration import AUDITED

logger = logging.getLogger(__name__)


def _revoke_upstream(connector: Connector, grants: list[Grant]) -> int:
    """Best effort, before anything is dropped here; returns how many the provider confirmed."""
    provider = connector.provider
    credentials = connector.provider_credentials()
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
    activity.activity_count(
        connector=connector,
        kind=ActivityKind.INSTALL,
        # Told by the provider's own webhook (Slack app_uninstalled, GitHub deleted).
        label="removed" if revoke_upstream else "removed_upstream",
    )
    with transaction.atomic():
        now = timezone.now()
        for grant in grants:
            if grant.status != GrantStatus.REVOKED:
                lifecycle.lifecycle_emit(
                    LifecycleEventType.GRANT_REVOKED, connector=connector, grant=grant, now=now
                )
        if installation.status != Installation.Status.REVOKED:
            lifecycle.lifecycle_emit(
                LifecycleEventType.INSTALLATION_REMOVED,
                connector=connector,
                installation=installation,
                now=now,
            )
        audit_record(
            team=connector.team_id,
            type=AuditEvent.Type.INSTALLATION_REMOVED,
            actor=actor,
            targets={"connectorId": connector.public_id, "installationId": installation.public_id},
            fields={"grants": len(grants), "providerRevoked": confirmed, "deleted": delete},
        )
        if delete:
            installation.delete()
            return
        for grant in grants:
            grant.clear_tokens(now=now, status=GrantStatus.REVOKED)
            grant.save()
        installation.status = Installation.Status.REVOKED
        installation.is_default = False
        installation.updated_at = now
        installation.save(update_fields=["status", "is_default", "updated_at"])


def installation_removed_by_provider(*, connector: Connector, tenant_id: str) -> bool:
    """The provider, in a verified webhook, says the app was removed from ``tenant_id``:
    the installation ends (its grants' tokens forgotten, nothing revoked upstream). False when
    no active installation of that tenant exists."""
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


def installation_added_by_provider(
    *, connector: Connector, tenant_id: str, display_name: str, metadata: Mapping[str, Any]
) -> Installation:
    """The provider, in a verified webhook, says the app was installed in ``tenant_id``."""
    now = timezone.now()
    with transaction.atomic():
        installation, created = Installation.objects.select_for_update().get_or_create(
            connector=connector, tenant_id=tenant_id
        )
        was = None if created else installation.status
        installation.attach(display_name=display_name, metadata=metadata, now=now)
        lifecycle.installation_attached(installation, connector=connector, created=created, was=was)
        if created:
            activity.activity_count(connector=connector, kind=ActivityKind.INSTALL, label="added")
            audit_record(
                team=connector.team_id,
                type=AuditEvent.Type.INSTALLATION_ADDED,
                actor=f"provider:{connector.type}",
                targets={
                    "connectorId": connector.public_id,
                    "installationId": installation.public_id,
                },
            )
    return installation


#: An unauthenticated page asks for the refresh; each installation is asked about at most
#: this often, so the page cannot be used to hammer the provider's API in our name.
REFRESH_INTERVAL_SECONDS = 60
REFRESH_LIMIT = 20


def installations_refresh(*, connector_type: str, tenant_id: str) -> int:
    """Update what we know of an existing tenant from the provider itself, asked as each
    connector's app (GitHub: "Redirect on update" brings only an unsigned installation id).
    Nothing is created or re-activated; returns how many installations were updated."""
    provider = get_provider(connector_type)
    if not tenant_id:
        return 0
    known = list(
        Installation.objects.filter(
            connector__type=connector_type,
            tenant_id=tenant_id,
            status=Installation.Status.ACTIVE,
        ).select_related("connector")[:REFRESH_LIMIT]
    )
    updated = 0
    for installation in known:
        if not cache.add(f"connect:refresh:{installation.pk}", 1, REFRESH_INTERVAL_SECONDS):
            continue
        now = timezone.now()
        try:
            details = provider.installation_details(
                installation.connector.provider_credentials(), tenant_id, now=now
            )
        except (ProviderError, OSError):
            # Not this connector's app, or the provider is down: nothing to learn.
            logger.info("refreshing installation %s failed upstream", installation.public_id)
            continue
        with transaction.atomic():
            row = Installation.objects.select_for_update().get(pk=installation.pk)
            row.describe(
                display_name=details.display_name,
                metadata={**details.metadata, "setupAction": "update"},
                now=now,
            )
            row.save(update_fields=["display_name", "metadata", "updated_at"])
        updated += 1
    return updated


def grant_revoke(*, grant: Grant, actor: Actor, delete: bool = False) -> bool:
    """End one grant, the one way every interface does: its tokens revoked at the provider
    where they may go, the app told (``grant.revoked``), then the row cleared and kept, revoked
    (a user consents again to get a new one), or deleted (from the admin). Returns whether the
    provider confirmed."""
    installation = grant.installation
    connector = installation.connector
    confirmed = _revoke_upstream(connector, [grant])
    with transaction.atomic():
        now = timezone.now()
        if grant.status != GrantStatus.REVOKED:
            lifecycle.lifecycle_emit(
                LifecycleEventType.GRANT_REVOKED, connector=connector, grant=grant, now=now
            )
        audit_record(
            team=connector.team_id,
            type=AuditEvent.Type.GRANT_DELETED if delete else AuditEvent.Type.GRANT_REVOKED,
            actor=actor,
            targets=AUDITED[Grant].targets(grant),
            fields={"subject": grant.subject_type, "providerRevoked": bool(confirmed)},
        )
        if delete:
            grant.delete()
        else:
            grant.clear_tokens(now=now, status=GrantStatus.REVOKED)
            grant.save()
    return bool(confirmed)
