"""Team API tokens: bearers for the management API that act as a member of one team."""

import hmac
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from connect.ids import generate
from connect.models.base import ROLE_RANK, Role, TeamScopedQuerySet, public_id_field
from connect.models.credentials import LAST_USED_RESOLUTION, credential_digest

API_TOKEN_PREFIX = "cat"


class TeamApiTokenQuerySet(TeamScopedQuerySet):
    def active(self, now: datetime | None = None) -> "TeamApiTokenQuerySet":
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class TeamApiToken(models.Model):
    """``cat_<prefix>_<secret>``: the prefix finds the row, the SHA-256 of the whole token is
    compared in constant time (like a deployment credential: the secret has 143 bits of
    entropy, so a fast hash is right, not a password hasher).

    A token acts as a member of its team with ``role``, never above its creator's role at the
    time of use: a creator who is demoted limits their tokens, one who leaves the team revokes
    them (``membership_remove``). Tokens made by an operator (``manage.py api_token``) have no
    creator and act with their own role.
    """

    public_id = public_id_field("tok")
    team = models.ForeignKey("connect.Team", on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=120)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_sha256 = models.CharField(max_length=64, editable=False)
    # A deleted user takes their tokens along: none outlives the person who answers for it.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: until revoked.")
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = TeamApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["team", "-created_at"]
        verbose_name = "team API token"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(role__in=Role.values), name="connect_teamapitoken_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({API_TOKEN_PREFIX}_{self.prefix}_…)"

    def issue_token(self) -> str:
        """Set a new prefix and secret digest; return the token, which is shown only now."""
        self.prefix = generate("x")[2:14]
        token = f"{API_TOKEN_PREFIX}_{self.prefix}_{generate('x')[2:]}"
        self.secret_sha256 = credential_digest(token)
        return token

    def matches(self, token: str) -> bool:
        return hmac.compare_digest(self.secret_sha256, credential_digest(token))

    def is_active(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def last_use_is_stale(self, now: datetime) -> bool:
        return self.last_used_at is None or now - self.last_used_at >= LAST_USED_RESOLUTION

    def effective_role(self) -> Role | None:
        """The role the token acts with now: its own, capped by its creator's current role in
        the team (None when the creator holds none there any more)."""
        own = Role(self.role)
        if self.created_by_id is None:
            return own
        creator = self.created_by
        if creator is None or not creator.is_active:
            return None
        if creator.is_superuser:
            return own
        held = (
            creator.memberships.filter(team_id=self.team_id).values_list("role", flat=True).first()
        )
        if held is None:
            return None
        return own if ROLE_RANK[Role(held)] >= ROLE_RANK[own] else Role(held)
