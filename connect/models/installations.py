import hmac
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from connect import kinds
from connect.models.base import SealedSecrets, TeamScopedQuerySet, public_id_field, sealed_field

if TYPE_CHECKING:
    from connect.providers.base import TokenSet


class InstallationStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    REVOKED = "revoked", "Revoked"


class InstallationQuerySet(TeamScopedQuerySet):
    team_path = "connector__team"


class Installation(models.Model):
    Status = InstallationStatus

    public_id = public_id_field("sci")
    connector = models.ForeignKey(
        "connect.Connector", on_delete=models.CASCADE, related_name="installations"
    )
    tenant_id = models.CharField(
        max_length=255,
        help_text="The provider's id: Slack team, GitHub installation, Entra tenant…",
    )
    display_name = models.CharField(max_length=255, blank=True)
    status = models.CharField(
        max_length=10, choices=InstallationStatus.choices, default=InstallationStatus.ACTIVE
    )
    is_default = models.BooleanField(default=False)
    metadata = models.JSONField(default=dict, blank=True)
    installed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = InstallationQuerySet.as_manager()

    class Meta:
        ordering = ["connector", "display_name", "tenant_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["connector", "tenant_id"], name="connect_installation_unique_tenant"
            ),
            models.UniqueConstraint(
                fields=["connector"],
                condition=models.Q(is_default=True),
                name="connect_installation_one_default",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=InstallationStatus.values),
                name="connect_installation_status_valid",
            ),
        ]
        indexes = [
            # Counting a connector's active installations (lists, index) reads only this.
            models.Index(fields=["connector", "status"], name="connect_installation_status"),
            # The admin list, newest first (and the connector page's newest few).
            models.Index(fields=["-created_at"], name="connect_installation_newest"),
            models.Index(fields=["connector", "-created_at"], name="connect_installation_recent"),
        ]

    def __str__(self) -> str:
        return self.display_name or self.tenant_id

    def describe(self, *, display_name: str, metadata: Mapping[str, Any], now: datetime) -> None:
        """Keep what the provider just said about this tenant (unset values keep theirs)."""
        self.display_name = display_name or self.display_name
        self.metadata = {**self.metadata, **{k: v for k, v in metadata.items() if v is not None}}
        self.updated_at = now

    def attach(self, *, display_name: str, metadata: Mapping[str, Any], now: datetime) -> None:
        """Active again with what the provider proved; the connector's default if it has none.
        Saves; the caller holds the row lock."""
        self.describe(display_name=display_name, metadata=metadata, now=now)
        self.status = InstallationStatus.ACTIVE
        if (
            not Installation.objects.filter(connector_id=self.connector_id, is_default=True)
            .exclude(pk=self.pk)
            .exists()
        ):
            self.is_default = True
        self.save()


class SubjectType(models.TextChoices):
    """``connect.kinds.SubjectType`` with labels (drivers import that one, without Django)."""

    APP = kinds.SubjectType.APP.value, "App"
    USER = kinds.SubjectType.USER.value, "User"
    JWT_BEARER = kinds.SubjectType.JWT_BEARER.value, "JWT bearer"


class GrantStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    NEEDS_REAUTH = "needs_reauth", "Needs re-authorization"
    REVOKED = "revoked", "Revoked"


class GrantQuerySet(TeamScopedQuerySet):
    team_path = "installation__connector__team"

    def record_endpoints_before_change(self, digest: str) -> int:
        """The URLs that receive these grants' tokens are about to change: record that the
        tokens they hold came from ``digest``, except where an earlier change already did so
        and no token was written since (those came from older URLs still)."""
        recorded = ~models.Q(endpoints_digest="") & models.Q(endpoints_version=models.F("version"))
        return self.exclude(recorded).update(
            endpoints_digest=digest, endpoints_version=models.F("version")
        )

    def expiring_before(self, moment: datetime) -> "GrantQuerySet":
        return self.filter(status=GrantStatus.ACTIVE, access_expires_at__lt=moment).exclude(
            refresh_token_sealed=""
        )

    def granted_for_longer_than(self, seconds: float) -> "GrantQuerySet":
        """Tokens granted for more than ``seconds``, and those whose lifetime is not known yet
        (stored before it was recorded, or imported): their next refresh records it."""
        return self.filter(
            models.Q(access_lifetime_seconds__isnull=True)
            | models.Q(access_lifetime_seconds__gt=seconds)
        )


