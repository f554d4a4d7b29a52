"""The connector-type registry: every fact about a type is declared on its driver."""

from typing import Any

import pytest

from connect.models import Connector
from connect.providers import PROVIDERS, UnknownConnectorType, get_provider, provider_for_wire
from connect.providers.microsoft import MicrosoftProvider
from connect.providers.schema import GRANT_TOKENS, SEALED_NAMES, ConfigInvalid

KINDS = sorted(PROVIDERS)


def test_the_registry_is_keyed_by_the_stored_type() -> None:
    assert set(PROVIDERS) == {
        "slack",
        "github",
        "linear",
        "microsoft",
        "salesforce",
        "discord",
        "oauth",
        "api-key",
    }
    for key, provider in PROVIDERS.items():
        assert provider.key == key


def test_an_unknown_type_raises_instead_of_returning_none() -> None:
    with pytest.raises(UnknownConnectorType):
        get_provider("gitlab")
    with pytest.raises(UnknownConnectorType):
        get_provider("microsoft-entra")  # a wire name is not a stored type
    with pytest.raises(UnknownConnectorType):
        provider_for_wire("gitlab")


def test_microsoft_is_microsoft_entra_on_the_wire_and_both_names_are_accepted() -> None:
    assert get_provider("microsoft").wire_name == "microsoft-entra"
    assert isinstance(provider_for_wire("microsoft-entra"), MicrosoftProvider)
    assert isinstance(provider_for_wire("microsoft"), MicrosoftProvider)
    # Every other type has one name, and every wire name is in Vercel's closed enum.
    vercel = {"api-key", "discord", "github", "linear", "microsoft-entra", "oauth"}
    vercel |= {"salesforce", "slack"}
    assert {p.wire_name for p in PROVIDERS.values()} == vercel
    for key, provider in PROVIDERS.items():
        assert provider_for_wire(provider.wire_name) is provider
        if key != "microsoft":
            assert provider.wire_name == key


@pytest.mark.parametrize("kind", KINDS)
def test_each_type_declares_itself_completely(kind: str) -> None:
    provider = PROVIDERS[kind]
    assert provider.label
    assert provider.subject_types
    assert provider.subject_types <= {"app", "user"}
    assert [s.sealed for s in provider.secrets] == list(
        dict.fromkeys(s.sealed for s in provider.secrets)
    )
    assert {s.sealed for s in provider.secrets} <= set(SEALED_NAMES) == set(Connector.SEALED_FIELDS)
    keys = [f.key for f in provider.config_fields]
    assert len(keys) == len(set(keys)), "a config key is declared twice"
    wire = [f.wire_name for f in provider.config_fields if f.wire_name]
    wire += [s.data_name for s in provider.secrets if s.data_name]
    wire += [provider.client_id_data_name] if provider.client_id_data_name else []
    assert len(wire) == len(set(wire)), "two fields share a Vercel data name"
    for f in provider.config_fields:
        assert f.receives <= {*SEALED_NAMES, GRANT_TOKENS}
        assert not f.receives or f.kind == "url", f"{f.key} receives secrets but is no URL"
        assert f.kind != "choice" or f.choices
    # A type that receives webhooks says how they are signed and verifies with a key it has.
    assert bool(provider.trigger_scheme) == (provider.webhook_key is not None)
    if provider.webhook_key and provider.webhook_key[0] == "secret":
        assert provider.secret_field(provider.webhook_key[1]) is not None
    if provider.webhook_key and provider.webhook_key[0] == "config":
        assert provider.config_field(provider.webhook_key[1]) is not None
    for url in provider.setup_links.values():
        assert url.startswith("https://")


def test_the_capabilities_of_each_type() -> None:
    single = {k for k, p in PROVIDERS.items() if p.single_account}
    assert single == {"salesforce", "discord", "oauth", "api-key"}
    assert {k for k, p in PROVIDERS.items() if not p.browser_flow} == {"api-key"}
    assert {k for k, p in PROVIDERS.items() if p.jwt_bearer} == {"oauth"}
    assert PROVIDERS["api-key"].subject_types == {"app"}
    assert PROVIDERS["slack"].subject_types == {"app", "user"}
    assert "push" in PROVIDERS["github"].known_events
    assert "app_mention" in PROVIDERS["slack"].known_events


def test_the_api_base_url_follows_enterprise_overrides() -> None:
    github = get_provider("github")
    assert github.api_base_url({}) == "https://api.github.com"
    assert github.api_base_url({"apiBaseUrl": "https://ghe.example/api/v3/"}) == (
        "https://ghe.example/api/v3"
    )
    assert get_provider("linear").api_base_url({}) == "https://api.linear.app"
    assert get_provider("slack").api_base_url({}) == "https://slack.com/api"
    assert get_provider("microsoft").api_base_url({}) == "https://graph.microsoft.com/v1.0"
    assert get_provider("discord").api_base_url({}) == "https://discord.com/api/v10"
    assert get_provider("api-key").api_base_url({}) == ""


