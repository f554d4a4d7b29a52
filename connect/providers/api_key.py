from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from connect.kinds import SubjectType
from connect.providers.base import Provider, ProviderCredentials, TokenRequest, TokenSet
from connect.providers.schema import ConfigField, ConfigInvalid, ConnectorFields, SecretField

DEFAULT_TOKEN_TTL_SECONDS = 3600


class ApiKeyProvider(Provider):
    """A static key typed in by an admin; handed out with a nominal expiry so SDKs re-ask."""

    key = "api-key"
    label = "API key"
    client_id_data_name = ""
    # Vercel's data carries the key as ``values[{value}]``: see from_data / to_data.
    secrets = (SecretField("api_key", "API key", data_name="values", required=True),)
    config_fields = (
        ConfigField(
            "tokenTtlSeconds",
            "int",
            "Token lifetime (seconds)",
            help="The nominal expiry handed out with the key (default 3600).",
            default=DEFAULT_TOKEN_TTL_SECONDS,
        ),
        ConfigField(
            "serviceUrls",
            "list",
            "Service URLs",
            help="The URLs of the service the key is for (informational).",
        ),
        ConfigField("instructions", "str", "Instructions", help="How to obtain a key."),
    )
    single_account = True
    browser_flow = False
    subject_types = frozenset({SubjectType.APP})
    static_token = True
    mints_app_tokens = True

    def from_data(self, data: object, *, partial: bool = False) -> ConnectorFields:
        """Vercel's ``values[{value, scope?, expiresAt?}]``: one key per connector here, and
        ``subjectType`` may only be ``app`` (a key is the app's, not a person's)."""
        if not isinstance(data, Mapping):
            raise ConfigInvalid({"data": ["data must be a JSON object."]})
        rest = {k: v for k, v in data.items() if k not in ("values", "subjectType")}
        fields = super().from_data(rest, partial=True)
        errors: dict[str, list[str]] = {}
        if data.get("subjectType", SubjectType.APP) != SubjectType.APP:
            errors["subjectType"] = ["subjectType must be app: an API key belongs to the app."]
        secrets: dict[str, str] = {}
        values = data.get("values")
        if values is None:
            if not partial:
                errors["values"] = ['values is required: [{"value": "<the key>"}].']
        elif (
            not isinstance(values, list)
            or len(values) != 1
            or not isinstance(values[0], Mapping)
            or not isinstance(values[0].get("value"), str)
            or not values[0]["value"]
        ):
            errors["values"] = ['values must hold exactly one {"value": "<the key>"}.']
        elif set(values[0]) - {"value"}:
            names = ", ".join(sorted(set(values[0]) - {"value"}))
            errors["values"] = [f"values[0].{names}: per-value scopes and expiries are not kept."]
        else:
            secrets["api_key"] = values[0]["value"]
        if errors:
            raise ConfigInvalid(errors)
        return ConnectorFields(client_id=None, config=fields.config, secrets=secrets)

    def to_data(self, client_id: str, config: Mapping[str, Any]) -> dict[str, Any]:
        return {"subjectType": SubjectType.APP.value, **super().to_data(client_id, config)}

    def mint_app_token(
        self, credentials: ProviderCredentials, request: TokenRequest, *, now: datetime
    ) -> TokenSet:
        ttl = int(credentials.config.get("tokenTtlSeconds") or DEFAULT_TOKEN_TTL_SECONDS)
        return TokenSet(
            access_token=credentials.api_key,
            expires_at=now + timedelta(seconds=ttl),
            scopes=tuple(request.scopes),
        )
