"""Inbound webhooks: verify first, then store the event and its deliveries in one transaction."""

import json
import logging
import time
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from connect import errors
from connect.models import Connector, Delivery, InboundEvent, TriggerDestination
from connect.providers import get_provider
from connect.providers.base import (
    InvalidWebhook,
    MalformedWebhook,
    ProviderCredentials,
    Unsupported,
    WebhookRequest,
)
from connect.services import deliveries, installations
from connect.services.audit import audit_record

logger = logging.getLogger(__name__)

REDACTED_HEADERS = frozenset(
    {"authorization", "cookie", "proxy-authorization", "x-api-key", "x-auth-token"}
)


@dataclass(frozen=True)
class TriggerReply:
    status: int
    body: bytes
    content_type: str = "application/json"


def storable(value: str) -> str:
    """Text every database stores: JSON escapes in a signed body can carry NUL (which
    PostgreSQL refuses) and lone surrogates (which UTF-8 cannot encode)."""
    return value.replace("\x00", "").encode("utf-8", "replace").decode()


def redacted(headers: dict[str, str]) -> dict[str, str]:
    return {
        storable(k): ("[redacted]" if k in REDACTED_HEADERS else storable(v))
        for k, v in headers.items()
    }


def trigger_receive(
    *,
    connector_id: str,
    headers: dict[str, str],
    query: dict[str, str],
    body: bytes,
    content_type: str,
    now: float | None = None,
) -> TriggerReply:
    connector = (
        Connector.objects.filter(public_id=connector_id, triggers_enabled=True)
        .only("id", "public_id", "team_id", "type", "config", "trigger_signing_secret_sealed")
        .first()
    )
    provider = get_provider(connector.type) if connector else None
    if connector is None or provider is None:
        raise errors.NotFound("No connector receives triggers here.")
    credentials = ProviderCredentials(
        type=connector.type,
        client_id="",
        config=connector.config,
        webhook_secret=connector.reveal("trigger_signing_secret"),
    )
    request = WebhookRequest(
        headers=headers, query=query, body=body, now=time.time() if now is None else now
    )
    try:
        event = provider.verify_webhook(credentials, request)
    except InvalidWebhook as exc:
        audit_record(
            team=connector.team_id,
            type="trigger.rejected",
            targets={"connectorId": connector.public_id},
            fields={"reason": str(exc)},
        )
        raise errors.Unauthorized("The webhook did not verify.") from exc
    except MalformedWebhook as exc:
        raise errors.InvalidRequest(str(exc)) from exc
    except Unsupported as exc:
        raise errors.NotFound("No connector receives triggers here.") from exc
    if event.reply is not None and not event.forward:
        return TriggerReply(event.reply.status, event.reply.body, event.reply.content_type)
    if event.removes_installation and event.tenant_id:
        installations.installation_removed_by_provider(
            connector=connector, tenant_id=event.tenant_id
        )
    try:
        with transaction.atomic():
            inbound = InboundEvent.objects.create(
                connector_id=connector.pk,
                provider_event_id=storable(event.event_id)[:255],
                event_type=storable(event.event_type)[:120],
                tenant_id=storable(event.tenant_id)[:255],
                headers=redacted(headers),
                content_type=storable(content_type)[:255],
                body=body,
                verified=True,
            )
            if event.adds_installation and event.tenant_id:
                # After the dedupe insert: a redelivered `created` cannot revive a tenant that
                # has uninstalled since.
                installations.installation_added_by_provider(
                    connector=connector,
                    tenant_id=event.tenant_id,
                    display_name=event.display_name,
                    metadata=event.metadata,
                )
            # No ordering: the default one joins seven tables to sort what is only inserted.
            destinations = (
                TriggerDestination.objects.filter(connector_id=connector.pk, enabled=True)
                .order_by()
                .values_list("pk", flat=True)
            )
            Delivery.objects.bulk_create(
                [Delivery(event=inbound, destination_id=pk) for pk in destinations]
            )
            transaction.on_commit(deliveries.deliveries_ring, robust=True)
    except IntegrityError:
        # The provider retried, or someone replays a captured request: acknowledge, once.
        return TriggerReply(200, b'{"ok": true, "duplicate": true}')
    return TriggerReply(200, json.dumps({"ok": True, "id": inbound.public_id}).encode())
