import logging
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q
from django.utils import timezone

from connect import errors
from connect.models import Role, Team, TeamApiToken
from connect.services import api_tokens

logger = logging.getLogger(__name__)
ACTOR = "cli:api_token"


class Command(BaseCommand):
    help = "Create, list or revoke team API tokens (bearers for the management API)."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="print a new token, once")
        listing = actions.add_parser("list", help="list a team's tokens (never their secrets)")
        for sub in (create, listing):
            sub.add_argument("--team", required=True, help="team slug")
        create.add_argument("--role", required=True, choices=Role.values)
        create.add_argument("--name", default="", help="what the token is for")
        create.add_argument("--expires", default="", help="a lifetime: 30d, 12h, 90m, 2w")
        create.add_argument(
            "--user",
            default="",
            help="username or email of the member it acts for: the token never acts above "
            "their role, and is revoked when they leave the team",
        )
        revoke = actions.add_parser("revoke", help="revoke a token by its id (tok_…) or prefix")
        revoke.add_argument("token")

    def _team(self, slug: str) -> Team:
        team = Team.objects.filter(slug=slug).first()
        if team is None:
            raise CommandError(f"No team {slug!r}.")
        return team

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "create":
            self._create(**options)
        elif action == "list":
            team = self._team(options["team"])
            now = timezone.now()
            for token in TeamApiToken.objects.filter(team=team):
                state = (
                    "revoked"
                    if token.revoked_at
                    else "expired"
                    if not token.is_active(now)
                    else "active"
                )
                self.stdout.write(
                    f"{token.public_id}\t{token.prefix}\t{token.role}\t{state}\t{token.name}\t"
                    f"expires {token.expires_at or 'never'}\t"
                    f"last used {token.last_used_at or 'never'}"
                )
        else:
            ref = options["token"]
            found = TeamApiToken.objects.filter(Q(public_id=ref) | Q(prefix=ref))
            if not found.exists():
                raise CommandError(f"No team API token {ref!r}.")
            api_tokens.api_tokens_revoke(tokens=found, actor=ACTOR)
            self.stdout.write(f"Revoked {ref} at {timezone.now():%Y-%m-%d %H:%M}.")

    def _create(self, **options: Any) -> None:
        team = self._team(options["team"])
        try:
            lifetime = api_tokens.parse_duration(options["expires"]) if options["expires"] else None
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        user = None
        if options["user"]:
            user = User.objects.filter(
                Q(username=options["user"]) | Q(email__iexact=options["user"])
            ).first()
            if user is None:
                raise CommandError(f"No user {options['user']!r}.")
        token = TeamApiToken(
            team=team,
            name=options["name"] or f"{options['role']} token",
            role=Role(options["role"]),
            expires_at=timezone.now() + lifetime if lifetime else None,
        )
        try:
            secret = api_tokens.api_token_create(token=token, created_by=user, actor=ACTOR)
        except errors.ConnectError as exc:
            raise CommandError(exc.message) from exc
        # Logs go to stderr; the secret is alone on stdout, for scripts.
        logger.info("created team API token %s for %s", token.public_id, team.slug)
        self.stdout.write(secret)
