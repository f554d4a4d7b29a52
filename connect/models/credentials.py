import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, models
from django.utils import timezone

from connect.ids import generate
from connect.models.base import TeamScopedQuerySet, public_id_field
from connect.models.projects import Environment, Project, check_environment_of_project
from connect.web_urls import UnsafeURL, check_web_url

CREDENTIAL_TOKEN_PREFIX = "cdc"
LAST_USED_RESOLUTION = timedelta(minutes=1)


def credential_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class BearerMatch:
    """What the token hot path needs of a credential, its project and environment."""

    pk: int
    public_id: str
    secret_sha256: str = field(repr=False)
    last_use_stale: bool
    project_id: int
    team_id: int
    project_public_id: str
    environment: str

    def matches(self, token: str) -> bool:
        return hmac.compare_digest(self.secret_sha256, credential_digest(token))


class DeploymentCredentialQuerySet(TeamScopedQuerySet):
    team_path = "project__team"

    def active(self) -> "DeploymentCredentialQuerySet":
        return self.filter(revoked_at__isnull=True)

    def bearer(self, prefix: str, *, stale_before: datetime) -> BearerMatch | None:
        """The active credential with this prefix, in one plain query: the ORM's compilation
        of the same join cost more than the rest of a token request (SPEC section 12)."""
        qn = connection.ops.quote_name
        d, p, e = (qn(m._meta.db_table) for m in (DeploymentCredential, Project, Environment))
        sql = f"""
            SELECT d.id, d.public_id, d.secret_sha256,
                   (d.last_used_at IS NULL OR d.last_used_at < %s),
                   p.id, p.team_id, p.public_id, e.slug
            FROM {d} d JOIN {p} p ON p.id = d.project_id JOIN {e} e ON e.id = d.environment_id
            WHERE d.prefix = %s AND d.revoked_at IS NULL
        """  # noqa: S608 — only quoted table names are interpolated
        with connection.cursor() as cursor:
            cursor.execute(sql, [stale_before, prefix])
            row = cursor.fetchone()
        if row is None:
            return None
        return BearerMatch(
            pk=row[0],
            public_id=row[1],
            secret_sha256=row[2],
            last_use_stale=bool(row[3]),
            project_id=row[4],
            team_id=row[5],
            project_public_id=row[6],
            environment=row[7],
        )


