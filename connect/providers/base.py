"""What every provider driver speaks: plain dataclasses in and out, HTTP only via connect.http."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class ProviderError(Exception):
    """The provider answered, but not with a token."""

    def __init__(self, message: str, *, vendor: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.vendor = dict(vendor or {})


class ProviderInvalidGrant(ProviderError):
    """The refresh token (or the grant behind it) is dead: the subject must re-authorize."""


class ProviderUnavailable(ProviderError):
    """Network error, timeout or 5xx: worth retrying later; nothing was changed."""


class Unsupported(ProviderError):
    """This connector type cannot do that (an API key cannot be refreshed)."""


class InvalidWebhook(ProviderError):
    """The signature, timestamp window or shared state did not check out."""


class MalformedWebhook(ProviderError):
    """Genuine (or unsigned by design) but unreadable: not JSON, or missing required fields."""


@dataclass(frozen=True)
class ProviderCredentials:
    """A connector's configuration with its secrets opened, for one call."""

    type: str
    client_id: str
    config: Mapping[str, Any]
    client_secret: str = ""
    private_key: str = ""
    api_key: str = ""
    key_id: str = ""
    webhook_secret: str = ""


@dataclass(frozen=True)
class TokenRequest:
    scopes: Sequence[str] = ()
    resources: Sequence[str] = ()
    audience: Sequence[str] = ()
    authorization_details: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    expires_at: datetime | None
    refresh_token: str | None = None
    refresh_expires_at: datetime | None = None
    scopes: tuple[str, ...] | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookReply:
    """What to answer the provider directly (handshakes, pings)."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"


@dataclass(frozen=True)
class WebhookEvent:
    """A verified inbound webhook: what to dedupe on, and whether to forward it."""

    event_id: str = ""
    event_type: str = ""
    tenant_id: str = ""
    reply: WebhookReply | None = None
    forward: bool = True


@dataclass(frozen=True)
class WebhookRequest:
    headers: Mapping[str, str]  # lower-cased names
    query: Mapping[str, str]
    body: bytes
    now: float  # epoch seconds


@dataclass(frozen=True)
class Revocation:
    attempted: bool
    succeeded: bool


class Provider:
    """The driver interface. Each method a type does not support raises ``Unsupported``."""

    key: str = ""
    #: Whether app tokens are minted on demand (and cached on the app grant).
    mints_app_tokens: bool = False

    def mint_app_token(
        self, credentials: ProviderCredentials, request: TokenRequest, *, now: datetime
    ) -> TokenSet:
        raise Unsupported(f"{self.key} connectors do not mint app tokens")

    def refresh(
        self,
        credentials: ProviderCredentials,
        refresh_token: str,
        request: TokenRequest,
        *,
        now: datetime,
    ) -> TokenSet:
        raise Unsupported(f"{self.key} connectors cannot refresh tokens")

    def revoke(
        self, credentials: ProviderCredentials, token: str, *, hint: str, now: datetime
    ) -> Revocation:
        return Revocation(attempted=False, succeeded=False)

    def verify_webhook(
        self, credentials: ProviderCredentials, request: WebhookRequest
    ) -> WebhookEvent:
        """Check the request is genuine, then say what it is. Raises InvalidWebhook."""
        raise Unsupported(f"{self.key} connectors do not receive webhooks")
