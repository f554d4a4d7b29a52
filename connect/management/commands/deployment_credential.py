import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from connect.models import DeploymentCredential, Environment, Project
from connect.services import credentials

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Create, list or revoke deployment credentials (static bearers for one environment)."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="print a new credential, once")
        listing = actions.add_parser("list", help="list credentials (never their secrets)")
        for sub in (create, listing):
            sub.add_argument("--team", required=True, help="team slug")
            sub.add_argument("--project", required=True, help="project slug")
        create.add_argument("--environment", required=True, help="environment slug")
        create.add_argument("--name", default="")
        revoke = actions.add_parser("revoke", help="revoke a credential by its prefix")
        revoke.add_argument("prefix")

    def _project(self, team: str, project: str) -> Project:
        found = Project.objects.filter(team__slug=team, slug=project).select_related("team").first()
        if found is None:
            raise CommandError(f"No project {project!r} in team {team!r}.")
        return found

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "create":
            project = self._project(options["team"], options["project"])
            environment = Environment.objects.filter(
                project=project, slug=options["environment"]
            ).first()
            if environment is None:
                raise CommandError(
                    f"No environment {options['environment']!r} in project {project.slug!r}."
                )
            credential = DeploymentCredential(
                project=project, environment=environment, name=options["name"]
            )
            token = credentials.deployment_credential_create(
                credential=credential, actor="cli:deployment_credential"
            )
            # Logs go to stderr; the secret is alone on the last line of stdout, for scripts.
            logger.info(
                "created deployment credential %s for %s/%s",
                credential.public_id,
                project.slug,
                environment.slug,
            )
            self.stdout.write(token)
        elif action == "list":
            project = self._project(options["team"], options["project"])
            for credential in project.credentials.select_related("environment"):
                state = "revoked" if credential.revoked_at else "active"
                self.stdout.write(
                    f"{credential.prefix}\t{credential.environment.slug}\t{state}\t"
                    f"{credential.name}\tlast used {credential.last_used_at or 'never'}"
                )
        else:
            found = DeploymentCredential.objects.filter(prefix=options["prefix"])
            if not found.exists():
                raise CommandError(f"No credential with prefix {options['prefix']!r}.")
            credentials.deployment_credentials_revoke(
                credentials=found.filter(revoked_at__isnull=True),
                actor="cli:deployment_credential",
            )
            self.stdout.write(f"Revoked {options['prefix']} at {timezone.now():%Y-%m-%d %H:%M}.")
