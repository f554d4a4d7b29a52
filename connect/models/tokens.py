from datetime import datetime

from django.db import connection, models
from django.utils import timezone

from connect.models.base import (
    SealedSecrets,
    TeamScopedQuerySet,
    log_team_field,
    public_id_field,
    sealed_field,
)
from connect.models.installations import Grant


class TokenIssueQuerySet(TeamScopedQuerySet):
    team_path = "team"

    def record(self, issue: "TokenIssue") -> "TokenIssue":
        """Insert one issue with a plain INSERT: the ORM's save() compiles more than the token
        hot path can afford, for a row nothing reads back (its primary key stays unset)."""
        fields = [f for f in issue._meta.concrete_fields if not f.primary_key]
        qn = connection.ops.quote_name
        columns = ", ".join(qn(str(f.column)) for f in fields)
        placeholders = ", ".join(["%s"] * len(fields))
        # Only quoted model metadata is interpolated; every value travels as a parameter.
        sql = f"INSERT INTO {qn(issue._meta.db_table)} ({columns}) VALUES ({placeholders})"  # noqa: S608
        values = [f.get_db_prep_save(getattr(issue, f.attname), connection) for f in fields]
        with connection.cursor() as cursor:
            cursor.execute(sql, values)
        return issue


class TokenIssue(models.Model):
    """One row per token handed out; the token itself is never stored here."""

    public_id = public_id_field("stk")
    team = log_team_field()
    grant = models.ForeignKey("connect.Grant", on_delete=models.CASCADE, related_name="issues")
    project = models.ForeignKey("connect.Project", on_delete=models.CASCADE, related_name="+")
    environment = models.CharField(max_length=60)
    scopes = models.JSONField(default=list, blank=True)
    resources = models.JSONField(default=list, blank=True)
    authorization_details = models.JSONField(default=list, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)

    objects = TokenIssueQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["team", "-created_at"], name="connect_issue_team_recent")]

    def __str__(self) -> str:
        return self.public_id


class MintedTokenQuerySet(TeamScopedQuerySet):
    team_path = "grant__installation__connector__team"

    def usable(self, request_digest: str, *, valid_after: datetime) -> "MintedTokenQuerySet":
        return self.filter(request_digest=request_digest, expires_at__gt=valid_after)

    def keep(
        self,
        *,
        grant: Grant,
        request_digest: str,
        token: str,
        expires_at: datetime,
        now: datetime,
    ) -> None:
        """Store (or replace) the token for a request, and drop the grant's expired ones."""
        self.filter(grant=grant, expires_at__lte=now).delete()
        row = MintedToken(grant=grant, request_digest=request_digest, expires_at=expires_at)
        row.seal("access_token", token)
        # One statement, so concurrent misses of the same request cannot collide; the row takes
        # the new public id too, since the ciphertext is bound to it.
        MintedToken.objects.bulk_create(
            [row],
            update_conflicts=True,
            unique_fields=["request_digest"],
            update_fields=["public_id", "access_token_sealed", "expires_at"],
        )


class MintedToken(SealedSecrets):
    """A token minted for one distinct request (GitHub's down-scoped installation tokens), kept
    sealed until it nears expiry, so the same request does not mint again.

    A table, not the cache: ``rotate_encryption_keys`` must re-encrypt every sealed value before
    it says an old key can go, and a cache cannot be enumerated portably (no listing in Django's
    cache API; locmem lives in each process). Here the rotation finds these rows like any other
    sealed column, and deleting the grant takes them along. The lookup is one indexed read on
    the down-scoped path only; ordinary token requests never touch this table.
    """

    SEALED_FIELDS = ("access_token",)

    public_id = public_id_field("mtk")
    grant = models.ForeignKey(
        "connect.Grant", on_delete=models.CASCADE, related_name="minted_tokens"
    )
    #: SHA-256 of the grant and the exact request (scopes, resources, audience, details).
    request_digest = models.CharField(max_length=64, unique=True, editable=False)
    access_token_sealed = sealed_field()
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = MintedTokenQuerySet.as_manager()

    def __str__(self) -> str:
        return self.public_id
