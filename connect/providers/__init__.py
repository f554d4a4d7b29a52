"""The provider registry: one visible dict from connector type to driver."""

from connect.providers.api_key import ApiKeyProvider
from connect.providers.base import Provider
from connect.providers.discord import DiscordProvider
from connect.providers.github import GitHubProvider
from connect.providers.linear import LinearProvider
from connect.providers.microsoft import MicrosoftProvider
from connect.providers.oauth import OAuthProvider
from connect.providers.salesforce import SalesforceProvider
from connect.providers.schema import UnknownConnectorType
from connect.providers.slack import SlackProvider

__all__ = ["PROVIDERS", "Provider", "UnknownConnectorType", "get_provider", "provider_for_wire"]

#: Every connector type, by the key stored in ``Connector.type``. Adding a type is a driver
#: module plus one line here.
PROVIDERS: dict[str, Provider] = {
    p.key: p
    for p in (
        SlackProvider(),
        GitHubProvider(),
        LinearProvider(),
        MicrosoftProvider(),
        SalesforceProvider(),
        DiscordProvider(),
        OAuthProvider(),
        ApiKeyProvider(),
    )
}


def get_provider(connector_type: str) -> Provider:
    """The driver for a stored type. Raises UnknownConnectorType."""
    try:
        return PROVIDERS[connector_type]
    except KeyError:
        raise UnknownConnectorType(f"no connector type {connector_type!r}") from None


def provider_for_wire(name: str) -> Provider:
    """The driver for a type as the wire names it (``microsoft-entra``), or as stored
    (``microsoft``, still accepted on input). Raises UnknownConnectorType."""
    for provider in PROVIDERS.values():
        if name in (provider.wire_name, provider.key):
            return provider
    raise UnknownConnectorType(f"no connector type {name!r}")
