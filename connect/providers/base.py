"""What every provider driver speaks: plain dataclasses in and out, HTTP only via connect.http."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, ClassVar

from connect.kinds import SubjectType
from connect.providers.schema import GRANT_TOKENS as GRANT_TOKENS  # re-exported for callers
from connect.providers.schema import (
    ConfigField,
    ConfigInvalid,
    ConnectorFields,
    SecretField,
    clean_config,
    get_path,
    is_empty,
    set_path,
)
from connect.web_urls import check_web_url


class ProviderError(Exception):
    """The provider answered, but not with a token."""

    def __init__(
        self, message: str, *, vendor: Mapping[str, Any] | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.vendor = dict(vendor or {})
        #: The provider's HTTP status, where the answer had one worth keeping.
        self.status = status


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
    client_secret: str = field(default="", repr=False)
    private_key: str = field(default="", repr=False)
    api_key: str = field(default="", repr=False)
    key_id: str = ""
    webhook_secret: str = field(default="", repr=False)


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


class TenantUnproven(ProviderError):
    """The provider did not prove the tenant the callback names: a spoofed GitHub
    ``installation_id``, an ``id_token`` whose signature, audience or issuer does not check
    out. Nothing may be attached."""


class SetupRequired(ProviderError):
    """The connector (or the app at the provider) lacks a setting the flow needs; the message
    says which, in words an operator can act on."""


class IssuerMismatch(ProviderError):
    """RFC 9207: the authorization response came from another issuer than the connector's
    (a mix-up attack), or lacks ``iss`` although the server promised to send it."""


@dataclass(frozen=True)
class AuthorizeRequest:
    kind: str  # an AuthorizationKind
    subject_type: str  # a SubjectType: app or user
    scopes: Sequence[str]
    redirect_uri: str
    state: str = field(repr=False)
    code_challenge: str = ""  # S256, empty where the provider takes no PKCE
    tenant_hint: str = ""


@dataclass(frozen=True)
class CallbackRequest:
    kind: str
    subject_type: str
    scopes: Sequence[str]
    params: Mapping[str, str] = field(repr=False)  # the callback's query: code and state
    redirect_uri: str
    code_verifier: str = field(default="", repr=False)
    tenant_id: str = ""  # the installation already chosen, when the flow is for one
    tenant_hint: str = ""  # the tenant the flow was started for (a hint, never a proof)


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
    #: The tenant asked for the app but someone else must approve it (a GitHub organization
    #: owner): nothing is attached now; the provider's webhook announces the installation.
    pending_approval: bool = False

    def with_tokens(self, tokens: "TokenSet", callback: CallbackRequest) -> "InstallResult":
        """This result holding ``tokens``: the user's after a consent, the app's after an
        install."""
        if callback.subject_type == SubjectType.USER:
            return replace(self, user_tokens=tokens)
        return replace(self, app_tokens=tokens)


@dataclass(frozen=True)
class TokenSet:
    access_token: str = field(repr=False)
    expires_at: datetime | None
    refresh_token: str | None = field(default=None, repr=False)
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
    #: The provider says the tenant installed the app (GitHub installation.created, which is
    #: how an install an organization owner had to approve arrives): the installation is made.
    adds_installation: bool = False
    display_name: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookRequest:
    # Signatures, shared tokens (Slack's, Microsoft's clientState) and payloads stay out of reprs.
    headers: Mapping[str, str] = field(repr=False)  # lower-cased names
    query: Mapping[str, str] = field(repr=False)
    body: bytes = field(repr=False)
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
    """The driver interface, and everything the app knows about one connector type.

    The declarations below are the only place a fact about a type is written: the admin form,
    the API and the services read them through the registry (``connect.providers``). Each
    method a type does not support raises ``Unsupported``.
    """

    #: The type as stored in the database (``Connector.type``).
    key: ClassVar[str] = ""
    #: The type's name on the wire (Vercel's closed enum); the stored key unless a driver says.
    wire_name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    #: The client id's key in Vercel's ``data``; "" where the type has no client id.
    client_id_data_name: ClassVar[str] = "clientId"
    secrets: ClassVar[tuple[SecretField, ...]] = ()
    config_fields: ClassVar[tuple[ConfigField, ...]] = ()
    #: The connector is its own (only) installation: no install flow picks a tenant.
    single_account: ClassVar[bool] = False
    #: Installs and consents go through the provider's pages in a browser.
    browser_flow: ClassVar[bool] = True
    subject_types: ClassVar[frozenset[str]] = frozenset({SubjectType.APP, SubjectType.USER})
    #: Whether the type can mint tokens for a subject with an RFC 7523 JWT bearer assertion.
    jwt_bearer: ClassVar[bool] = False
    #: The endpoints can be discovered from an issuer (RFC 8414 / OpenID metadata).
    discovers_metadata: ClassVar[bool] = False
    #: The token handed out is a secret typed into the connector (an API key), not one the
    #: provider issued: grants hold none of their own, and nothing is revoked upstream.
    static_token: ClassVar[bool] = False
    #: How inbound webhooks are signed; "" when the type receives none.
    trigger_scheme: ClassVar[str] = ""
    #: Provider event types an admin can pick from (the common ones from the provider's docs).
    known_events: ClassVar[tuple[str, ...]] = ()
    #: Where the provider's app settings are ("label" -> URL), for the admin's setup panel.
    setup_links: ClassVar[Mapping[str, str]] = {}

    #: Whether the webhook signature covers a timestamp (see ``webhook_replay_window``).
    webhook_signs_time: bool = True
    #: Whether app tokens are minted on demand (and cached on the app grant).
    mints_app_tokens: bool = False
    #: Whether the install / consent flows send a PKCE challenge.
    pkce: bool = True
    #: Whether ``revoke`` takes a refresh token. Where the revocation call authenticates with
    #: the token itself (Slack's auth.revoke, Linear's /oauth/revoke) or names an access token
    #: (GitHub's applications API), a refresh token is refused, so the access token is revoked.
    revokes_refresh_tokens: bool = True

    @property
    def url_config_keys(self) -> dict[str, frozenset[str]]:
        """The keys of a connector's ``config`` that hold URLs, each with what is sent there:
        the connector's secrets by name, and ``GRANT_TOKENS``. Each must be an http(s) URL
        (checked on save and where used); changing one clears the secrets it receives unless
        they are entered again in the same save, and grants obtained before the change are
        neither refreshed nor revoked through the new URL."""
        return {f.key: f.receives for f in self.config_fields if f.kind == "url"}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "wire_name" not in cls.__dict__:
            cls.wire_name = cls.key

    def secret_field(self, sealed: str) -> SecretField | None:
        return next((s for s in self.secrets if s.sealed == sealed), None)

    def config_field(self, key: str) -> ConfigField | None:
        return next((f for f in self.config_fields if f.key == key), None)

    def api_base_url(self, config: Mapping[str, Any]) -> str:
        """The provider's REST API base for this connector (for the proxy); "" if none."""
        return ""

    def proxy_base_url(self, config: Mapping[str, Any], installation: Mapping[str, Any]) -> str:
        """Where the proxy sends a connector's calls: ``api_base_url`` unless the base belongs
        to the installation (Salesforce's instance URL, from its ``metadata``); "" if none.
        The proxy checks it like any configured URL and sends it through the SSRF guard."""
        return self.api_base_url(config)

    def proxy_authorization(self, token: str, *, subject_type: str) -> str:
        """The ``Authorization`` header the provider's API takes with ``token``."""
        return f"Bearer {token}"

    def validate_config(self, config: object) -> dict[str, Any]:
        """``config`` cleaned (typed, URLs checked per ``connect.web_urls``), or ConfigInvalid.
        Keys the type does not declare are kept as they are."""
        return clean_config(self.config_fields, config, check_url=check_web_url)

    def from_data(self, data: object, *, partial: bool = False) -> ConnectorFields:
        """Vercel's ``data`` for this type as connector fields. ``partial`` (an update) leaves
        out what is absent instead of asking for it. Raises ConfigInvalid."""
        if not isinstance(data, Mapping):
            raise ConfigInvalid({"data": ["data must be a JSON object."]})
        errors: dict[str, list[str]] = {}
        known: set[str] = set()
        client_id: str | None = None
        if self.client_id_data_name:
            name = self.client_id_data_name
            known.add(name)
            if name in data:
                if isinstance(data[name], str) and data[name]:
                    client_id = data[name]
                else:
                    errors[name] = [f"{name} must be a non-empty string."]
            elif not partial:
                errors[name] = [f"{name} is required."]
        secrets: dict[str, str] = {}
        for secret in self.secrets:
            if not secret.data_name:
                continue
            known.add(secret.data_name)
            value = data.get(secret.data_name)
            if secret.data_name in data and isinstance(value, str) and value:
                secrets[secret.sealed] = value
            elif secret.data_name in data:
                errors[secret.data_name] = [f"{secret.data_name} must be a non-empty string."]
            elif secret.required and not partial:
                errors[secret.data_name] = [f"{secret.data_name} is required."]
        config: dict[str, Any] = {}
        nested: dict[str, set[str]] = {}
        for f in self.config_fields:
            if not f.wire_name:
                continue
            root, _, rest = f.wire_name.partition(".")
            known.add(root)
            if rest:
                nested.setdefault(root, set()).add(rest)
            found, value = get_path(data, f.wire_name)
            if not found:
                if f.required and not partial:
                    errors[f.wire_name] = [f"{f.wire_name} is required."]
                continue
            if is_empty(value):
                config[f.key] = value
                continue
            try:
                config[f.key] = f.clean(value, check_url=check_web_url)
            except ValueError as exc:
                errors[f.wire_name] = [str(exc).replace(f.key, f.wire_name, 1)]
        for name in sorted(set(data) - known):
            errors[name] = [f"{name} is not a field of {self.label} connectors."]
        for root, names in nested.items():
            inner = data.get(root)
            if inner is not None and not isinstance(inner, Mapping):
                errors[root] = [f"{root} must be a JSON object."]
            elif isinstance(inner, Mapping):
                for name in sorted(set(inner) - names):
                    errors[f"{root}.{name}"] = [f"{root}.{name} is not a known field."]
        if errors:
            raise ConfigInvalid(errors)
        return ConnectorFields(client_id=client_id, config=config, secrets=secrets)

    def to_data(self, client_id: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """Vercel's ``data`` for the management view: the client id and the configuration
        under their wire names. Secrets are never part of it."""
        data: dict[str, Any] = {}
        if self.client_id_data_name and client_id:
            data[self.client_id_data_name] = client_id
        for f in self.config_fields:
            value = config.get(f.key)
            if not f.wire_name or is_empty(value):
                continue
            if f.kind == "int" and isinstance(value, str) and value.strip().isdigit():
                value = int(value)
            set_path(data, f.wire_name, value)
        return data

    #: What webhooks are verified with: ``("secret", name)`` for a sealed connector secret,
    #: ``("config", key)`` for a public key in ``config``; None when the type receives none.
    #: Triggers cannot be enabled without it.
    webhook_key: ClassVar[tuple[str, str] | None] = None

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

    def mint_jwt_bearer_token(
        self,
        credentials: ProviderCredentials,
        request: TokenRequest,
        *,
        issuer: str,
        audience: str,
        now: datetime,
    ) -> TokenSet:
        """RFC 7523: a token for the asserted subject (types with ``jwt_bearer``)."""
        raise Unsupported(f"{self.key} connectors do not accept jwt-bearer subjects")

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

    def tenant_matches(self, hint: str, proven: str) -> bool:
        """Whether the tenant a flow was started for is the one the provider proved."""
        return hint == proven

    def installation_details(
        self, credentials: ProviderCredentials, tenant_id: str, *, now: datetime
    ) -> InstallResult:
        """What the provider says, as the app, about one of its installations."""
        raise Unsupported(f"{self.key} connectors cannot describe an installation")

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
