from connect.providers.base import (
    InvalidWebhook,
    Provider,
    ProviderCredentials,
    WebhookEvent,
    WebhookRequest,
)
from connect.providers.webhook_bodies import json_object, obj, text
from connect.webhooks import signatures


class GitHubProvider(Provider):
    key = "github"

    def verify_webhook(
        self, credentials: ProviderCredentials, request: WebhookRequest
    ) -> WebhookEvent:
        if not signatures.github_sha256(
            secret=credentials.webhook_secret,
            body=request.body,
            signature=request.headers.get("x-hub-signature-256"),
        ):
            raise InvalidWebhook("X-Hub-Signature-256 did not verify")
        payload = json_object(request.body)
        event = request.headers.get("x-github-event", "")
        action = text(payload.get("action"))
        return WebhookEvent(
            # GitHub signs no timestamp: the delivery id is the replay guard.
            event_id=request.headers.get("x-github-delivery", ""),
            event_type=f"{event}.{action}" if action else event,
            tenant_id=text(obj(payload.get("installation")).get("id")),
        )
