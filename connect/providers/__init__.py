"""The provider registry: one visible dict from connector type to driver."""

from connect.providers.api_key import ApiKeyProvider
from connect.providers.base import Provider
from connect.providers.discord import DiscordProvider
from connect.providers.github import GitHubProvider
from connect.providers.linear import LinearProvider
from connect.providers.microsoft import MicrosoftProvider
from connect.providers.oauth import OAuthProvider
from connect.providers.salesforce import SalesforceProvider
from connect.providers.slack import SlackProvider

PROVIDERS: dict[str, Provider] = {
    p.key: p
    for p in (
        ApiKeyProvider(),
        OAuthProvider(),
        SlackProvider(),
        GitHubProvider(),
        LinearProvider(),
        MicrosoftProvider(),
        DiscordProvider(),
        SalesforceProvider(),
    )
}


def get_provider(connector_type: str) -> Provider | None:
    """The driver for a type, or None while a type has no driver of its own."""
    return PROVIDERS.get(connector_type)
