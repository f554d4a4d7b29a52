import hashlib
import hmac

from connect.providers.base import (
    InvalidWebhook,
    MalformedWebhook,
    Provider,
    ProviderCredentials,
    WebhookEvent,
    WebhookReply,
    WebhookRequest,
)
from connect.providers.webhook_bodies import json_object, obj, text


class MicrosoftProvider(Provider):
    """Microsoft Graph change notifications: an unsigned handshake, then ``clientState``."""

    key = "microsoft"

    def verify_webhook(
        self, credentials: ProviderCredentials, request: WebhookRequest
    ) -> WebhookEvent:
        if "validationtoken" in {k.lower() for k in request.query}:
            token = next(v for k, v in request.query.items() if k.lower() == "validationtoken")
            if not token:
                raise InvalidWebhook("empty validationToken")
            # Graph's subscription handshake is unsigned by design: echo it as plain text.
            return WebhookEvent(
                event_type="validation",
                reply=WebhookReply(200, token.encode(), "text/plain"),
                forward=False,
            )
        payload = json_object(request.body)
        items = payload.get("value")
        if not isinstance(items, list) or not items:
            raise MalformedWebhook("a Graph notification carries a non-empty `value` list")
        expected = credentials.webhook_secret.encode()
        for item in items:
            state = text(obj(item).get("clientState"))
            if not expected or not hmac.compare_digest(state.encode(), expected):
                raise InvalidWebhook("clientState does not match")
        first = obj(items[0])
        return WebhookEvent(
            event_id=hashlib.sha256(request.body).hexdigest(),
            event_type=text(first.get("changeType")),
            tenant_id=text(first.get("tenantId")),
        )
