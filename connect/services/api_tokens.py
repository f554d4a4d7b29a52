"""Team API tokens: made by owners (the admin) or operators (``manage.py api_token``), used by
scripts on the management API, revoked by hand or when their creator leaves the team."""

import re
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from connect import errors
from connect.models import AuditEvent, Role, TeamApiToken
from connect.models.api_tokens import API_TOKEN_PREFIX
from connect.models.base import ROLE_RANK
from connect.services.audit import Actor, audit_record

DURATION = re.compile(r"^(\d+)([mhdw])$")
DURATION_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``2w`` as a timedelta; ValueError otherwise."""
    match = DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration like 30d, 12h, 90m or 2w.")
    return timedelta(**{DURATION_UNITS[match.group(2)]: int(match.group(1))})


@dataclass(frozen=True)
class TeamActor:
    """A team API token acting on the management API: its team and its effective role."""

    team_id: int
    token_id: int
    token_public_id: str
    name: str
    role: Role

    @property
    def label(self) -> str:
        """The actor named in audit records."""
        return f"token:{self.token_public_id}"


@transaction.atomic
def api_token_create(*, token: TeamApiToken, created_by: User | None, actor: Actor) -> str:
    """Save a new token (team, name, role, expiry set on it) and return its secret, the only
    time the secret exists in clear.

    A user may not make a token with a role above their own in the team (superusers excepted);
    ``created_by`` None is an operator's token, capped by nothing but its role.
    """
    team = token.team
    if created_by is not None and not created_by.is_superuser:
        held = team.memberships.filter(user_id=created_by.pk).values_list("role", flat=True).first()
        if held is None or ROLE_RANK[Role(held)] < ROLE_RANK[Role(token.role)]:
            raise errors.Forbidden("A token's role cannot be above your own in the team.")
    if token.expires_at is not None and token.expires_at <= timezone.now():
        raise errors.InvalidRequest("expiresAt: The expiry must be in the future.")
    token.name = token.name.strip()
    token.created_by = created_by
    secret = token.issue_token()
    token.full_clean()
    token.save()
    audit_record(
        team=team,
        type=AuditEvent.Type.API_TOKEN_CREATED,
        actor=actor,
        targets={"apiTokenId": token.public_id},
        fields={
            "name": token.name,
            "role": token.role,
            "expiresAt": token.expires_at.isoformat() if token.expires_at else None,
        },
    )
    return secret


@transaction.atomic
def api_tokens_revoke(*, tokens: QuerySet[TeamApiToken], actor: Actor, reason: str = "") -> int:
    """Revoke the active tokens among ``tokens``; how many were."""
    now = timezone.now()
    revoked = 0
    for token in tokens.select_for_update(of=("self",)).filter(revoked_at__isnull=True):
        token.revoked_at = now
        token.save(update_fields=["revoked_at"])
        audit_record(
            team=token.team_id,
            type=AuditEvent.Type.API_TOKEN_REVOKED,
            actor=actor,
            targets={"apiTokenId": token.public_id},
            fields={"name": token.name, **({"reason": reason} if reason else {})},
        )
        revoked += 1
    return revoked


def api_token_authenticate(*, token: str) -> TeamActor:
    """The actor a ``cat_`` bearer is, or Unauthorized. Its effective role is read on every
    use: a creator demoted since caps it, one gone from the team (or deactivated) voids it."""
    parts = token.split("_")
    if len(parts) != 3 or parts[0] != API_TOKEN_PREFIX:
        raise errors.Unauthorized("Malformed team API token.")
    now = timezone.now()
    found = TeamApiToken.objects.select_related("created_by").filter(prefix=parts[1]).first()
    if found is None or not found.matches(token) or not found.is_active(now):
        raise errors.Unauthorized("Unknown, expired or revoked team API token.")
    role = found.effective_role()
    if role is None:
        raise errors.Unauthorized(
            "This token's creator is no longer a member of its team; the token is void."
        )
    if found.last_use_is_stale(now):
        # At most once a minute per token (LAST_USED_RESOLUTION), not a write per call.
        TeamApiToken.objects.filter(pk=found.pk).update(last_used_at=now)
    return TeamActor(
        team_id=found.team_id,
        token_id=found.pk,
        token_public_id=found.public_id,
        name=found.name,
        role=role,
    )
