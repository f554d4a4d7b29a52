"""Any OAuth 2.0 / OIDC authorization server (RFC 6749, 7009, 7523, 8414, 8707)."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import jwt

from connect import signatures
from connect.providers import base
from connect.providers.base import (
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
    TOKEN_AUTH_METHODS,
    CodeFlowProvider,
    Endpoints,
    client_assertion,
    tokens_from,
)
from connect.providers.schema import GRANT_TOKENS, ConfigField, SecretField
from connect.providers.webhook_bodies import json_object, text

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_RECEIVER = frozenset({"client_secret", "private_key", GRANT_TOKENS})
#: Who the connector trusts: a new issuer (or its keys) is a new party, which must be given the
#: client's credentials again by someone who has them.
TRUST_RECEIVER = frozenset({"client_secret", "private_key"})
TRIGGER_SCHEMES = ("standard-webhooks", "hmac-sha256")


def server_url(key: str, label: str, receives: frozenset[str] = frozenset()) -> ConfigField:
    """An RFC 8414 metadata URL: flat in ``config``, under ``serverConfig`` in Vercel's data."""
    return ConfigField(key, "url", label, receives=receives, data_name=f"serverConfig.{key}")


def flag(key: str, label: str) -> ConfigField:
    """A Vercel ``{enabled, ...}`` setting, kept as the object it is."""
    return ConfigField(key, "dict", label, help='{"enabled": true, …}')


class OAuthProvider(CodeFlowProvider):
    """Endpoints come from the connector's configuration (typed in, or filled by discovery)."""

    key = "oauth"
    label = "Custom OAuth 2.0 / OIDC"
    secrets = (
        SecretField("client_secret", "Client secret", data_name="clientSecret"),
        SecretField(
            "private_key",
            "Client assertion key (generated for private_key_jwt when empty)",
            data_name="",  # generated here; its public JWK is published, never the key
            multiline=True,
        ),
        SecretField(
            "trigger_signing_secret",
            "Webhook secret (whsec_… for Standard Webhooks)",
            data_name="webhookSecret",
        ),
    )
    config_fields = (
        ConfigField(
            "serverUrl",
            "url",
            "Server URL",
            help="The issuer its metadata was discovered from.",
        ),
        server_url("issuer", "Issuer", TRUST_RECEIVER),
        server_url("authorizationEndpoint", "Authorization endpoint"),
        # Client authentication (the secret, or assertions signed with the private key) and
        # refreshed or revoked tokens.
        server_url("tokenEndpoint", "Token endpoint", TOKEN_RECEIVER),
        server_url("revocationEndpoint", "Revocation endpoint", TOKEN_RECEIVER),
        server_url("introspectionEndpoint", "Introspection endpoint", TOKEN_RECEIVER),
        server_url("userinfoEndpoint", "Userinfo endpoint"),
        server_url("jwksUri", "JWKS URI", TRUST_RECEIVER),
        ConfigField(
            "authorizationResponseIssParameterSupported",
            "bool",
            "Sends iss in the authorization response (RFC 9207)",
            data_name="serverConfig.authorizationResponseIssParameterSupported",
        ),
        ConfigField(
            "apiBaseUrl",
            "url",
            "API base URL",
            help="Where the proxy sends calls (/v1/connect/proxy/…), with the grant's token.",
            # App tokens minted with the client's credentials go there: whoever moves it must
            # know those credentials, as for the token endpoint.
            receives=TOKEN_RECEIVER,
        ),
        ConfigField("clientName", "str", "Client name"),
        ConfigField(
            "tokenEndpointAuthMethod",
            "choice",
            "Token endpoint authentication",
            choices=TOKEN_AUTH_METHODS,
            default="client_secret_basic",
        ),
        ConfigField("responseType", "str", "Response type"),
        ConfigField("pkce", "bool", "PKCE", data_name="pkceRequired", default=True),
        ConfigField("codeChallengeMethod", "choice", "Code challenge method", choices=("S256",)),
        flag("userAuthorization", "User authorization"),
        flag("refreshTokens", "Refresh tokens"),
        flag("clientCredentials", "Client credentials"),
        ConfigField("forwardedClaims", "dict", "Forwarded claims", help='{"idToken": ["…"]}'),
        ConfigField("defaultAudience", "str", "Default audience"),
        ConfigField("defaultTokenExpiresIn", "int", "Default token lifetime (seconds)"),
        ConfigField("authorizationUrlParams", "dict", "Extra authorization URL parameters"),
        ConfigField(
            "jwtBearer",
            "dict",
            "JWT bearer (RFC 7523)",
            help='{"enabled": true, "iss": "…", "aud": "…"}',
        ),
        ConfigField("clientAssertion", "dict", "Client assertion", help='{"type", "ttl", …}'),
        ConfigField(
            "triggerScheme",
            "choice",
            "Webhook signature scheme",
            choices=TRIGGER_SCHEMES,
            default="standard-webhooks",
        ),
        ConfigField(
            "signatureHeader", "str", "Signature header (hmac-sha256)", default="x-signature"
        ),
        ConfigField("signaturePrefix", "str", "Signature prefix (hmac-sha256)", help="sha256="),
        ConfigField(
            "signatureEncoding",
            "choice",
            "Signature encoding (hmac-sha256)",
            choices=("hex", "base64"),
            default="hex",
        ),
        ConfigField("eventIdHeader", "str", "Event id header (hmac-sha256)"),
        # Written by the app when it generates the client assertion key.
        ConfigField("clientAssertionKeyId", "str", "Client assertion key id", data_name=""),
        ConfigField("clientAssertionJwk", "dict", "Client assertion public JWK", data_name=""),
    )
    single_account = True
    jwt_bearer = True
    discovers_metadata = True
    # The default; a connector's triggerScheme may choose hmac-sha256 instead.
    trigger_scheme = "standard-webhooks"
    mints_app_tokens = True
    token_auth_default = "client_secret_basic"
    webhook_key = ("secret", "trigger_signing_secret")

    def api_base_url(self, config: Mapping[str, Any]) -> str:
        return str(config.get("apiBaseUrl") or "").rstrip("/")

    def endpoints(self, credentials: ProviderCredentials, tenant_id: str = "") -> Endpoints:
        config = credentials.config
        return Endpoints(
            authorize=str(config.get("authorizationEndpoint") or ""),
            token=str(config.get("tokenEndpoint") or ""),
            revoke=str(config.get("revocationEndpoint") or ""),
        )

    def _grant(
        self,
        credentials: ProviderCredentials,
        body: dict[str, Any],
        request: TokenRequest,
        *,
        now: datetime,
    ) -> TokenSet:
        """A token for ``body``'s grant, narrowed to what the request asks for: its scopes,
        resources (RFC 8707) and audiences."""
        if request.scopes:
            body["scope"] = " ".join(request.scopes)
        if request.resources:
            body["resource"] = list(request.resources)
        if request.audience:
            body["audience"] = list(request.audience)
        payload = self.token_request(credentials, body, now=now)
        return tokens_from(payload, now=now, requested=tuple(request.scopes))

    def mint_app_token(
        self, credentials: ProviderCredentials, request: TokenRequest, *, now: datetime
    ) -> TokenSet:
        return self._grant(credentials, {"grant_type": "client_credentials"}, request, now=now)

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
        body = {"grant_type": JWT_BEARER_GRANT, "assertion": signed}
        return self._grant(credentials, body, request, now=now)

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
        return InstallResult(external_subject=subject).with_tokens(tokens, callback)

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