# validate_config ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "key"), [(k, key) for k in KINDS for key in PROVIDERS[k].url_config_keys]
)
@pytest.mark.parametrize("url", ["javascript:alert(1)//", "data:,x", "//evil.example", "ftp://x"])
def test_every_url_field_refuses_what_is_not_a_web_url(kind: str, key: str, url: str) -> None:
    with pytest.raises(ConfigInvalid) as refused:
        get_provider(kind).validate_config({key: url})
    assert list(refused.value.errors) == [key]
    assert refused.value.errors[key][0].startswith(f"{key} must")


def test_validate_config_types_the_declared_keys_and_keeps_the_others() -> None:
    oauth = get_provider("oauth")
    cleaned = oauth.validate_config(
        {
            "tokenEndpoint": "https://idp.example/token",
            "tokenEndpointAuthMethod": "private_key_jwt",
            "defaultTokenExpiresIn": "600",
            "somethingElse": [1, 2],
            "revocationEndpoint": "",
        }
    )
    assert cleaned == {
        "tokenEndpoint": "https://idp.example/token",
        "tokenEndpointAuthMethod": "private_key_jwt",
        "defaultTokenExpiresIn": 600,
        "somethingElse": [1, 2],
        "revocationEndpoint": "",
    }
    with pytest.raises(ConfigInvalid) as refused:
        oauth.validate_config(
            {
                "tokenEndpointAuthMethod": "magic",
                "pkce": "yes",
                "jwtBearer": [],
                "defaultTokenExpiresIn": "ten",
            }
        )
    assert set(refused.value.errors) == {
        "tokenEndpointAuthMethod",
        "pkce",
        "jwtBearer",
        "defaultTokenExpiresIn",
    }
    with pytest.raises(ConfigInvalid) as refused:
        oauth.validate_config(["not", "an", "object"])
    assert refused.value.errors == {"config": ["The configuration must be a JSON object."]}


def test_validate_config_refuses_a_list_of_non_strings() -> None:
    with pytest.raises(ConfigInvalid) as refused:
        get_provider("slack").validate_config({"userScopes": ["chat:write", 3]})
    assert refused.value.errors == {"userScopes": ["userScopes must be a list of strings."]}


# Vercel's data ---------------------------------------------------------------------------------

ROUND_TRIPS: dict[str, dict[str, Any]] = {
    "github": {
        "appId": 123456,
        "appSlug": "acme-bot",
        "appName": "Acme Bot",
        "clientId": "Iv1.abc",
        "owner": {"type": "Organization", "id": 9, "slug": "acme"},
        "extras": {"note": "x"},
    },
    "slack": {
        "appId": "A012",
        "appName": "Acme",
        "clientId": "123.456",
        "botScopes": ["chat:write"],
        "userScopes": ["search:read"],
        "slackTeam": {"id": "T1", "name": "Acme"},
    },
    "linear": {
        "clientId": "lin-client",
        "appScopes": ["read", "write"],
        "userScopes": ["read"],
        "ownerOrganization": "org-1",
    },
    "salesforce": {"consumerKey": "3MVG9", "loginHost": "test.salesforce.com"},
    "api-key": {"subjectType": "app", "serviceUrls": ["https://api.example"]},
    "oauth": {
        "serverUrl": "https://idp.example",
        "serverConfig": {
            "issuer": "https://idp.example",
            "authorizationEndpoint": "https://idp.example/authorize",
            "tokenEndpoint": "https://idp.example/token",
            "jwksUri": "https://idp.example/jwks",
        },
        "clientId": "client-1",
        "tokenEndpointAuthMethod": "client_secret_post",
        "pkceRequired": True,
        "refreshTokens": {"enabled": True},
        "jwtBearer": {"enabled": True, "iss": "me"},
        "defaultTokenExpiresIn": 900,
    },
    "microsoft-entra": {"clientId": "guid", "loginBaseUrl": "https://login.example"},
    "discord": {"clientId": "1234", "publicKey": "ab" * 32},
}

