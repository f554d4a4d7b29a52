from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from connect import oidc
from connect.models import Project


class Command(BaseCommand):
    help = "Print an OIDC token of this app's issuer for a project + environment (aud=PUBLIC_URL)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--team", required=True)
        parser.add_argument("--project", required=True)
        parser.add_argument("--environment", required=True)
        parser.add_argument("--ttl", type=int, default=3600, help="seconds (default 3600)")

    def handle(self, *args: Any, **options: Any) -> None:
        project = (
            Project.objects.filter(team__slug=options["team"], slug=options["project"])
            .select_related("team")
            .first()
        )
        if project is None:
            raise CommandError(f"No project {options['project']!r} in team {options['team']!r}.")
        if not project.environments.filter(slug=options["environment"]).exists():
            raise CommandError(f"No environment {options['environment']!r} in that project.")
        if not 0 < options["ttl"] <= 86400:
            raise CommandError("--ttl must be between 1 and 86400 seconds.")
        self.stdout.write(
            oidc.oidc_token_mint(
                project=project,
                environment=options["environment"],
                ttl=timedelta(seconds=options["ttl"]),
            )
        )
