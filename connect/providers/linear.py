"""Linear: OAuth apps acting as the app (``actor=app``) or as a user, with refresh."""

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
    ProviderUnavailable,
    Revocation,
    TenantUnproven,
    TokenSet,
    WebhookEvent,
    WebhookRequest,
)
from connect.providers.code_flow import CodeFlowProvider, Endpoints, bearer_revoke, call, read_json
from connect.providers.schema import GRANT_TOKENS, ConfigField, SecretField
from connect.providers.webhook_bodies import json_object, obj, text

WEB = "https://linear.app"
API = "https://api.linear.app"
VIEWER_QUERY = "query { viewer { id name } organization { id name urlKey } }"


class LinearProvider(CodeFlowProvider):
    key = "linear"
    label = "Linear"
    secrets = (
        SecretField("client_secret", "Client secret", data_name="clientSecret", required=True),
        SecretField("trigger_signing_secret", "Webhook signing secret", data_name="webhookSecret"),
    )
    config_fields = (
        ConfigField("appId", "str", "App ID"),
        ConfigField("appName", "str", "App name"),
        ConfigField(
            "baseUrl",
            "url",
            "Web base URL",
            help="Default https://linear.app (the consent page only).",
            default=WEB,
        ),
        ConfigField(
            "apiBaseUrl",
            "url",
            "API base URL",
            help="Default https://api.linear.app.",
            receives=frozenset({"client_secret", GRANT_TOKENS}),
            default=API,
        ),
        ConfigField("appScopes", "list", "App scopes"),
        ConfigField("userScopes", "list", "User scopes"),
        ConfigField("ownerOrganization", "str", "Owner organization"),
        ConfigField("application", "dict", "Application"),
        ConfigField("extras", "dict", "Extras"),
    )
    trigger_scheme = "linear-hmac-sha256"
    known_events = (
        "Issue",
        "Comment",
        "IssueLabel",
        "Project",
        "ProjectUpdate",
        "Cycle",
        "Reaction",
        "Document",
    )
    setup_links = {"Linear OAuth applications": "https://linear.app/settings/api/applications"}
    scope_separator = ","
    revokes_refresh_tokens = False  # /oauth/revoke revokes the bearer access token
    webhook_key = ("secret", "trigger_signing_secret")

    def api_base_url(self, config: Mapping[str, Any]) -> str:
        return str(config.get("apiBaseUrl") or API).rstrip("/")

    def endpoints(self, credentials: ProviderCredentials, tenant_id: str = "") -> Endpoints:
        web = self.base(credentials, "baseUrl", WEB)
        api = self.base(credentials, "apiBaseUrl", API)
        return Endpoints(
            authorize=f"{web}/oauth/authorize",
            token=f"{api}/oauth/token",
            revoke=f"{api}/oauth/revoke",
        )

    def authorize_params(
        self, credentials: ProviderCredentials, request: AuthorizeRequest
    ) -> dict[str, str]:
        params = super().authorize_params(credentials, request)
        # An install makes the app itself the actor of what it does in the workspace.
        params["actor"] = "app" if request.subject_type == SubjectType.APP else "user"
        params["prompt"] = "consent"
        return params

    def install_result(
        self,
        credentials: ProviderCredentials,
        callback: CallbackRequest,
        payload: Mapping[str, Any],
        tokens: TokenSet,
        *,
        now: datetime,
    ) -> InstallResult:
        api = self.base(credentials, "apiBaseUrl", API)
        response = call(
            "POST",
            f"{api}/graphql",
            json={"query": VIEWER_QUERY},
            headers={"Authorization": f"Bearer {tokens.access_token}"},
        )
        if response.status_code >= 500:
            raise ProviderUnavailable(f"Linear answered {response.status_code}")
        data = obj(read_json(response).get("data"))
        organization, viewer = obj(data.get("organization")), obj(data.get("viewer"))
        if not text(organization.get("id")):
            # The organization comes from Linear's API with the new token; without it the flow
            # would fall back to whichever installation it was started for.
            raise TenantUnproven(
                f"Linear did not say which workspace this is ({response.status_code})"
            )
        is_user = callback.subject_type == SubjectType.USER
        return InstallResult(
            tenant_id=text(organization.get("id")),
            display_name=text(organization.get("name")),
            metadata={"urlKey": text(organization.get("urlKey"))},
            external_subject=text(viewer.get("id")) if is_user else "",
        ).with_tokens(tokens, callback)

    def revoke(
        self, credentials: ProviderCredentials, token: str, *, hint: str, now: datetime
    ) -> Revocation:
        response = bearer_revoke(self.endpoints(credentials).revoke, token)
        succeeded = response is not None and response.status_code == 200
        return Revocation(attempted=True, succeeded=succeeded)

    def verify_webhook(
        self, credentials: ProviderCredentials, request: WebhookRequest
    ) -> WebhookEvent:
        signature = request.headers.get("linear-signature")
        if not credentials.webhook_secret:
            raise InvalidWebhook("the connector has no webhook signing secret")
        # The signature covers the raw bytes and is checked before they are parsed: the
        # timestamp lives in the body, but an unsigned body is never read.
        expected = signatures.hmac_sha256(credentials.webhook_secret.encode(), request.body)
        if not signatures.hex_matches(expected, signature):
            raise InvalidWebhook("Linear-Signature did not verify")
        payload = json_object(request.body)
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
