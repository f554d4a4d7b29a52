"""Salesforce: the web server flow for one org; the instance URL is kept with the installation.

Salesforce does not say when an access token expires (the org's session timeout decides), so
tokens carry a nominal lifetime (``sessionSeconds``, default two hours) after which they are
refreshed. A refresh token replayed after rotation would kill the grant at Salesforce; the row
lock around refreshes makes sure each one is spent once.
"""

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from connect.providers.base import (
    CallbackRequest,
    InstallResult,
    ProviderCredentials,
    TokenRequest,
    TokenSet,
)
from connect.providers.code_flow import CodeFlowProvider, Endpoints
from connect.providers.schema import (
    GRANT_TOKENS,
    ConfigField,
    ConfigInvalid,
    ConnectorFields,
    SecretField,
)
from connect.providers.webhook_bodies import text

LOGIN = "https://login.salesforce.com"
DEFAULT_SESSION_SECONDS = 7200


class SalesforceProvider(CodeFlowProvider):
    key = "salesforce"
    label = "Salesforce"
    client_id_data_name = "consumerKey"
    secrets = (
        SecretField("client_secret", "Consumer secret", data_name="consumerSecret", required=True),
    )
    config_fields = (
        ConfigField(
            "loginBaseUrl",
            "url",
            "Login base URL",
            help="https://login.salesforce.com, https://test.salesforce.com or your My Domain.",
            receives=frozenset({"client_secret", GRANT_TOKENS}),
            # Vercel's data names the host (see from_data / to_data).
            data_name="loginHost",
            default=LOGIN,
        ),
        ConfigField(
            "sessionSeconds",
            "int",
            "Session lifetime (seconds)",
            help="The org's session timeout; tokens are refreshed after it (default 7200).",
            default=DEFAULT_SESSION_SECONDS,
        ),
    )
    single_account = True
    setup_links = {
        "App Manager": "https://login.salesforce.com/lightning/setup/NavigationMenus/home"
    }

    def from_data(self, data: object, *, partial: bool = False) -> ConnectorFields:
        """``loginHost`` is a host name (``login.salesforce.com``); it is kept as a URL."""
        if isinstance(data, Mapping) and isinstance(data.get("loginHost"), str):
            host = data["loginHost"].strip()
            if host and "/" in host:
                raise ConfigInvalid({"loginHost": ["loginHost must be a host name, no path."]})
            data = {**data, "loginHost": f"https://{host}" if host else host}
        return super().from_data(data, partial=partial)

    def to_data(self, client_id: str, config: Mapping[str, Any]) -> dict[str, Any]:
        data = super().to_data(client_id, config)
        if "loginHost" in data:
            data["loginHost"] = urlsplit(str(data["loginHost"])).netloc
        return data

    def proxy_base_url(self, config: Mapping[str, Any], installation: Mapping[str, Any]) -> str:
        """The org's instance URL, as the token endpoint named it when the org was connected."""
        return str(installation.get("instanceUrl") or "").rstrip("/")

    def endpoints(self, credentials: ProviderCredentials, tenant_id: str = "") -> Endpoints:
        login = self.base(credentials, "loginBaseUrl", LOGIN)
        return Endpoints(
            authorize=f"{login}/services/oauth2/authorize",
            token=f"{login}/services/oauth2/token",
            revoke=f"{login}/services/oauth2/revoke",
        )

    def _nominal(
        self, credentials: ProviderCredentials, tokens: TokenSet, now: datetime
    ) -> TokenSet:
        if tokens.expires_at is not None:
            return tokens
        seconds = int(credentials.config.get("sessionSeconds") or DEFAULT_SESSION_SECONDS)
        return TokenSet(
            access_token=tokens.access_token,
            expires_at=now + timedelta(seconds=seconds),
            refresh_token=tokens.refresh_token,
            refresh_expires_at=tokens.refresh_expires_at,
            scopes=tokens.scopes,
        )

    def install_result(
        self,
        credentials: ProviderCredentials,
        callback: CallbackRequest,
        payload: Mapping[str, Any],
        tokens: TokenSet,
        *,
        now: datetime,
    ) -> InstallResult:
        # `id` reads https://login.salesforce.com/id/<org id>/<user id>.
        identity = text(payload.get("id")).rstrip("/").split("/")
        org_id, user_id = (identity[-2], identity[-1]) if len(identity) >= 2 else ("", "")
        tokens = self._nominal(credentials, tokens, now)
        return InstallResult(
            metadata={"instanceUrl": text(payload.get("instance_url")), "organizationId": org_id},
            external_subject=user_id,
        ).with_tokens(tokens, callback)

    def refresh(
        self,
        credentials: ProviderCredentials,
        refresh_token: str,
        request: TokenRequest,
        *,
        now: datetime,
    ) -> TokenSet:
        tokens = super().refresh(credentials, refresh_token, request, now=now)
        return self._nominal(credentials, tokens, now)
