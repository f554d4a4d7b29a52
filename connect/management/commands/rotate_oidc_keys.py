from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from connect import oidc


class Command(BaseCommand):
    help = (
        "Start signing with a new OIDC key. Older keys stay in the JWKS for --overlap seconds "
        "(default: a day), so tokens they signed keep verifying until they expire."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--overlap", type=int, default=86400)

    def handle(self, *args: Any, overlap: int, **options: Any) -> None:
        key = oidc.signing_keys_rotate(overlap=timedelta(seconds=overlap))
        self.stdout.write(f"Now signing with key {key.kid}; older keys retire in {overlap} s.")
