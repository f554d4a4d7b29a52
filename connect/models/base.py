from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Self

from django.db import models

from connect import crypto
from connect.ids import PublicIdFactory

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


def public_id_field(prefix: str) -> models.CharField:
    return models.CharField(
        max_length=40, unique=True, editable=False, default=PublicIdFactory(prefix)
    )


def log_team_field() -> models.ForeignKey:
    """A log row's team, copied from its parent row so that team scoping needs no join: written
    by the writer, or by the database when a writer leaves it out (a trigger, migration 0027).
    Not indexed alone: each log's (team, time) index serves it."""
    return models.ForeignKey(
        "connect.Team",
        null=True,
        blank=True,
        editable=False,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
    )


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    MEMBER = "member", "Member"
    OWNER = "owner", "Owner"


ROLE_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.OWNER: 2}


def roles_at_least(role: Role) -> list[str]:
    return [r.value for r, rank in ROLE_RANK.items() if rank >= ROLE_RANK[role]]


class TeamScopedQuerySet(models.QuerySet):
    """Rows reachable from a team through ``team_path`` (empty for Team itself)."""

    team_path: ClassVar[str] = "team"

    def _team_lookup(self) -> str:
        return f"{self.team_path}__in" if self.team_path else "pk__in"

    def for_team(self, team: models.Model | int) -> Self:
        team_id = team if isinstance(team, int) else team.pk
        return self.filter(**{self._team_lookup(): [team_id]})

    def for_team_ids(self, team_ids: list[int]) -> Self:
        return self.filter(**{self._team_lookup(): team_ids})

    def for_user(
        self, user: AbstractBaseUser | AnonymousUser, min_role: Role = Role.VIEWER
    ) -> Self:
        """What ``user`` may see (or, with ``min_role``, change).

        Memberships are unique per (team, user), so the join adds no duplicate rows.
        """
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if getattr(user, "is_superuser", False):
            return self.all()
        if self.team_path == "team":
            # Rows that carry their team (logs among them): one indexed column against the
            # user's teams, no join through the row's parents or its team.
            from django.apps import apps

            memberships = apps.get_model("connect", "Membership")._default_manager.filter(
                user_id=user.pk, role__in=roles_at_least(min_role)
            )
            return self.filter(team_id__in=memberships.values("team_id"))
        prefix = f"{self.team_path}__" if self.team_path else ""
        return self.filter(
            **{
                f"{prefix}memberships__user": user,
                f"{prefix}memberships__role__in": roles_at_least(min_role),
            }
        )

    def team_id_of(self, obj: models.Model) -> int:
        """Walk ``team_path`` on an instance (no query when the relations are loaded)."""
        if not self.team_path:
            return int(obj.pk)
        *hops, last = self.team_path.split("__")
        for hop in hops:
            obj = getattr(obj, hop)
        team_id = getattr(obj, f"{last}_id")
        if team_id is None and obj.pk is not None:
            # A log row written without its team: the database filled it in; read it back.
            team_id = (
                type(obj)
                ._default_manager.filter(pk=obj.pk)
                .values_list(f"{last}_id", flat=True)
                .first()
            )
        return int(team_id)


class SealedSecrets(models.Model):
    """Secrets kept as ``<name>_sealed`` columns, reached only through ``reveal`` and ``seal``.

    The associated data is ``<model label>:<public_id>:<name>``, so a value only opens in the row
    and column it was written for.
    """

    SEALED_FIELDS: ClassVar[tuple[str, ...]] = ()

    public_id: str

    class Meta:
        abstract = True

    def sealed_column(self, name: str) -> str:
        if name not in self.SEALED_FIELDS:
            raise KeyError(f"{type(self).__name__} has no secret named {name!r}")
        return f"{name}_sealed"

    @classmethod
    def binding_for(cls, public_id: str, name: str) -> str:
        # The concrete model's: a proxy (the lifecycle kind of destination) is the same row.
        concrete = cls._meta.concrete_model or cls
        return f"{concrete._meta.label_lower}:{public_id}:{name}"

    def secret_binding(self, name: str) -> str:
        return self.binding_for(self.public_id, name)

    def has_secret(self, name: str) -> bool:
        return bool(getattr(self, self.sealed_column(name)))

    def reveal(self, name: str) -> str:
        """The plaintext, or ``""`` when no value is set."""
        sealed = getattr(self, self.sealed_column(name))
        if not sealed:
            return ""
        return crypto.open_sealed(sealed, binding=self.secret_binding(name))

    def seal(self, name: str, plaintext: str) -> None:
        """Set (or with ``""`` clear) a secret on the instance; the caller saves."""
        column = self.sealed_column(name)
        value = crypto.seal(plaintext, binding=self.secret_binding(name)) if plaintext else ""
        setattr(self, column, value)


def sealed_field() -> models.TextField:
    return models.TextField(blank=True, default="", editable=False)
