from typing import Any, ClassVar

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models

from connect.models.base import SealedSecrets


def https_by_default(db_field: models.Field, **kwargs: Any) -> forms.Field | None:
    """A model form's ``Meta.formfield_callback``: a URL typed without a scheme is taken as
    https:// (Django 6's default, chosen now; the admin's own forms get it from
    ``formfield_overrides``)."""
    if isinstance(db_field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    return db_field.formfield(**kwargs)


class WriteOnlyTextarea(forms.Textarea):
    """For multi-line secrets (PEM keys): a password input would drop their newlines."""

    def format_value(self, value: Any) -> None:
        return None


class WriteOnlySecretField(forms.CharField):
    """An input for a secret that never renders a value; blank means "keep the stored one"."""

    def __init__(self, *, multiline: bool = False, **kwargs: Any) -> None:
        widget = (
            WriteOnlyTextarea(attrs={"rows": 4, "autocomplete": "off", "spellcheck": "false"})
            if multiline
            else forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
        )
        self.multiline = multiline
        super().__init__(required=False, strip=True, widget=widget, **kwargs)

    def to_python(self, value: Any) -> str | None:
        text = super().to_python(value)
        # Browsers submit a textarea's line breaks as CRLF; a PEM key is stored as typed.
        return text.replace("\r\n", "\n") if text and self.multiline else text


class WriteOnlySecretsForm(forms.ModelForm):
    """Write-only inputs for secrets: they never render a value, only whether one is set.

    Subclasses declare a ``WriteOnlySecretField`` per secret (declared, so the admin's fieldsets
    may name them) and map input name to secret name in ``sealed_inputs``. A blank input keeps
    the stored value.
    """

    sealed_inputs: ClassVar[dict[str, str]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        instance = self.instance
        assert isinstance(instance, SealedSecrets)
        for input_name, secret in self.sealed_inputs.items():
            field = self.fields.get(input_name)
            if field is None:
                continue
            is_set = instance.pk is not None and instance.has_secret(secret)
            field.widget.attrs["placeholder"] = (
                "•••••••• (set — leave blank to keep)" if is_set else "not set"
            )
            field.help_text = (
                "A value is set; type a new one to replace it." if is_set else "Not set."
            )

    def changed_secrets(self) -> dict[str, str]:
        return {
            secret: self.cleaned_data[input_name]
            for input_name, secret in self.sealed_inputs.items()
            if self.cleaned_data.get(input_name)
        }

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        # Sealed before the model validates (which follows this), so its rules see what this
        # save will store: a trigger secret typed in the same save as "enable triggers".
        instance = self.instance
        assert isinstance(instance, SealedSecrets)
        for secret, value in self.changed_secrets().items():
            instance.seal(secret, value)
        return cleaned

    def add_error(self, field: str | None, error: Any) -> None:
        # Model validation may name a field this form does not show (a type's fieldsets leave
        # some out): say it above the form instead of failing on an unknown field.
        if field is None and isinstance(error, ValidationError) and hasattr(error, "error_dict"):
            shown: dict[str, list[ValidationError]] = {}
            for name, messages in error.error_dict.items():
                if name == NON_FIELD_ERRORS or name in self.fields:
                    shown.setdefault(name, []).extend(messages)
                    continue
                label = name.replace("_", " ").capitalize()
                shown.setdefault(NON_FIELD_ERRORS, []).extend(
                    ValidationError(f"{label}: {text}")
                    for text in ValidationError(messages).messages
                )
            error = ValidationError(shown)
        super().add_error(field, error)
