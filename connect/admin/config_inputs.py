"""The connector form's typed inputs, drawn from a type's declared configuration (the registry):
one input per key, so nobody types JSON for anything a type declares.

A list is one value per line; a small object (``{"enabled": true}``) is one ``key = value``
per line, where ``true``/``false`` and whole numbers keep their type and ``[a, b]`` is a list.
"""

import json
from collections.abc import Mapping
from typing import Any

from django import forms

from connect.providers import Provider
from connect.providers.schema import ConfigField, is_empty
from connect.web_urls import check_web_url

PREFIX = "cfg_"


def input_name(key: str) -> str:
    return f"{PREFIX}{key}"


def editable_fields(provider: Provider) -> list[ConfigField]:
    """The keys a person sets (not the values the app writes itself, such as a generated key)."""
    return [f for f in provider.config_fields if f.data_name != ""]


class LinesField(forms.CharField):
    """A list of strings, one per line."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 3, "cols": 60}))
        super().__init__(required=False, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return "\n".join(str(v) for v in value)
        return value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        if isinstance(value, list | tuple):
            return [str(v) for v in value]
        text = super().to_python(value) or ""
        return [line.strip() for line in text.splitlines() if line.strip()]

    def has_changed(self, initial: Any, data: Any) -> bool:
        return self.to_python(initial or []) != self.to_python(data)


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value)  # a nested object, which no declared key has today
    return str(value)


def _scalar_value(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    if text.isdigit():
        return int(text)
    if text.startswith("[") and text.endswith("]"):
        return [part.strip() for part in text[1:-1].split(",") if part.strip()]
    if text.startswith("{"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


class PairsField(forms.CharField):
    """A small object, one ``key = value`` per line."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "widget", forms.Textarea(attrs={"rows": 3, "cols": 60, "placeholder": "key = value"})
        )
        super().__init__(required=False, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            return "\n".join(f"{k} = {_scalar_text(v)}" for k, v in value.items())
        return value

    def to_python(self, value: Any) -> dict[str, Any]:  # type: ignore[override]
        if isinstance(value, Mapping):
            return dict(value)
        text = super().to_python(value) or ""
        pairs: dict[str, Any] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            key, sep, raw = line.partition("=")
            if not sep or not key.strip():
                raise forms.ValidationError(f"Line {number}: write key = value.")
            pairs[key.strip()] = _scalar_value(raw.strip())
        return pairs

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return self.to_python(initial or {}) != self.to_python(data)
        except forms.ValidationError:
            return True


def config_formfield(f: ConfigField) -> forms.Field:
    """The input for one declared key. URLs are plain text inputs of type url, checked by the
    registry's own rule (``connect.web_urls``) so the message is the one the API gives."""
    help_text = f.help
    placeholder = "" if f.default is None or isinstance(f.default, bool) else str(f.default)
    field: forms.Field
    if f.kind == "url":
        attrs = {"placeholder": placeholder or "https://…", "size": 60}
        field = forms.CharField(widget=forms.URLInput(attrs=attrs))
    elif f.kind == "bool":
        field = forms.BooleanField(initial=f.default is True)
    elif f.kind == "int":
        field = forms.IntegerField(
            min_value=0, widget=forms.NumberInput(attrs={"placeholder": placeholder})
        )
    elif f.kind == "list":
        field = LinesField()
        help_text = f"One per line. {help_text}".strip()
    elif f.kind == "dict":
        field = PairsField()
        help_text = f"One key = value per line. {help_text}".strip()
    elif f.kind == "choice":
        blank = f"(default: {f.default})" if f.default else "—"
        field = forms.ChoiceField(choices=[("", blank), *((c, c) for c in f.choices)])
    else:
        field = forms.CharField(widget=forms.TextInput(attrs={"placeholder": placeholder}))
    field.required = f.required and f.kind != "bool"
    field.label = f.label
    field.help_text = help_text
    return field


def config_formfields(provider: Provider) -> dict[str, forms.Field]:
    """Every typed input of a type, by input name."""
    return {input_name(f.key): config_formfield(f) for f in editable_fields(provider)}


def initial_inputs(provider: Provider, config: object) -> dict[str, Any]:
    """The inputs' values for a stored (or preset) configuration."""
    if not isinstance(config, Mapping):
        return {}
    return {
        input_name(f.key): config[f.key]
        for f in editable_fields(provider)
        if f.key in config and not is_empty(config[f.key])
    }


def config_from_inputs(
    provider: Provider, cleaned: Mapping[str, Any], previous: object
) -> tuple[dict[str, Any], dict[str, str]]:
    """The configuration the inputs describe, and the message per input the registry refused.

    Keys no input shows (ones the type does not declare, and the values the app writes itself)
    are kept from ``previous``. An empty input removes its key; a checkbox left at the type's
    default is not written.
    """
    shown = {f.key for f in editable_fields(provider)}
    config = {
        k: v
        for k, v in (previous if isinstance(previous, Mapping) else {}).items()
        if k not in shown
    }
    errors: dict[str, str] = {}
    for f in editable_fields(provider):
        name = input_name(f.key)
        if name not in cleaned:
            continue
        value = cleaned[name]
        if f.kind == "bool":
            if bool(value) != (f.default is True) or (
                isinstance(previous, Mapping) and f.key in previous
            ):
                config[f.key] = bool(value)
            continue
        if is_empty(value) or value in ([], {}):
            continue
        try:
            config[f.key] = f.clean(value, check_url=check_web_url)
        except ValueError as exc:
            errors[name] = str(exc)
    return config, errors
