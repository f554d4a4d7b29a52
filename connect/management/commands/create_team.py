from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from connect.models import Role
from connect.services import teams


class Command(BaseCommand):
    help = "Create a team and its owner; the owner is emailed a link to choose a password."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--slug", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument("--owner-email", required=True)

    def handle(self, *args: Any, slug: str, name: str, owner_email: str, **options: Any) -> None:
        try:
            team = teams.team_create(
                slug=slug, name=name, owner_email=owner_email, actor="cli:create_team"
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        owner = team.memberships.select_related("user").get(role=Role.OWNER).user
        how = (
            "A password link was sent by email."
            if not owner.has_usable_password()
            else "They already have an account and sign in as before."
        )
        self.stdout.write(
            f"Created team {team.slug} ({team.public_id}); owner {owner_email}. {how}"
        )
