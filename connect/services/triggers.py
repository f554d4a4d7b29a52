"""Inbound webhooks: verify first, then store the event and its deliveries in one transaction.

A stored request cannot be replayed: signature headers are redacted before storage, and the
same body on the same connector within the type's replay window is a duplicate, whatever
(unsigned) delivery id comes with it. Two unique constraints make that hold for copies that
race each other too; see ``replay_slots``.
"""

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, transaction

from connect import errors, generations, local_caches
from connect.models import AuditEvent, Connector, Delivery, InboundEvent, TriggerDestination
from connect.models.destinations import DestinationKind
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
#: A stored signature would let whoever reads the log (a viewer, a backup) send the request
#: again while it verifies: for GitHub and plain HMACs, which sign no timestamp, forever.
#: Timestamps (Slack's, Standard Webhooks') prove nothing alone and stay.
SIGNATURE_HEADERS = frozenset(
    {
        "x-hub-signature-256",  # GitHub
        "x-hub-signature",  # GitHub, legacy SHA-1
        "x-slack-signature",
        "linear-signature",
        "x-signature-ed25519",  # Discord
        "webhook-signature",  # Standard Webhooks
        "svix-signature",  # the same, as Svix names it
    }
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


def signature_headers(config: Mapping[str, Any]) -> frozenset[str]:
    """The known signature headers, and the one a custom connector is configured to read."""
    custom = str(config.get("signatureHeader") or "").strip().lower()
    return SIGNATURE_HEADERS | {custom} if custom else SIGNATURE_HEADERS


def redacted(headers: Mapping[str, str], *, also: Iterable[str] = ()) -> dict[str, str]:
    """Headers as stored: credentials and signatures (and ``also``) replaced by a marker."""
    hidden = REDACTED_HEADERS | SIGNATURE_HEADERS | {name.lower() for name in also}
    return {
        storable(k): ("[redacted]" if k.lower() in hidden else storable(v))
        for k, v in headers.items()
    }


def replay_slots(moment: float, window: int) -> tuple[int, int]:
    """The two slots of ``window`` seconds an event holds, as (even, odd): the one it arrived
    in and the next. Events less than a window apart always share a slot, so the later one
    breaks a unique constraint (its slot in the same column); two windows apart they never
    do; in between it depends on where the slot edges fall."""
    slot = int(moment // window)
    return (slot, slot + 1) if slot % 2 == 0 else (slot + 1, slot)


def _receiving_connector(connector_id: str) -> Connector | None:
    """The connector receiving triggers at ``connector_id``; with ``CONNECT_LOCAL_CACHES``
    kept by this process until the connector changes (its generation moves)."""
    if not local_caches.enabled():
        return _connector_lookup(connector_id)
    generations.ensure_fresh()
    cache = local_caches.cache("trigger_connectors")
    found = cache.get(connector_id)
    if isinstance(found, Connector):
        return found
    epoch = generations.epoch()
    connector = _connector_lookup(connector_id)
    if connector is not None:
        cache.put(
            connector_id,
            connector,
            scopes=(f"c:{connector.pk}",),
            epoch=epoch,
            expires_at=time.time() + 600,
        )
    return connector


def _connector_lookup(connector_id: str) -> Connector | None:
    return (
        Connector.objects.filter(public_id=connector_id, triggers_enabled=True)
        .only(
            "id",
            "public_id",
            "team_id",
            "type",
            "config",
            "events",
            "trigger_signing_secret_sealed",
        )
        .first()
    )


def trigger_receive(
    *,
    connector_id: str,
    headers: dict[str, str],
    query: dict[str, str],
    body: bytes,
    content_type: str,
    now: float | None = None,
) -> TriggerReply:
    """A provider's webhook for a connector: verify it, answer the provider's own handshakes,
    follow installs and uninstalls it announces, store the event once (retries and replays
    within the window are duplicates) and queue its deliveries."""
    connector = _receiving_connector(connector_id)
    if connector is None:
        raise errors.NotFound("No connector receives triggers here.")
    provider = connector.provider
    credentials = ProviderCredentials(
        type=connector.type,
        client_id="",
        config=connector.config,
        webhook_secret=connector.reveal("trigger_signing_secret"),
    )
    moment = time.time() if now is None else now
    request = WebhookRequest(headers=headers, query=query, body=body, now=moment)
    try:
        event = provider.verify_webhook(credentials, request)
    except InvalidWebhook as exc:
        audit_record(
            team=connector.team_id,
            type=AuditEvent.Type.TRIGGER_REJECTED,
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
    even, odd = replay_slots(moment, provider.webhook_replay_window(credentials))
    event_type = storable(event.event_type)[:120]
    # Selected on the type as stored, the same one the admin log shows.
    skipped = not connector.event_selected(event_type)
    try:
        with transaction.atomic():
            inbound = InboundEvent.objects.create(
                team_id=connector.team_id,
                connector_id=connector.pk,
                provider_event_id=storable(event.event_id)[:255],
                event_type=event_type,
                tenant_id=storable(event.tenant_id)[:255],
                headers=redacted(headers, also=signature_headers(connector.config)),
                content_type=storable(content_type)[:255],
                body=body,
                body_sha256=hashlib.sha256(body).hexdigest(),
                replay_slot_even=even,
                replay_slot_odd=odd,
                verified=True,
                skipped=skipped,
                received_at=datetime.fromtimestamp(moment, UTC),
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
            if not skipped:
                # No ordering: the default one joins seven tables to sort what is only inserted.
                destinations = (
                    TriggerDestination.objects.filter(
                        connector_id=connector.pk, enabled=True, kind=DestinationKind.TRIGGER
                    )
                    .order_by()
                    .values_list("pk", flat=True)
                )
                Delivery.objects.bulk_create(
                    [
                        Delivery(team_id=connector.team_id, event=inbound, destination_id=pk)
                        for pk in destinations
                    ]
                )
                transaction.on_commit(deliveries.deliveries_ring_soon, robust=True)
    except IntegrityError:
        # The provider retried (same event id), or someone replays a captured request (same
        # body within the window): acknowledge, store and forward nothing.
        return TriggerReply(200, b'{"ok": true, "duplicate": true}')
    return TriggerReply(200, json.dumps({"ok": True, "id": inbound.public_id}).encode())
