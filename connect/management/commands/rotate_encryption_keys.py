from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from connect import crypto
from connect.services import encryption


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret under the first key of CONNECT_ENCRYPTION_KEYS. "
        "Safe while the app runs. Put the new key first, keep the old ones, run this, then "
        "remove the old keys."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=settings.CONNECT_ROTATION_BATCH_SIZE)

    def handle(self, *args: Any, batch_size: int, **options: Any) -> None:
        report = encryption.encryption_keys_rotate(batch_size=batch_size)
        for label, count in report.per_model.items():
            if count:
                self.stdout.write(f"  {label}: {count}")
        self.stdout.write(
            f"Rewrote {report.rewritten} secret(s) under key {crypto.primary_key_id()}; "
            f"{report.already_current} already current; "
            f"{report.changed_meanwhile} changed meanwhile and kept."
        )
        remaining = encryption.encryption_keys_remaining()
        if remaining:
            self.stdout.write(
                f"{remaining} value(s) are still under an older key (written while this ran): "
                "run the command again before removing old keys."
            )
        else:
            self.stdout.write("Every value is under the newest key; older keys can be removed.")
