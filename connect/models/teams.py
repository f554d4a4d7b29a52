from django.conf import settings
from django.db import models
from django.utils import timezone

from connect.models.base import Role, TeamScopedQuerySet, public_id_field


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


class MembershipQuerySet(TeamScopedQuerySet):
    pass


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
