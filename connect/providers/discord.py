import hashlib

from connect.providers.base import (
    InvalidWebhook,
    Provider,
    ProviderCredentials,
    WebhookEvent,
    WebhookReply,
    WebhookRequest,
)
from connect.providers.webhook_bodies import json_object, obj, text
from connect.webhooks import signatures

PING = 0


class DiscordProvider(Provider):
    """Discord Webhook Events (not interactions, which need a synchronous reply)."""

    key = "discord"

    def verify_webhook(
        self, credentials: ProviderCredentials, request: WebhookRequest
    ) -> WebhookEvent:
        timestamp = request.headers.get("x-signature-timestamp")
        if not signatures.ed25519(
            public_key_hex=str(credentials.config.get("publicKey", "")),
            body=request.body,
            timestamp=timestamp,
            signature=request.headers.get("x-signature-ed25519"),
            now=request.now,
        ):
            raise InvalidWebhook("X-Signature-Ed25519 did not verify")
        payload = json_object(request.body)
        if payload.get("type") == PING:
            return WebhookEvent(event_type="PING", reply=WebhookReply(204), forward=False)
        event = obj(payload.get("event"))
        data = obj(event.get("data"))
        guild = obj(data.get("guild"))
        # Discord sends no event id; the signed (timestamp, body) pair is unique per delivery,
        # so a replayed request dedupes.
        digest = hashlib.sha256((timestamp or "").encode() + b"." + request.body).hexdigest()
        return WebhookEvent(
            event_id=digest,
            event_type=text(event.get("type")),
            tenant_id=text(guild.get("id")),
        )
