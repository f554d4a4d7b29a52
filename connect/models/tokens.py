from django.db import connection, models
from django.utils import timezone

from connect.models.base import TeamScopedQuerySet, public_id_field


class TokenIssueQuerySet(TeamScopedQuerySet):
    team_path = "grant__installation__connector__team"

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

    def __str__(self) -> str:
        return self.public_id
