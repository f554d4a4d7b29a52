"""Slack: OAuth v2 workspace installs (bot token, optional user token), token rotation."""

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from connect import signatures
from connect.kinds import SubjectType
from connect.providers.base import (
    AuthorizeRequest,
    CallbackRequest,
    InstallResult,
    InvalidWebhook,
    ProviderCredentials,
    ProviderError,
    ProviderInvalidGrant,
    ProviderUnavailable,
    Revocation,
    TenantUnproven,
    TokenSet,
    WebhookEvent,
    WebhookReply,
    WebhookRequest,
)
from connect.providers.code_flow import (
    CodeFlowProvider,
    Endpoints,
    bearer_revoke,
    call,
    read_json,
    tokens_from,
)
from connect.providers.schema import GRANT_TOKENS, ConfigField, SecretField
from connect.providers.webhook_bodies import json_object, obj, text

SLACK = "https://slack.com"
#: Slack answers 200 with {"ok": false, "error": …}; these mean the grant is gone.
DEAD = frozenset({"invalid_refresh_token", "invalid_grant", "token_revoked", "token_expired"})


class SlackProvider(CodeFlowProvider):
    key = "slack"
    label = "Slack"
    secrets = (
        SecretField("client_secret", "Client secret", data_name="clientSecret", required=True),
        SecretField("trigger_signing_secret", "Signing secret", data_name="signingSecret"),
    )
    config_fields = (
        ConfigField("appId", "str", "App ID", help="The Slack app's ID (A0…)."),
        ConfigField("appName", "str", "App name"),
        ConfigField(
            "baseUrl",
            "url",
            "Slack base URL",
            help="Default https://slack.com.",
            receives=frozenset({"client_secret", GRANT_TOKENS}),
            default=SLACK,
        ),
        ConfigField("botScopes", "list", "Bot scopes", help="Bot scopes the app asks for."),
        ConfigField(
            "userScopes", "list", "User scopes", help='Asked at install, e.g. ["chat:write"].'
        ),
        ConfigField("slackTeam", "dict", "Slack team", help="{id, name?, domain?}"),
        ConfigField("slashCommands", "list", "Slash commands"),
        ConfigField("shortcuts", "list", "Shortcuts"),
        ConfigField("extras", "dict", "Extras"),
    )
    trigger_scheme = "slack-v0"
    known_events = (
        "app_mention",
        "message.channels",
        "message.im",
        "reaction_added",
        "member_joined_channel",
        "app_home_opened",
        "app_uninstalled",
        "tokens_revoked",
    )
    setup_links = {"Your Slack apps": "https://api.slack.com/apps"}
    scope_separator = ","
    pkce = False  # a confidential client; Slack's v2 install takes no PKCE
    revokes_refresh_tokens = False  # auth.revoke revokes the token that authenticates it
    webhook_key = ("secret", "trigger_signing_secret")

    def api_base_url(self, config: Mapping[str, Any]) -> str:
        return f"{str(config.get('baseUrl') or SLACK).rstrip('/')}/api"

    def endpoints(self, credentials: ProviderCredentials, tenant_id: str = "") -> Endpoints:
        base = self.base(credentials, "baseUrl", SLACK)
        return Endpoints(
            authorize=f"{base}/oauth/v2/authorize",
            token=f"{base}/api/oauth.v2.access",
            revoke=f"{base}/api/auth.revoke",
        )

    def authorize_params(
        self, credentials: ProviderCredentials, request: AuthorizeRequest
    ) -> dict[str, str]:
        params = super().authorize_params(credentials, request)
        params.pop("response_type", None)
        # Bot scopes go in `scope`, user scopes in `user_scope`; a consent asks only the latter.
        if request.subject_type == SubjectType.USER:
            params.pop("scope", None)
            params["user_scope"] = ",".join(request.scopes)
        else:
            user_scopes = credentials.config.get("userScopes") or []
            if user_scopes:
                params["user_scope"] = ",".join(user_scopes)
        if request.tenant_hint:
            params["team"] = request.tenant_hint
        return params

    def token_request(
        self,
        credentials: ProviderCredentials,
        body: dict[str, Any],
        *,
        now: datetime,
        tenant_id: str = "",
    ) -> dict[str, Any]:
        body = {
            **body,
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret,
        }
        response = call("POST", self.endpoints(credentials).token, data=body)
        payload = read_json(response)
        if response.status_code >= 500:
            raise ProviderUnavailable(f"Slack answered {response.status_code}")
        if not payload.get("ok"):
            error = str(payload.get("error", "unknown"))
            if error in DEAD:
                raise ProviderInvalidGrant(f"Slack: {error}", vendor={"error": error})
            raise ProviderError(f"Slack: {error}", vendor={"error": error})
        return payload

    def install_result(
        self,
        credentials: ProviderCredentials,
        callback: CallbackRequest,
        payload: Mapping[str, Any],
        tokens: TokenSet,
        *,
        now: datetime,
    ) -> InstallResult:
        team, enterprise, user = (
            obj(payload.get("team")),
            obj(payload.get("enterprise")),
            obj(payload.get("authed_user")),
        )
        if not text(team.get("id")):
            # The workspace is what oauth.v2.access says it is; nothing else may stand in.
            raise TenantUnproven("Slack's answer names no workspace")
        user_tokens = tokens_from(user, now=now, requested=()) if user.get("access_token") else None
        bot = tokens if payload.get("token_type") == "bot" and payload.get("access_token") else None
        return InstallResult(
            tenant_id=text(team.get("id")),
            display_name=text(team.get("name")),
            metadata={
                "teamName": text(team.get("name")),
                "enterpriseId": text(enterprise.get("id")) or None,
                "botUserId": text(payload.get("bot_user_id")) or None,
                "appId": text(payload.get("app_id")) or None,
            },
            app_tokens=bot,
            user_tokens=user_tokens,
            external_subject=text(user.get("id")),
        )

    def revoke(
        self, credentials: ProviderCredentials, token: str, *, hint: str, now: datetime
    ) -> Revocation:
        response = bearer_revoke(self.endpoints(credentials).revoke, token)
        succeeded = response is not None and bool(read_json(response).get("ok"))
        return Revocation(attempted=True, succeeded=succeeded)

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
        event_type = text(event.get("type")) or text(payload.get("type"))
        return WebhookEvent(
            event_id=text(payload.get("event_id")),
            event_type=event_type,
            tenant_id=text(payload.get("team_id")),
            removes_installation=event_type == "app_uninstalled",
        )
