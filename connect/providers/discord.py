"""Discord: the bot token for the app, OAuth user authorization for users, and Webhook Events."""

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from connect import signatures
from connect.providers.base import (
    CallbackRequest,
    InstallResult,
    InvalidWebhook,
    ProviderCredentials,
    ProviderError,
    Revocation,
    TokenRequest,
    TokenSet,
    WebhookEvent,
    WebhookReply,
    WebhookRequest,
)
from connect.providers.code_flow import CodeFlowProvider, Endpoints, call, read_json
from connect.providers.schema import GRANT_TOKENS, ConfigField, SecretField
from connect.providers.webhook_bodies import json_object, obj, text

WEB = "https://discord.com"
PING = 0
BOT_TOKEN_TTL = timedelta(hours=1)


class DiscordProvider(CodeFlowProvider):
    key = "discord"
    label = "Discord"
    secrets = (
        SecretField("client_secret", "Client secret", data_name="clientSecret"),
        SecretField("api_key", "Bot token", data_name="botToken"),
    )
    config_fields = (
        ConfigField(
            "publicKey",
            "str",
            "Public key",
            help="The application's Ed25519 public key (hex), for Webhook Events.",
        ),
        ConfigField(
            "baseUrl",
            "url",
            "Base URL",
            help="Default https://discord.com.",
            # The proxy sends the bot token (the API key) to its API as well.
            receives=frozenset({"client_secret", "api_key", GRANT_TOKENS}),
            default=WEB,
        ),
    )
    single_account = True
    trigger_scheme = "discord-ed25519"
    known_events = ("APPLICATION_AUTHORIZED", "ENTITLEMENT_CREATE", "QUEST_USER_ENROLLMENT")
    setup_links = {"Developer Portal": "https://discord.com/developers/applications"}
    mints_app_tokens = True
    pkce = False
    # Discord signs with its own key: the verifier needs the application's public key.
    webhook_key = ("config", "publicKey")

    def api_base_url(self, config: Mapping[str, Any]) -> str:
        return f"{str(config.get('baseUrl') or WEB).rstrip('/')}/api/v10"

    def proxy_authorization(self, token: str, *, subject_type: str) -> str:
        # The app's token is the bot token, which Discord takes as "Bot", never "Bearer".
        return f"Bot {token}" if subject_type == "app" else f"Bearer {token}"

    def endpoints(self, credentials: ProviderCredentials, tenant_id: str = "") -> Endpoints:
        web = self.base(credentials, "baseUrl", WEB)
        return Endpoints(
            authorize=f"{web}/oauth2/authorize",
            token=f"{web}/api/oauth2/token",
            revoke=f"{web}/api/oauth2/token/revoke",
        )

    def mint_app_token(
        self, credentials: ProviderCredentials, request: TokenRequest, *, now: datetime
    ) -> TokenSet:
        """The bot token typed in by an admin, handed out with a nominal expiry."""
        if not credentials.api_key:
            raise ProviderError("the Discord connector has no bot token set")
        return TokenSet(access_token=credentials.api_key, expires_at=now + BOT_TOKEN_TTL)

    def revoke(
        self, credentials: ProviderCredentials, token: str, *, hint: str, now: datetime
    ) -> Revocation:
        # The bot token is configured, not granted: revoking the app drops it from the cache
        # but never sends it to the OAuth revocation endpoint (SPEC section 6).
        bot_token = credentials.api_key.encode()
        if bot_token and hmac.compare_digest(token.encode(), bot_token):
            return Revocation(attempted=False, succeeded=False)
        return super().revoke(credentials, token, hint=hint, now=now)

    def install_result(
        self,
        credentials: ProviderCredentials,
        callback: CallbackRequest,
        payload: Mapping[str, Any],
        tokens: TokenSet,
        *,
        now: datetime,
    ) -> InstallResult:
        web = self.base(credentials, "baseUrl", WEB)
        response = call(
            "GET",
            f"{web}/api/users/@me",
            headers={"Authorization": f"Bearer {tokens.access_token}"},
        )
        user = read_json(response) if response.status_code == 200 else {}
        return InstallResult(user_tokens=tokens, external_subject=text(user.get("id")))

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
        guild = obj(obj(event.get("data")).get("guild"))
        # Discord sends no event id; the signed (timestamp, body) pair is unique per delivery,
        # so a replayed request dedupes.
        digest = hashlib.sha256((timestamp or "").encode() + b"." + request.body).hexdigest()
        return WebhookEvent(
            event_id=digest,
            event_type=text(event.get("type")),
            tenant_id=text(guild.get("id")),
        )
