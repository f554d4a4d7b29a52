"""Re-encrypting every secret under the newest key, safely while the app serves."""

from collections.abc import Iterator
from dataclasses import dataclass, field

from django.apps import apps

from connect import crypto
from connect.models.base import SealedSecrets


@dataclass
class RotationReport:
    rewritten: int = 0
    already_current: int = 0
    changed_meanwhile: int = 0
    per_model: dict[str, int] = field(default_factory=dict)


def sealed_models() -> Iterator[type[SealedSecrets]]:
    """Every model with sealed fields."""
    for model in apps.get_models():
        if issubclass(model, SealedSecrets) and model.SEALED_FIELDS:
            yield model


def encryption_keys_remaining() -> int:
    """Values still sealed under an older key. Removing that key is safe only at zero: a save
    that began before a rotation may have written an old ciphertext back after it."""
    primary = crypto.primary_key_id()
    remaining = 0
    for model in sealed_models():
        columns = [f"{name}_sealed" for name in model.SEALED_FIELDS]
        for values in model._default_manager.values_list(*columns).iterator(chunk_size=2000):
            remaining += sum(1 for v in values if v and crypto.sealed_key_id(v) != primary)
    return remaining


def encryption_keys_rotate(*, batch_size: int = 500) -> RotationReport:
    """Rewrite every value sealed under an older key with the first configured key.

    Each value is written with a compare-and-swap on its old ciphertext, so a value that the
    app changed while this ran keeps the change (the app sealed it with the newest key anyway).
    Rows are read in primary-key batches without holding locks.
    """
    report = RotationReport()
    primary = crypto.primary_key_id()
    for model in sealed_models():
        columns = [f"{name}_sealed" for name in model.SEALED_FIELDS]
        last_pk = 0
        rewritten_here = 0
        while True:
            rows = list(
                model._default_manager.filter(pk__gt=last_pk)
                .order_by("pk")
                .values("pk", "public_id", *columns)[:batch_size]
            )
            if not rows:
                break
            last_pk = rows[-1]["pk"]
            for row in rows:
                for name, column in zip(model.SEALED_FIELDS, columns, strict=True):
                    old = row[column]
                    if not old:
                        continue
                    if crypto.sealed_key_id(old) == primary:
                        report.already_current += 1
                        continue
                    binding = model.binding_for(row["public_id"], name)
                    new = crypto.seal(crypto.open_sealed(old, binding=binding), binding=binding)
                    swapped = model._default_manager.filter(pk=row["pk"], **{column: old}).update(
                        **{column: new}
                    )
                    if swapped:
                        rewritten_here += 1
                    else:
                        report.changed_meanwhile += 1
        report.rewritten += rewritten_here
        report.per_model[model._meta.label] = rewritten_here
    return report
