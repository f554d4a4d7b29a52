from datetime import datetime, timedelta

from connect.providers.base import Provider, ProviderCredentials, TokenRequest, TokenSet

DEFAULT_TOKEN_TTL_SECONDS = 3600


class ApiKeyProvider(Provider):
    """A static key typed in by an admin; handed out with a nominal expiry so SDKs re-ask."""

    key = "api-key"
    mints_app_tokens = True

    def mint_app_token(
        self, credentials: ProviderCredentials, request: TokenRequest, *, now: datetime
    ) -> TokenSet:
        ttl = int(credentials.config.get("tokenTtlSeconds") or DEFAULT_TOKEN_TTL_SECONDS)
        return TokenSet(
            access_token=credentials.api_key,
            expires_at=now + timedelta(seconds=ttl),
            scopes=tuple(request.scopes),
        )