class Grant(SealedSecrets):
    SubjectType = SubjectType
    Status = GrantStatus
    SEALED_FIELDS = ("access_token", "refresh_token")

    public_id = public_id_field("sgr")
    installation = models.ForeignKey(Installation, on_delete=models.CASCADE, related_name="grants")
    subject_type = models.CharField(max_length=10, choices=SubjectType.choices)
    subject_id = models.CharField(max_length=255, blank=True)
    issuer = models.CharField(
        max_length=255,
        blank=True,
        help_text="Whose user ids these are; a user grant defaults to the calling project's id.",
    )
    access_token_sealed = sealed_field()
    refresh_token_sealed = sealed_field()
    access_expires_at = models.DateTimeField(null=True, blank=True)
    access_lifetime_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        editable=False,
        help_text="How long the provider granted the access token for (unknown when imported).",
    )
    refresh_expires_at = models.DateTimeField(null=True, blank=True)
    scopes = models.JSONField(default=list, blank=True)
    external_subject = models.CharField(
        max_length=255, blank=True, help_text="The provider's own id for the subject."
    )
    project = models.ForeignKey(
        "connect.Project",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The project whose consent or import made this grant; empty for the team's "
        "own (installs, app grants). An import never replaces another project's active grant.",
    )
    status = models.CharField(
        max_length=15, choices=GrantStatus.choices, default=GrantStatus.ACTIVE
    )
    version = models.PositiveIntegerField(default=0, editable=False)
    #: Credential checks: when this grant is next checked, until when a worker holds its
    #: check (one in flight per grant), and what the provider said when it last failed.
    next_check_at = models.DateTimeField(null=True, blank=True, editable=False)
    check_lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.CharField(max_length=500, blank=True, editable=False)
    #: Where the tokens of ``endpoints_version`` came from: the digest of the connector's URLs
    #: that receive grants' tokens (``Connector.grant_endpoints_digest``), recorded when those
    #: URLs change. Tokens written since (a newer version) came from the current URLs.
    endpoints_digest = models.CharField(max_length=64, blank=True, default="", editable=False)
    endpoints_version = models.PositiveIntegerField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = GrantQuerySet.as_manager()

    #: The columns ``store_tokens`` and ``clear_tokens`` write.
    TOKEN_FIELDS: ClassVar[tuple[str, ...]] = (
        "access_token_sealed",
        "refresh_token_sealed",
        "access_expires_at",
        "access_lifetime_seconds",
        "refresh_expires_at",
        "scopes",
        "external_subject",
        "status",
        "version",
        "updated_at",
    )

    class Meta:
        ordering = ["installation", "subject_type", "subject_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["installation", "subject_type", "subject_id", "issuer"],
                name="connect_grant_unique_subject",
            ),
            models.CheckConstraint(
                condition=models.Q(subject_type__in=SubjectType.values),
                name="connect_grant_subject_type_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=GrantStatus.values), name="connect_grant_status_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "access_expires_at"], name="connect_grant_expiry"),
            models.Index(fields=["status", "next_check_at"], name="connect_grant_check_due"),
            # Health counts each connector's grants waiting for re-authorization.
            models.Index(
                fields=["installation"],
                condition=models.Q(status=GrantStatus.NEEDS_REAUTH),
                name="connect_grant_needs_reauth",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subject_label} on {self.installation_id and self.installation}"

    @property
    def subject_label(self) -> str:
        """The subject as the proxy's ``Connect-Subject`` names it: ``app``, ``user:<id>``,
        ``jwt-bearer:<id>``."""
        if not self.subject_id:
            return self.subject_type
        return f"{self.subject_type}:{self.subject_id}"

    def tokens_belong_to(self, digest: str) -> bool:
        """Whether this grant's tokens may be sent to the URLs whose digest is ``digest``: they
        may unless those URLs changed after the tokens were written (then the tokens belong to
        the old ones, and a member who changed them must not receive them)."""
        if not self.endpoints_digest or self.endpoints_version != self.version:
            return True
        return hmac.compare_digest(self.endpoints_digest, digest)

    def record_endpoints(self, digest: str) -> None:
        """The tokens now held were obtained through the URLs whose digest is ``digest``."""
        self.endpoints_digest = digest
        self.endpoints_version = self.version

    @staticmethod
    def refresh_margin_for(lifetime_seconds: int | None) -> timedelta:
        """How long before its expiry a token is renewed: ``CONNECT_REFRESH_MARGIN``, but at
        most a quarter of the lifetime it was granted for. A fixed margin longer than the
        lifetime would leave every token due the moment it is issued, and refreshed on every
        request; a quarter keeps three quarters of each token's life in use. An unknown
        lifetime gets the configured margin until a refresh records one."""
        margin = float(settings.CONNECT_REFRESH_MARGIN_SECONDS)
        if lifetime_seconds is not None:
            margin = min(margin, lifetime_seconds / 4)
        return timedelta(seconds=margin)

    def refresh_margin(self) -> timedelta:
        return self.refresh_margin_for(self.access_lifetime_seconds)

    def access_token_fresh(self, now: datetime) -> bool:
        """Whether the stored access token may be handed out: set, and not within its margin."""
        if not self.has_secret("access_token"):
            return False
        expires_at = self.access_expires_at
        return expires_at is None or expires_at > now + self.refresh_margin()

    def access_token_serves(self, scopes: Sequence[str], now: datetime) -> bool:
        """Whether the stored access token may be handed out for ``scopes``: fresh, and granted
        every one of them (a grant whose scopes are unknown serves any)."""
        if self.scopes and not set(scopes) <= set(self.scopes):
            return False
        return self.access_token_fresh(now)

    def store_tokens(
        self,
        tokens: "TokenSet",
        *,
        now: datetime,
        lifetime_known: bool = True,
        external_subject: str = "",
        new_holder: bool = False,
    ) -> None:
        """Write what a provider answered (a refresh, a consent, an install, a mint) or what
        was imported, and make the grant active; the caller saves ``TOKEN_FIELDS``.

        The one rule for the refresh token: a provider that omits it leaves the old one valid
        (RFC 6749 section 6), so the old one is kept, unless it cannot serve the new tokens'
        holder: it is known dead (the grant was not active: it needs re-authorization or was
        revoked), or it belongs to someone else (the provider now names another subject, or
        ``new_holder``: an import hands the grant to another project).

        The lifetime is the expiry less ``now``, the moment the token was asked for; an
        imported token's is unknown (``lifetime_known=False``), as only its expiry is given.
        """
        someone_else = new_holder or bool(
            external_subject and self.external_subject and external_subject != self.external_subject
        )
        if tokens.refresh_token:
            self.seal("refresh_token", tokens.refresh_token)
            self.refresh_expires_at = tokens.refresh_expires_at
        elif someone_else or self.status != GrantStatus.ACTIVE:
            self.seal("refresh_token", "")
            self.refresh_expires_at = None
        self.seal("access_token", tokens.access_token)
        self.access_expires_at = tokens.expires_at
        self.access_lifetime_seconds = None
        if lifetime_known and tokens.expires_at is not None:
            self.access_lifetime_seconds = max(0, round((tokens.expires_at - now).total_seconds()))
        if tokens.scopes is not None:
            self.scopes = list(tokens.scopes)
        if external_subject:
            self.external_subject = external_subject
        self.status = GrantStatus.ACTIVE
        self.version += 1
        self.updated_at = now

    def clear_tokens(self, *, now: datetime, status: GrantStatus | None = None) -> None:
        """Forget the tokens (revoked at the provider, or their installation ended) and, when
        given, set ``status``; the grant, its subject and its scopes stay. The caller saves
        ``TOKEN_FIELDS``. A new version, so a refresh in flight does not write them back."""
        self.seal("access_token", "")
        self.seal("refresh_token", "")
        self.access_expires_at = None
        self.access_lifetime_seconds = None
        self.refresh_expires_at = None
        if status is not None:
            self.status = status
        self.version += 1
        self.updated_at = now
