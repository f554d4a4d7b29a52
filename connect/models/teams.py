from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from connect.models.base import ROLE_RANK, Role, TeamScopedQuerySet, public_id_field


class TeamQuerySet(TeamScopedQuerySet):
    team_path = ""


class Team(models.Model):
    public_id = public_id_field("team")
    slug = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=120)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = TeamQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def workload_audience(self) -> str:
        """The ``aud`` this team's workloads ask their OIDC issuer for: its own, so a trusted
        issuer shared with other teams (GitHub Actions) still names one team."""
        return f"{settings.PUBLIC_URL}/teams/{self.public_id}"


class MembershipQuerySet(TeamScopedQuerySet):
    def roles_of(self, user: Any) -> dict[int, Role]:
        """The user's role per team id, in one query."""
        return {
            team_id: Role(role)
            for team_id, role in self.filter(user_id=int(user.pk or 0)).values_list(
                "team_id", "role"
            )
        }


class Membership(models.Model):
    Role = Role

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        ordering = ["team", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["team", "user"], name="connect_membership_unique_user"),
            models.CheckConstraint(
                condition=models.Q(role__in=Role.values), name="connect_membership_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) in {self.team}"


def role_allows(
    user: Any, team_id: int, required: Role, *, roles: Mapping[int, Role] | None = None
) -> bool:
    """Whether ``user`` holds ``required`` (or better) in the team ``team_id``.

    The one rule behind every admin page, admin action and (later) management API call: a role
    counts only in its own team, never "somewhere". Superusers hold every role everywhere;
    anonymous and inactive users none. ``roles`` is the user's role per team when the caller
    has read them already (the admin reads them once per request).
    """
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    held = (Membership.objects.roles_of(user) if roles is None else roles).get(team_id)
    return held is not None and ROLE_RANK[held] >= ROLE_RANK[required]
