"""Microsoft Entra: admin consent per tenant, client credentials (app) and delegated (user)."""

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import jwt

from connect.providers.base import (
    GRANT_TOKENS,
    AuthorizationDenied,
    AuthorizeRequest,
    CallbackRequest,
    InstallResult,
    InvalidWebhook,
    MalformedWebhook,
    ProviderCredentials,
    ProviderError,
    TokenRequest,
    TokenSet,
    WebhookEvent,
    WebhookReply,
    WebhookRequest,
)
from connect.providers.code_flow import CodeFlowProvider, Endpoints, tokens_from, with_query
from connect.providers.webhook_bodies import json_object, obj, text

LOGIN = "https://login.microsoftonline.com"
GRAPH_DEFAULT = "https://graph.microsoft.com/.default"


class MicrosoftProvider(CodeFlowProvider):
    key = "microsoft"
    mints_app_tokens = True
    token_auth_default = "client_secret_post"
    url_config_keys = {"loginBaseUrl": frozenset({"client_secret", GRANT_TOKENS})}
    webhook_key = ("secret", "trigger_signing_secret")

    def endpoints(self, credentials: ProviderCredentials, tenant_id: str = "") -> Endpoints:
        login = self.base(credentials, "loginBaseUrl", LOGIN)
        tenant = tenant_id or "organizations"
        return Endpoints(
            authorize=f"{login}/{tenant}/oauth2/v2.0/authorize",
            token=f"{login}/{tenant}/oauth2/v2.0/token",
        )

    def authorize_url(self, credentials: ProviderCredentials, request: AuthorizeRequest) -> str:
        if request.kind == "install":
            # Admin consent grants the app's permissions in one tenant; no code comes back.
            login = self.base(credentials, "loginBaseUrl", LOGIN)
            tenant = request.tenant_hint or "organizations"
            return with_query(
                f"{login}/{tenant}/v2.0/adminconsent",
                {
                    "client_id": credentials.client_id,
                    "redirect_uri": request.redirect_uri,
                    "state": request.state,
                    "scope": GRAPH_DEFAULT,
                },
            )
        scopes = [*request.scopes, "offline_access", "openid"]
        return super().authorize_url(
            credentials,
            AuthorizeRequest(
                kind=request.kind,
                subject_type=request.subject_type,
                scopes=list(dict.fromkeys(scopes)),
                redirect_uri=request.redirect_uri,
                state=request.state,
                code_challenge=request.code_challenge,
                tenant_hint=request.tenant_hint,
            ),
        )

    def complete(
        self, credentials: ProviderCredentials, callback: CallbackRequest, *, now: datetime
    ) -> InstallResult:
        if callback.kind != "install":
            return super().complete(credentials, callback, now=now)
        params = callback.params
        if params.get("error"):
            if params["error"] == "access_denied":
                raise AuthorizationDenied("the administrator declined consent")
            raise ProviderError(f"Microsoft answered {params['error']}", vendor=dict(params))
        tenant = params.get("tenant", "")
        if params.get("admin_consent", "").lower() != "true" or not tenant:
            raise ProviderError("the admin consent callback carries no consented tenant")
        return InstallResult(tenant_id=tenant, display_name=tenant, metadata={"tenantId": tenant})

    def install_result(
        self,
        credentials: ProviderCredentials,
        callback: CallbackRequest,
        payload: Mapping[str, Any],
        tokens: TokenSet,
        *,
        now: datetime,
    ) -> InstallResult:
        claims: dict[str, Any] = {}
        id_token = payload.get("id_token")
        if isinstance(id_token, str):
            # Straight from the token endpoint over TLS (OIDC Core 3.1.3.7).
            try:
                claims = jwt.decode(id_token, options={"verify_signature": False})
            except jwt.PyJWTError:
                claims = {}
        return InstallResult(
            tenant_id=text(claims.get("tid")),
            display_name=text(claims.get("tid")),
            user_tokens=tokens,
            external_subject=text(claims.get("oid")),
        )

    def mint_app_token(
        self, credentials: ProviderCredentials, request: TokenRequest, *, now: datetime
    ) -> TokenSet:
        if not request.tenant_id:
            raise ProviderError("client credentials need the installation's tenant")
        scopes = list(request.scopes) or [GRAPH_DEFAULT]
        payload = self.token_request(
            credentials,
            {"grant_type": "client_credentials", "scope": " ".join(scopes)},
            now=now,
            tenant_id=request.tenant_id,
        )
        return tokens_from(payload, now=now, requested=tuple(request.scopes))

    def refresh(
        self,
        credentials: ProviderCredentials,
        refresh_token: str,
        request: TokenRequest,
        *,
        now: datetime,
    ) -> TokenSet:
        body = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        if request.scopes:
            body["scope"] = " ".join([*request.scopes, "offline_access"])
        payload = self.token_request(credentials, body, now=now, tenant_id=request.tenant_id)
        return tokens_from(payload, now=now, requested=None)

    def verify_webhook(
        self, credentials: ProviderCredentials, request: WebhookRequest
    ) -> WebhookEvent:
        if not credentials.webhook_secret:
            # Without a clientState nothing can be told apart from a forgery, handshakes included.
            raise InvalidWebhook("the connector has no Graph clientState")
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
            if not hmac.compare_digest(state.encode(), expected):
                raise InvalidWebhook("clientState does not match")
        first = obj(items[0])
        return WebhookEvent(
            event_id=hashlib.sha256(request.body).hexdigest(),
            event_type=text(first.get("changeType")),
            tenant_id=text(first.get("tenantId")),
        )
