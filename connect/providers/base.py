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


class ScopeRefused(ProviderError):
    """The provider will not grant what was asked (GitHub: a repository or permission the
    installation does not have)."""


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
    tenant_id: str = ""  # the installation's provider tenant (GitHub installation id, Entra tenant)
    subject_id: str = ""  # for jwt-bearer: the asserted subject


class AuthorizationDenied(ProviderError):
    """The person at the provider said no (``error=access_denied``)."""


@dataclass(frozen=True)
class AuthorizeRequest:
    kind: str  # "install" or "consent"
    subject_type: str  # "app" or "user"
    scopes: Sequence[str]
    redirect_uri: str
    state: str
    code_challenge: str = ""  # S256, empty where the provider takes no PKCE
    tenant_hint: str = ""


@dataclass(frozen=True)
class CallbackRequest:
    kind: str
    subject_type: str
    scopes: Sequence[str]
    params: Mapping[str, str]  # the callback's query string
    redirect_uri: str
    code_verifier: str = ""
    tenant_id: str = ""  # the installation already chosen, when the flow is for one


@dataclass(frozen=True)
class InstallResult:
    """What a completed flow yields. An empty ``tenant_id`` means the connector's own
    (single-account) installation, or the one the flow was started for."""

    tenant_id: str = ""
    display_name: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    app_tokens: "TokenSet | None" = None
    user_tokens: "TokenSet | None" = None
    external_subject: str = ""


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
    #: The provider says the tenant uninstalled the app (Slack app_uninstalled, GitHub
    #: installation.deleted): its grants are revoked.
    removes_installation: bool = False


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


#: Seconds a captured webhook still verifies where the signature covers a timestamp (Slack,
#: Standard Webhooks, Discord: 5 minutes; Linear: 1 minute): the body-hash replay window.
TIMED_REPLAY_WINDOW = 5 * 60
#: Where it covers none (GitHub, a plain HMAC of the body) a captured request verifies forever,
#: and only the body hash stops a replay under a new (unsigned) delivery id: for 4 days.
UNTIMED_REPLAY_WINDOW = 4 * 24 * 3600


class Provider:
    """The driver interface. Each method a type does not support raises ``Unsupported``."""

    #: Whether the webhook signature covers a timestamp (see ``webhook_replay_window``).
    webhook_signs_time: bool = True
    key: str = ""
    #: Whether app tokens are minted on demand (and cached on the app grant).
    mints_app_tokens: bool = False
    #: Whether the install / consent flows send a PKCE challenge.
    pkce: bool = True
    #: Whether ``revoke`` takes a refresh token. Where the revocation call authenticates with
    #: the token itself (Slack's auth.revoke, Linear's /oauth/revoke) or names an access token
    #: (GitHub's applications API), a refresh token is refused, so the access token is revoked.
    revokes_refresh_tokens: bool = True

    def authorize_url(self, credentials: ProviderCredentials, request: AuthorizeRequest) -> str:
        raise Unsupported(f"{self.key} connectors have no browser flow")

    def complete(
        self, credentials: ProviderCredentials, callback: CallbackRequest, *, now: datetime
    ) -> InstallResult:
        raise Unsupported(f"{self.key} connectors have no browser flow")

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

    def revocable_token(self, *, access_token: str, refresh_token: str) -> tuple[str, str]:
        """The token to hand ``revoke`` and its hint: the refresh token where the provider
        takes one (revoking it ends the whole grant), otherwise the access token."""
        if refresh_token and self.revokes_refresh_tokens:
            return refresh_token, "refresh_token"
        return access_token, "access_token"

    def verify_webhook(
        self, credentials: ProviderCredentials, request: WebhookRequest
    ) -> WebhookEvent:
        """Check the request is genuine, then say what it is. Raises InvalidWebhook."""
        raise Unsupported(f"{self.key} connectors do not receive webhooks")

    def webhook_replay_window(self, credentials: ProviderCredentials) -> int:
        """Seconds during which the same body on the same connector is a replay, not an event."""
        return TIMED_REPLAY_WINDOW if self.webhook_signs_time else UNTIMED_REPLAY_WINDOW
