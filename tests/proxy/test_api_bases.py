"""The proxy's targets come from the registry: each type's API base, overridable where the
fakes (and national clouds, GitHub Enterprise) need it, and its way of sending the token."""

import pytest

from connect.providers import get_provider
from connect.providers.base import GRANT_TOKENS
from connect.providers.schema import ConfigInvalid


@pytest.mark.parametrize(
    ("type_", "config", "installation", "base"),
    [
        ("slack", {}, {}, "https://slack.com/api"),
        ("github", {}, {}, "https://api.github.com"),
        ("github", {"apiBaseUrl": "https://ghe.example/api/v3"}, {}, "https://ghe.example/api/v3"),
        ("linear", {}, {}, "https://api.linear.app"),
        ("microsoft", {}, {}, "https://graph.microsoft.com/v1.0"),
        (
            "microsoft",
            {"graphBaseUrl": "https://graph.microsoft.us/v1.0"},
            {},
            "https://graph.microsoft.us/v1.0",
        ),
        (
            "salesforce",
            {},
            {"instanceUrl": "https://acme.my.salesforce.com/"},
            "https://acme.my.salesforce.com",
        ),
        ("salesforce", {}, {}, ""),
        ("discord", {}, {}, "https://discord.com/api/v10"),
        ("oauth", {"apiBaseUrl": "https://api.example.com/v2/"}, {}, "https://api.example.com/v2"),
        ("oauth", {}, {}, ""),
        ("api-key", {}, {}, ""),
    ],
)
def test_each_type_names_its_api_base(
    type_: str, config: dict[str, str], installation: dict[str, str], base: str
) -> None:
    assert get_provider(type_).proxy_base_url(config, installation) == base


def test_the_custom_api_bases_receive_what_the_proxy_sends_there() -> None:
    """Changing one is changing where tokens go: old grants do not follow it, and the secrets
    that mint (or are) the tokens sent there are cleared unless entered again."""
    assert get_provider("oauth").url_config_keys["apiBaseUrl"] == frozenset(
        {"client_secret", "private_key", GRANT_TOKENS}
    )
    assert get_provider("microsoft").url_config_keys["graphBaseUrl"] == frozenset(
        {"client_secret", GRANT_TOKENS}
    )
    assert "api_key" in get_provider("discord").url_config_keys["baseUrl"]
    with pytest.raises(ConfigInvalid):
        get_provider("oauth").validate_config({"apiBaseUrl": "javascript:alert(1)"})


def test_discord_sends_its_bot_token_as_bot() -> None:
    discord = get_provider("discord")
    assert discord.proxy_authorization("t", subject_type="app") == "Bot t"
    assert discord.proxy_authorization("t", subject_type="user") == "Bearer t"
    assert get_provider("github").proxy_authorization("t", subject_type="app") == "Bearer t"