SECRETS: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "github": (
        {
            "clientSecret": "SECRET-gh-secret",
            "privateKeyPem": "SECRET------BEGIN KEY-----",
            "webhookSecret": "SECRET-w",
        },
        {
            "client_secret": "SECRET-gh-secret",
            "private_key": "SECRET------BEGIN KEY-----",
            "trigger_signing_secret": "SECRET-w",
        },
    ),
    "slack": (
        {"clientSecret": "SECRET-s", "signingSecret": "SECRET-sig"},
        {"client_secret": "SECRET-s", "trigger_signing_secret": "SECRET-sig"},
    ),
    "linear": (
        {"clientSecret": "SECRET-l", "webhookSecret": "SECRET-wh"},
        {"client_secret": "SECRET-l", "trigger_signing_secret": "SECRET-wh"},
    ),
    "salesforce": ({"consumerSecret": "SECRET-cs"}, {"client_secret": "SECRET-cs"}),
    "api-key": ({"values": [{"value": "SECRET-sk_live_1"}]}, {"api_key": "SECRET-sk_live_1"}),
    "oauth": (
        {"clientSecret": "SECRET-o", "webhookSecret": "SECRET-whsec_x"},
        {"client_secret": "SECRET-o", "trigger_signing_secret": "SECRET-whsec_x"},
    ),
    "microsoft-entra": (
        {"clientSecret": "SECRET-m", "clientState": "SECRET-cs"},
        {"client_secret": "SECRET-m", "trigger_signing_secret": "SECRET-cs"},
    ),
    "discord": (
        {"clientSecret": "SECRET-d", "botToken": "SECRET-Bot x"},
        {"client_secret": "SECRET-d", "api_key": "SECRET-Bot x"},
    ),
}


@pytest.mark.parametrize("wire", sorted(ROUND_TRIPS))
def test_data_round_trips_and_secrets_land_in_their_sealed_columns(wire: str) -> None:
    provider = provider_for_wire(wire)
    public = ROUND_TRIPS[wire]
    secret_data, sealed = SECRETS[wire]

    fields = provider.from_data({**public, **secret_data})

    assert fields.secrets == sealed
    data = provider.to_data(fields.client_id or "", fields.config)
    assert data == public
    assert "SECRET-" not in repr(data)
    assert set(sealed) == {s.sealed for s in provider.secrets if s.data_name}


def test_github_app_id_is_an_integer_on_the_wire_whatever_is_stored() -> None:
    github = get_provider("github")
    assert github.to_data("Iv1.abc", {"appId": "123456", "appSlug": "a"}) == {
        "clientId": "Iv1.abc",
        "appId": 123456,
        "appSlug": "a",
    }
    with pytest.raises(ConfigInvalid) as refused:
        github.from_data({"clientId": "x", "appId": "12a"})
    assert refused.value.errors == {"appId": ["appId must be a whole number."]}


def test_salesforce_keeps_the_login_host_as_a_url() -> None:
    fields = get_provider("salesforce").from_data(
        {"consumerKey": "k", "consumerSecret": "s", "loginHost": "acme.my.salesforce.com"}
    )
    assert fields.client_id == "k"
    assert fields.config == {"loginBaseUrl": "https://acme.my.salesforce.com"}
    with pytest.raises(ConfigInvalid):
        get_provider("salesforce").from_data({"loginHost": "evil.example/path"}, partial=True)


def test_oauth_server_config_is_flat_in_config() -> None:
    fields = provider_for_wire("oauth").from_data(ROUND_TRIPS["oauth"])
    assert fields.config["tokenEndpoint"] == "https://idp.example/token"
    assert fields.config["pkce"] is True
    assert "serverConfig" not in fields.config


def test_data_is_validated_like_the_admin_configuration() -> None:
    oauth = get_provider("oauth")
    with pytest.raises(ConfigInvalid) as refused:
        oauth.from_data(
            {
                "clientId": "c",
                "serverConfig": {"tokenEndpoint": "javascript:alert(1)", "bogus": 1},
                "surprise": True,
            }
        )
    assert set(refused.value.errors) == {
        "serverConfig.tokenEndpoint",
        "serverConfig.bogus",
        "surprise",
    }
    assert refused.value.errors["surprise"] == [
        "surprise is not a field of Custom OAuth 2.0 / OIDC connectors."
    ]


def test_required_data_is_asked_for_on_create_but_not_on_update() -> None:
    slack = get_provider("slack")
    with pytest.raises(ConfigInvalid) as refused:
        slack.from_data({})
    assert refused.value.errors == {
        "clientId": ["clientId is required."],
        "clientSecret": ["clientSecret is required."],
    }
    update = slack.from_data({"signingSecret": "new"}, partial=True)
    assert update.client_id is None
    assert update.config == {}
    assert update.secrets == {"trigger_signing_secret": "new"}


def test_an_api_key_is_one_value_of_the_app() -> None:
    api_key = get_provider("api-key")
    for bad in (
        {"values": []},
        {"values": [{"value": "a"}, {"value": "b"}]},
        {"values": [{"value": ""}]},
        {"values": [{"value": "a", "expiresAt": 1}]},
        {"values": [{"value": "a"}], "subjectType": "user"},
        {"values": [{"value": "a"}], "clientId": "x"},
    ):
        with pytest.raises(ConfigInvalid):
            api_key.from_data(bad)
    with pytest.raises(ConfigInvalid) as refused:
        api_key.from_data({})
    assert list(refused.value.errors) == ["values"]
    assert api_key.from_data({}, partial=True).secrets == {}
