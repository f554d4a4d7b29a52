from connect.providers.base import (
    InvalidWebhook,
    Provider,
    ProviderCredentials,
    WebhookEvent,
    WebhookRequest,
)
from connect.providers.webhook_bodies import json_object, text
from connect.webhooks import signatures


class LinearProvider(Provider):
    key = "linear"

    def verify_webhook(
        self, credentials: ProviderCredentials, request: WebhookRequest
    ) -> WebhookEvent:
        signature = request.headers.get("linear-signature")
        # The timestamp lives in the body; it is read only to check the window, and the
        # signature over the raw bytes is checked in the same step.
        payload = json_object(request.body) if signature else {}
        if not signatures.linear(
            secret=credentials.webhook_secret,
            body=request.body,
            signature=signature,
            timestamp_ms=payload.get("webhookTimestamp"),
            now=request.now,
        ):
            raise InvalidWebhook("Linear-Signature or webhookTimestamp did not verify")
        kind = text(payload.get("type"))
        action = text(payload.get("action"))
        return WebhookEvent(
            event_id=request.headers.get("linear-delivery", "")
            or text(payload.get("webhookId")) + ":" + text(payload.get("webhookTimestamp")),
            event_type=f"{kind}.{action}" if action else kind,
            tenant_id=text(payload.get("organizationId")),
        )
