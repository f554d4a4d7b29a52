from typing import Any, ClassVar

from django import forms

from connect.models.base import SealedSecrets


class WriteOnlySecretsForm(forms.ModelForm):
    """Adds a write-only input per secret; it never renders a value, only whether one is set.

    A blank input keeps the stored value. ``sealed_inputs`` maps input name to secret name.
    """

    sealed_inputs: ClassVar[dict[str, str]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        instance = self.instance
        assert isinstance(instance, SealedSecrets)
        for input_name, secret in self.sealed_inputs.items():
            is_set = instance.pk is not None and instance.has_secret(secret)
            self.fields[input_name] = forms.CharField(
                required=False,
                strip=True,
                label=secret.replace("_", " ").capitalize(),
                widget=forms.PasswordInput(
                    render_value=False,
                    attrs={
                        "autocomplete": "new-password",
                        "placeholder": "•••••••• (set — leave blank to keep)"
                        if is_set
                        else "not set",
                    },
                ),
                help_text="A value is set; type a new one to replace it." if is_set else "Not set.",
            )

    def changed_secrets(self) -> dict[str, str]:
        return {
            secret: self.cleaned_data[input_name]
            for input_name, secret in self.sealed_inputs.items()
            if self.cleaned_data.get(input_name)
        }

    def save(self, commit: bool = True) -> Any:
        instance = self.instance
        assert isinstance(instance, SealedSecrets)
        for secret, value in self.changed_secrets().items():
            instance.seal(secret, value)
        return super().save(commit=commit)
