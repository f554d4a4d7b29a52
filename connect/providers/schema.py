"""What a connector type declares about itself: its secrets, its typed configuration, and the
names Vercel's management API gives them in a connector's ``data``.

Plain dataclasses with no Django import, so drivers can declare them and any layer (admin form,
API serializers, services) can read them from the registry instead of keeping its own copy.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

#: In a URL field's ``receives``: the URL receives grants' tokens (a refresh sends the refresh
#: token, a revocation the refresh or access token).
GRANT_TOKENS = "grant_tokens"

#: The sealed columns of a connector a secret can land in.
SEALED_NAMES = ("client_secret", "private_key", "api_key", "trigger_signing_secret")
SealedName = Literal["client_secret", "private_key", "api_key", "trigger_signing_secret"]

ConfigKind = Literal["str", "url", "bool", "int", "list", "dict", "choice"]

#: Checks one URL and returns it, or raises ``ValueError`` saying why (``connect.web_urls``).
URLCheck = Callable[[object], str]


class UnknownConnectorType(LookupError):
    """No driver has this type (or wire) name: every connector type has one."""


class ConfigInvalid(Exception):
    """A configuration (or a Vercel ``data`` object) a type does not accept. ``errors`` maps
    each offending key to messages written for the person who typed it."""

    def __init__(self, errors: Mapping[str, Sequence[str]]) -> None:
        self.errors: dict[str, list[str]] = {k: list(v) for k, v in errors.items()}
        super().__init__("; ".join(m for messages in self.errors.values() for m in messages))


@dataclass(frozen=True)
class SecretField:
    """A secret the type takes. ``sealed`` is the connector column it is stored in,
    ``data_name`` its key in Vercel's ``data`` ("" where the management API has none)."""

    sealed: SealedName
    label: str
    data_name: str
    required: bool = False
    multiline: bool = False


@dataclass(frozen=True)
class ConfigField:
    """One key of ``Connector.config``.

    ``key`` is the key as stored (camelCase). ``receives`` says, for a URL, what is sent there:
    sealed secret names and ``GRANT_TOKENS`` (changing such a URL clears those secrets and
    stops old grants from following it). ``data_name`` is the key in Vercel's ``data``: None
    means the same as ``key``, "" means not part of ``data`` at all (a value the app writes
    itself), and a dotted name is nested (``serverConfig.tokenEndpoint``).
    """

    key: str
    kind: ConfigKind
    label: str
    help: str = ""
    required: bool = False
    choices: tuple[str, ...] = ()
    receives: frozenset[str] = frozenset()
    data_name: str | None = None
    default: Any = None

    @property
    def wire_name(self) -> str:
        return self.key if self.data_name is None else self.data_name

    def clean(self, value: object, *, check_url: URLCheck) -> object:
        """The value as stored, or ``ValueError`` with a message naming the key."""
        kind = self.kind
        if kind == "url":
            try:
                return check_url(value)
            except ValueError as exc:
                raise ValueError(f"{self.key} {exc}.") from exc
        if kind == "str" and isinstance(value, str):
            return value
        if kind == "bool" and isinstance(value, bool):
            return value
        if kind == "int":
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().isdigit():
                return int(value.strip())
            raise ValueError(f"{self.key} must be a whole number.")
        if kind == "list" and isinstance(value, list | tuple):
            if all(isinstance(item, str) for item in value):
                return list(value)
            raise ValueError(f"{self.key} must be a list of strings.")
        if kind == "dict" and isinstance(value, dict):
            return value
        if kind == "choice":
            if value in self.choices:
                return value
            raise ValueError(f"{self.key} must be one of {', '.join(self.choices)}.")
        article = {"str": "a string", "bool": "true or false", "list": "a list of strings"}
        raise ValueError(f"{self.key} must be {article.get(kind, 'a JSON object')}.")


@dataclass(frozen=True)
class ConnectorFields:
    """What a Vercel ``data`` object sets on a connector. ``secrets`` maps sealed column names
    to their new values; a key absent from ``config`` or ``secrets`` is left as it is."""

    client_id: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict, repr=False)


def is_empty(value: object) -> bool:
    return value is None or value == ""


def clean_config(
    fields: Sequence[ConfigField], config: object, *, check_url: URLCheck
) -> dict[str, Any]:
    """``config`` checked against ``fields``: declared keys typed and URLs checked, required
    ones present; keys a type does not declare are kept as they are. Raises ConfigInvalid."""
    if not isinstance(config, Mapping):
        raise ConfigInvalid({"config": ["The configuration must be a JSON object."]})
    cleaned = dict(config)
    errors: dict[str, list[str]] = {}
    for f in fields:
        value = config.get(f.key)
        if is_empty(value):
            if f.required:
                errors.setdefault(f.key, []).append(f"{f.key} is required.")
            continue
        try:
            cleaned[f.key] = f.clean(value, check_url=check_url)
        except ValueError as exc:
            errors.setdefault(f.key, []).append(str(exc))
    if errors:
        raise ConfigInvalid(errors)
    return cleaned


def get_path(data: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    """(found, value) of a dotted key in nested mappings."""
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
