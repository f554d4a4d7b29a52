import json

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


class SlackProvider(Provider):
    key = "slack"

    def verify_webhook(
        self, credentials: ProviderCredentials, request: WebhookRequest
    ) -> WebhookEvent:
        # The url_verification handshake is signed too, so it is answered only after this.
        if not signatures.slack_v0(
            secret=credentials.webhook_secret,
            body=request.body,
            timestamp=request.headers.get("x-slack-request-timestamp"),
            signature=request.headers.get("x-slack-signature"),
            now=request.now,
        ):
            raise InvalidWebhook("Slack signature or timestamp did not verify")
        payload = json_object(request.body)
        if payload.get("type") == "url_verification":
            challenge = text(payload.get("challenge"))
            return WebhookEvent(
                event_type="url_verification",
                reply=WebhookReply(200, json.dumps({"challenge": challenge}).encode()),
                forward=False,
            )
        event = obj(payload.get("event"))
        return WebhookEvent(
            event_id=text(payload.get("event_id")),
            event_type=text(event.get("type")) or text(payload.get("type")),
            tenant_id=text(payload.get("team_id")),
        )
