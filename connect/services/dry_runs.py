"""The admin's "Test" button: a dry run of a connector's settings against its provider.

Nothing is stored and no token is kept. Every call goes through the drivers and so through
``connect.http`` (the SSRF guard): a typed-in endpoint on a private address is refused, not
probed.
"""

from dataclasses import dataclass

from django.utils import timezone

from connect import errors
from connect.models import Connector
from connect.providers.base import ProviderError, ProviderUnavailable, TokenRequest, Unsupported
from connect.providers.code_flow import CodeFlowProvider
from connect.services.authorizations import redirect_uri
from connect.services.connectors import connector_discover

#: Token endpoint errors that say the client itself was refused (RFC 6749 5.2; Slack's and
#: GitHub's own names).
CLIENT_REFUSED = {
    "invalid_client",
    "unauthorized_client",
    "invalid_client_id",
    "bad_client_secret",
    "incorrect_client_credentials",
}
#: A code nobody was issued: a server that checks the client first says which it refused.
PROBE_CODE = "connect-dry-run-not-a-code"


@dataclass(frozen=True)
class Check:
    name: str
    #: True passed, False failed, None not applicable to this connector.
    ok: bool | None
    detail: str


def _vendor_error(exc: ProviderError) -> str:
    return str(exc.vendor.get("error") or "")


def _discovery(connector: Connector) -> Check:
    issuer = str(connector.config.get("serverUrl") or connector.config.get("issuer") or "")
    if not connector.provider.discovers_metadata or not issuer:
        return Check("Discovery", None, "No issuer to discover from: endpoints are typed in.")
    try:
        connector_discover(issuer=issuer)
    except errors.ConnectError as exc:
        return Check("Discovery", False, f"{issuer}: {exc.message}")
    return Check("Discovery", True, f"{issuer} publishes its metadata.")


def _token_endpoint(connector: Connector) -> Check:
    provider = connector.provider
    if not isinstance(provider, CodeFlowProvider):
        return Check("Token endpoint", None, f"{provider.label} connectors have none.")
    credentials = connector.provider_credentials()
    endpoint = provider.endpoints(credentials).token
    if not endpoint:
        return Check("Token endpoint", False, "No token endpoint is configured.")
    body = {"grant_type": "authorization_code", "code": PROBE_CODE, "redirect_uri": redirect_uri()}
    try:
        provider.token_request(credentials, body, now=timezone.now())
    except ProviderUnavailable as exc:
        return Check("Token endpoint", False, f"Not reachable: {exc}.")
    except ProviderError as exc:
        if _vendor_error(exc) in CLIENT_REFUSED:
            return Check(
                "Token endpoint",
                False,
                f"{endpoint} answers, but refuses the client ({_vendor_error(exc)}): check the "
                "client id and secret.",
            )
        return Check(
            "Token endpoint",
            True,
            f"{endpoint} answers and does not refuse the client "
            f"({_vendor_error(exc) or exc}, as expected for a made-up code).",
        )
    return Check("Token endpoint", False, f"{endpoint} issued a token for a made-up code.")


def _client_credentials(connector: Connector) -> Check:
    provider = connector.provider
    flag = connector.config.get("clientCredentials")
    enabled = isinstance(flag, dict) and bool(flag.get("enabled"))
    if provider.key != "oauth" or not enabled:
        return Check(
            "Client credentials", None, "This connector does not use the client credentials grant."
        )
    try:
        provider.mint_app_token(
            connector.provider_credentials(), TokenRequest(), now=timezone.now()
        )
    except (ProviderError, Unsupported) as exc:
        return Check("Client credentials", False, f"Refused: {exc}.")
    return Check("Client credentials", True, "The token endpoint issued an app token.")


def _webhook_key(connector: Connector) -> Check:
    key = connector.provider.webhook_key
    if not connector.triggers_enabled:
        return Check("Webhook secret", None, "Triggers are off.")
    if key is None:
        return Check("Webhook secret", False, "This type receives no webhooks.")
    where, name = key
    present = connector.has_secret(name) if where == "secret" else bool(connector.config.get(name))
    if present:
        return Check("Webhook secret", True, "Set: inbound webhooks can be verified.")
    return Check("Webhook secret", False, "Triggers are on but nothing verifies them.")


def _secrets(connector: Connector) -> Check:
    missing = [
        s.label
        for s in connector.provider.secrets
        if s.required and not connector.has_secret(s.sealed)
    ]
    if missing:
        return Check("Secrets", False, f"Not set: {', '.join(missing)}.")
    return Check("Secrets", True, "Every secret the type needs is set.")


def connector_dry_run(*, connector: Connector) -> list[Check]:
    """Check a connector's settings at its provider without storing anything: its required
    secrets set, discovery reachable, the token endpoint answering (and not refusing the
    client), client credentials accepted where the connector uses them, a webhook secret set
    when triggers are on."""
    return [
        _secrets(connector),
        _discovery(connector),
        _token_endpoint(connector),
        _client_credentials(connector),
        _webhook_key(connector),
    ]
