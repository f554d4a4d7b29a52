"""Any OAuth 2.0 / OIDC authorization server (RFC 6749, 7009, 7523, 8414, 8707)."""

from datetime import datetime
from typing import Any

import jwt

from connect import signatures
from connect.providers import base
from connect.providers.base import (
    GRANT_TOKENS,
    CallbackRequest,
    InstallResult,
    InvalidWebhook,
    ProviderCredentials,
    TokenRequest,
    TokenSet,
    WebhookEvent,
    WebhookRequest,
)
from connect.providers.code_flow import (
    CodeFlowProvider,
    Endpoints,
    client_assertion,
    tokens_from,
)
from connect.providers.webhook_bodies import json_object, text

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_RECEIVER = frozenset({"client_secret", "private_key", GRANT_TOKENS})


class OAuthProvider(CodeFlowProvider):
    """Endpoints come from the connector's configuration (typed in, or filled by discovery)."""

    key = "oauth"
    mints_app_tokens = True
    token_auth_default = "client_secret_basic"
    url_config_keys = {
        "authorizationEndpoint": frozenset(),
        # Client authentication (the secret, or assertions signed with the private key) and
        # refresh or revoked tokens.
        "tokenEndpoint": TOKEN_RECEIVER,
        "revocationEndpoint": TOKEN_RECEIVER,
        "introspectionEndpoint": TOKEN_RECEIVER,
        "userinfoEndpoint": frozenset(),
        # Who the connector trusts: a new issuer (or its keys) is a new party, which must be
        # given the client's credentials again by someone who has them.
        "issuer": frozenset({"client_secret", "private_key"}),
        "jwksUri": frozenset({"client_secret", "private_key"}),
    }
    webhook_key = ("secret", "trigger_signing_secret")

    def endpoints(self, credentials: ProviderCredentials, tenant_id: str = "") -> Endpoints:
        config = credentials.config
        return Endpoints(
            authorize=str(config.get("authorizationEndpoint") or ""),
            token=str(config.get("tokenEndpoint") or ""),
            revoke=str(config.get("revocationEndpoint") or ""),
        )

    def _with_request(self, body: dict[str, Any], request: TokenRequest) -> dict[str, Any]:
        if request.scopes:
            body["scope"] = " ".join(request.scopes)
        if request.resources:
            body["resource"] = list(request.resources)
        if request.audience:
            body["audience"] = list(request.audience)
        return body

    def mint_app_token(
        self, credentials: ProviderCredentials, request: TokenRequest, *, now: datetime
    ) -> TokenSet:
        body = self._with_request({"grant_type": "client_credentials"}, request)
        payload = self.token_request(credentials, body, now=now)
        return tokens_from(payload, now=now, requested=tuple(request.scopes))

    def mint_jwt_bearer_token(
        self,
        credentials: ProviderCredentials,
        request: TokenRequest,
        *,
        issuer: str,
        audience: str,
        now: datetime,
    ) -> TokenSet:
        """RFC 7523 section 2.1: a JWT asserting the subject, signed with the connector's key."""
        endpoint = self.endpoints(credentials).token
        assertion = client_assertion(credentials, audience or endpoint, now=now)
        claims = jwt.decode(assertion, options={"verify_signature": False})
        claims.update({"iss": issuer or credentials.client_id, "sub": request.subject_id})
        signed = jwt.encode(
            claims, credentials.private_key, algorithm="RS256", headers={"kid": credentials.key_id}
        )
        body = self._with_request({"grant_type": JWT_BEARER_GRANT, "assertion": signed}, request)
        payload = self.token_request(credentials, body, now=now)
        return tokens_from(payload, now=now, requested=tuple(request.scopes))

    def install_result(
        self,
        credentials: ProviderCredentials,
        callback: CallbackRequest,
        payload: Any,
        tokens: TokenSet,
        *,
        now: datetime,
    ) -> InstallResult:
        subject = ""
        id_token = payload.get("id_token")
        if isinstance(id_token, str):
            # Received straight from the token endpoint over TLS (OIDC Core 3.1.3.7): the
            # subject may be read without a second signature check.
            try:
                subject = str(
                    jwt.decode(id_token, options={"verify_signature": False}).get("sub", "")
                )
            except jwt.PyJWTError:
                subject = ""
        if callback.subject_type == "user":
            return InstallResult(user_tokens=tokens, external_subject=subject)
        return InstallResult(app_tokens=tokens, external_subject=subject)

    def webhook_replay_window(self, credentials: ProviderCredentials) -> int:
        # Standard Webhooks signs a timestamp; a generic HMAC covers the body alone.
        if (credentials.config.get("triggerScheme") or "standard-webhooks") == "standard-webhooks":
            return base.TIMED_REPLAY_WINDOW
        return base.UNTIMED_REPLAY_WINDOW

    def verify_webhook(
        self, credentials: ProviderCredentials, request: WebhookRequest
    ) -> WebhookEvent:
        """Standard Webhooks (default) or a generic HMAC-SHA256 header, per connector."""
        config = credentials.config
        scheme = config.get("triggerScheme") or "standard-webhooks"
        headers = request.headers
        if scheme == "standard-webhooks":
            message_id = headers.get("webhook-id")
            ok = signatures.standard_verify(
                secret=credentials.webhook_secret,
                body=request.body,
                message_id=message_id,
                timestamp=headers.get("webhook-timestamp"),
                signature=headers.get("webhook-signature"),
                now=request.now,
            )
            event_id = message_id or ""
        else:
            ok = signatures.generic_hmac(
                secret=credentials.webhook_secret,
                body=request.body,
                signature=headers.get(str(config.get("signatureHeader", "x-signature")).lower()),
                prefix=str(config.get("signaturePrefix", "")),
                encoding=str(config.get("signatureEncoding", "hex")),
            )
            event_id = headers.get(str(config.get("eventIdHeader", "")).lower(), "")
        if not ok:
            raise InvalidWebhook("the webhook signature did not verify")
        payload = json_object(request.body)
        return WebhookEvent(event_id=event_id, event_type=text(payload.get("type")))
