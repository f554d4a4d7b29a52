"""The provider registry: one visible dict from connector type to driver."""

from connect.providers.api_key import ApiKeyProvider
from connect.providers.base import Provider
from connect.providers.oauth import OAuthProvider

PROVIDERS: dict[str, Provider] = {p.key: p for p in (ApiKeyProvider(), OAuthProvider())}


def get_provider(connector_type: str) -> Provider | None:
    """The driver for a type, or None while a type has no driver of its own."""
    return PROVIDERS.get(connector_type)