class DeploymentCredential(models.Model):
    """A static bearer for one project + environment.

    The token reads ``cdc_<prefix>_<secret>``; the prefix finds the row, the SHA-256 of the whole
    token is compared in constant time. The secret has 143 bits of entropy, so a fast hash is the
    right tool here, not a password hasher.
    """

    public_id = public_id_field("dpc")
    project = models.ForeignKey(
        "connect.Project", on_delete=models.CASCADE, related_name="credentials"
    )
    environment = models.ForeignKey(
        "connect.Environment", on_delete=models.CASCADE, related_name="credentials"
    )
    name = models.CharField(max_length=120, blank=True)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_sha256 = models.CharField(max_length=64, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = DeploymentCredentialQuerySet.as_manager()

    class Meta:
        ordering = ["project", "environment", "-created_at"]

    def __str__(self) -> str:
        label = self.name or self.prefix
        return f"{label} ({CREDENTIAL_TOKEN_PREFIX}_{self.prefix}_…)"

    def clean(self) -> None:
        check_environment_of_project(self)

    def issue_token(self) -> str:
        """Set a new prefix and secret digest; return the token, which is shown only now."""
        self.prefix = generate("x")[2:14]
        token = f"{CREDENTIAL_TOKEN_PREFIX}_{self.prefix}_{generate('x')[2:]}"
        self.secret_sha256 = credential_digest(token)
        return token


class TrustedIssuerQuerySet(TeamScopedQuerySet):
    pass


class TrustedIssuer(models.Model):
    """An external OIDC issuer a team trusts, for tokens addressed to one audience.

    The (issuer, audience) pair belongs to one team: a token's own ``iss`` and ``aud`` name the
    team whose rules apply, so another team trusting the same issuer (GitHub Actions, say)
    never takes part in, nor slows down, the verification. Each team is told its own audience,
    ``{PUBLIC_URL}/teams/{team id}``, so two teams never need the same pair.
    """

    public_id = public_id_field("tis")
    team = models.ForeignKey(
        "connect.Team", on_delete=models.CASCADE, related_name="trusted_issuers"
    )
    issuer = models.URLField(
        help_text="Exact `iss`, e.g. https://token.actions.githubusercontent.com"
    )
    jwks_url = models.URLField()
    audience = models.CharField(
        max_length=255,
        help_text="Exact `aud` your workloads request; your team's own audience unless you "
        "must use another.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = TrustedIssuerQuerySet.as_manager()

    class Meta:
        ordering = ["team", "issuer"]
        constraints = [
            models.UniqueConstraint(
                fields=["issuer", "audience"],
                name="connect_trustedissuer_one_team_per_audience",
                violation_error_message="This issuer is already trusted for this audience. "
                "Use your team's own audience.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.issuer} for {self.audience}"

    def clean(self) -> None:
        for name, label in (("issuer", "The issuer"), ("jwks_url", "The JWKS URL")):
            try:
                check_web_url(getattr(self, name))
            except UnsafeURL as exc:
                raise ValidationError({name: f"{label} {exc}."}) from exc
        if self.issuer.rstrip("/") == settings.PUBLIC_URL.rstrip("/"):
            raise ValidationError({"issuer": "This app's own tokens need no trusted issuer."})
        # Another team's own audience is theirs even before they trust anything with it.
        team_audiences = f"{settings.PUBLIC_URL}/teams/"
        if (
            self.team_id
            and self.audience.startswith(team_audiences)
            and self.audience != self.team.workload_audience
        ):
            raise ValidationError(
                {"audience": f"Use your team's own audience, {self.team.workload_audience}."}
            )


class TrustedIssuerRuleQuerySet(TeamScopedQuerySet):
    team_path = "trusted_issuer__team"


class TrustedIssuerRule(models.Model):
    """Claims that, all present in a trusted issuer's token, make it act as a project + env."""

    public_id = public_id_field("tir")
    trusted_issuer = models.ForeignKey(
        TrustedIssuer, on_delete=models.CASCADE, related_name="rules"
    )
    required_claims = models.JSONField(
        default=dict,
        blank=True,
        help_text='Claims that must match exactly, e.g. {"repository": "acme/app"}.',
    )
    project = models.ForeignKey("connect.Project", on_delete=models.CASCADE, related_name="+")
    environment = models.ForeignKey(
        "connect.Environment", on_delete=models.CASCADE, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = TrustedIssuerRuleQuerySet.as_manager()

    class Meta:
        ordering = ["trusted_issuer", "project", "created_at"]

    def __str__(self) -> str:
        return f"→ {self.project_id and self.project.slug}"

    def clean(self) -> None:
        # An issuer like GitHub Actions signs tokens for anyone with any audience they choose:
        # without a claim that names *your* workload, the rule would trust everyone's.
        if not isinstance(self.required_claims, dict) or not self.required_claims:
            raise ValidationError(
                {"required_claims": 'Name at least one claim to match, e.g. {"repository": …}.'}
            )
        if not all(isinstance(v, str) for v in self.required_claims.values()):
            raise ValidationError({"required_claims": "Claim values are matched as strings."})
        # In the admin's inline the issuer is set but may not be saved yet.
        has_issuer = self.trusted_issuer_id or TrustedIssuerRule.trusted_issuer.is_cached(self)
        if has_issuer and self.project_id and self.project.team_id != self.trusted_issuer.team_id:
            raise ValidationError({"project": "Pick a project of this team."})
        check_environment_of_project(self)

    def matches(self, claims: dict[str, object]) -> bool:
        return bool(self.required_claims) and all(
            claims.get(name) == value for name, value in self.required_claims.items()
        )
