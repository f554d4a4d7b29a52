"""Microsoft Entra: admin consent per tenant, client credentials (app) and delegated (user).

The tenant of an install or a consent is the ``tid`` of an id_token whose signature, issuer and
audience were checked, never a query parameter of the callback."""

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from connect.kinds import AuthorizationKind
from connect.providers import id_tokens
from connect.providers.base import (
    AuthorizationDenied,
    AuthorizeRequest,
    CallbackRequest,
    InstallResult,
    InvalidWebhook,
    MalformedWebhook,
    ProviderCredentials,
    ProviderError,
    TenantUnproven,
    TokenRequest,
    TokenSet,
    WebhookEvent,
    WebhookReply,
    WebhookRequest,
)
from connect.providers.code_flow import CodeFlowProvider, Endpoints, tokens_from, with_query
from connect.providers.schema import GRANT_TOKENS, ConfigField, SecretField
from connect.providers.webhook_bodies import json_object, obj, text

LOGIN = "https://login.microsoftonline.com"
GRAPH = "https://graph.microsoft.com/v1.0"
GRAPH_DEFAULT = "https://graph.microsoft.com/.default"
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class MicrosoftProvider(CodeFlowProvider):
    key = "microsoft"  # stored; Vercel's closed type enum calls it microsoft-entra
    wire_name = "microsoft-entra"
    label = "Microsoft Entra"
    secrets = (
        SecretField("client_secret", "Client secret", data_name="clientSecret", required=True),
        SecretField("trigger_signing_secret", "Graph clientState", data_name="clientState"),
    )
    config_fields = (
        ConfigField(
            "loginBaseUrl",
            "url",
            "Login base URL",
            help="Default https://login.microsoftonline.com.",
            receives=frozenset({"client_secret", GRANT_TOKENS}),
            default=LOGIN,
        ),
        ConfigField(
            "graphBaseUrl",
            "url",
            "Microsoft Graph base URL",
            help="National clouds only (default https://graph.microsoft.com/v1.0).",
            # The proxy sends it app tokens minted with the client secret, and users' tokens.
            receives=frozenset({"client_secret", GRANT_TOKENS}),
            data_name="",  # not part of Vercel's data: set in the admin
            default=GRAPH,
        ),
    )
    trigger_scheme = "microsoft-graph-client-state"
    # Microsoft Graph change notifications carry a changeType, not an event name.
    known_events = ("created", "updated", "deleted")
    setup_links = {
        "App registrations": (
            "https://entra.microsoft.com/#view/Microsoft_AAD_RegisteredApps/ApplicationsListBlade"
        )
    }
    mints_app_tokens = True
    webhook_key = ("secret", "trigger_signing_secret")

    def api_base_url(self, config: Mapping[str, Any]) -> str:
        return str(config.get("graphBaseUrl") or GRAPH).rstrip("/")

    def endpoints(self, credentials: ProviderCredentials, tenant_id: str = "") -> Endpoints:
        login = self.base(credentials, "loginBaseUrl", LOGIN)
        tenant = tenant_id or "organizations"
        return Endpoints(
            authorize=f"{login}/{tenant}/oauth2/v2.0/authorize",
            token=f"{login}/{tenant}/oauth2/v2.0/token",
        )

    def authorize_url(self, credentials: ProviderCredentials, request: AuthorizeRequest) -> str:
        if request.kind == AuthorizationKind.INSTALL:
            # Admin consent through the authorization-code flow rather than /adminconsent:
            # the code exchange yields an id_token Microsoft signed, whose `tid` proves the
            # tenant. /adminconsent only redirects with ?tenant=, which anyone can type.
            resources = [s for s in request.scopes if s.endswith("/.default")] or [GRAPH_DEFAULT]
            params = self.authorize_params(
                credentials,
                AuthorizeRequest(
                    kind=request.kind,
                    subject_type=request.subject_type,
                    scopes=["openid", *dict.fromkeys(resources)],
                    redirect_uri=request.redirect_uri,
                    state=request.state,
                    code_challenge=request.code_challenge,
                ),
            )
            params["prompt"] = "admin_consent"
            return with_query(self.endpoints(credentials, request.tenant_hint).authorize, params)
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

    def tenant_matches(self, hint: str, proven: str) -> bool:
        # A hint may be a verified domain (contoso.onmicrosoft.com) or "organizations": Entra
        # resolved it to the tenant that signed, so only a tenant id can be compared.
        if GUID.fullmatch(hint.lower()):
            return hint.lower() == proven.lower()
        return True

    def complete(
        self, credentials: ProviderCredentials, callback: CallbackRequest, *, now: datetime
    ) -> InstallResult:
        if callback.kind != AuthorizationKind.INSTALL:
            return super().complete(credentials, callback, now=now)
        params = callback.params
        if params.get("error"):
            if params["error"] == "access_denied":
                raise AuthorizationDenied("the administrator declined consent")
            raise ProviderError(f"Microsoft answered {params['error']}", vendor=dict(params))
        code = params.get("code", "")
        if not code:
            # The old /adminconsent answer (?admin_consent=True&tenant=…) proves nothing.
            raise TenantUnproven("Microsoft's answer carries no authorization code")
        body = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": callback.redirect_uri,
        }
        if callback.code_verifier:
            body["code_verifier"] = callback.code_verifier
        payload = self.token_request(credentials, body, now=now, tenant_id=callback.tenant_hint)
        # The administrator's own delegated token is not kept: the app's tokens come from
        # client credentials, per tenant, when asked for.
        claims = self.verified_id_token(credentials, payload.get("id_token"))
        tenant = text(claims.get("tid"))
        return InstallResult(tenant_id=tenant, display_name=tenant, metadata={"tenantId": tenant})

    def verified_id_token(
        self, credentials: ProviderCredentials, id_token: object
    ) -> dict[str, Any]:
        """The claims of an id_token Microsoft signed for this app, in the tenant it names."""
        if not isinstance(id_token, str) or not id_token:
            raise TenantUnproven("Microsoft's answer carries no id_token")
        tenant = text(id_tokens.unverified_claims(id_token).get("tid"))
        if not GUID.fullmatch(tenant):
            raise TenantUnproven("the id_token names no tenant")
        login = self.base(credentials, "loginBaseUrl", LOGIN)
        # The keys come from our configured login host, never from the token: a tid that
        # points elsewhere only chooses which of Microsoft's own key sets must have signed.
        claims = id_tokens.verified_claims(
            id_token,
            jwks_url=f"{login}/{tenant}/discovery/v2.0/keys",
            issuer=f"{login}/{tenant}/v2.0",
            audience=credentials.client_id,
        )
        if text(claims.get("tid")) != tenant:
            raise TenantUnproven("the id_token's tenant differs from its issuer")
        return claims

    def install_result(
        self,
        credentials: ProviderCredentials,
        callback: CallbackRequest,
        payload: Mapping[str, Any],
        tokens: TokenSet,
        *,
        now: datetime,
    ) -> InstallResult:
        claims = self.verified_id_token(credentials, payload.get("id_token"))
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
