"""Revoking and importing grants through the runtime API."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from connect import errors
from connect.callers import Caller
from connect.kinds import Subject
from connect.models import Connector, Grant, Installation, Project, Role
from connect.models.installations import GrantStatus, SubjectType
from connect.models.teams import role_allows
from connect.providers import get_provider
from connect.providers.base import TokenSet
from connect.services import links
from connect.services.audit import actor_label, audit_record


@dataclass
class RevokeCounts:
    tokens_found: int = 0
    deleted: int = 0
    provider_revoked: int = 0
    provider_skipped: int = 0
    provider_failed: int = 0

    def as_wire(self) -> dict[str, int]:
        return {
            "tokensFound": self.tokens_found,
            "deleted": self.deleted,
            "providerRevoked": self.provider_revoked,
            "providerSkipped": self.provider_skipped,
            "providerFailed": self.provider_failed,
        }


def _installations(connector: Connector, installation_ref: str | None) -> Any:
    installations = Installation.objects.filter(connector=connector)
    if installation_ref and installation_ref != "*":
        installations = installations.filter(public_id=installation_ref)
    return installations


def grants_revoke(
    *,
    caller: Caller,
    connector_ref: str,
    subject: Subject | None,
    installation_ref: str | None,
) -> RevokeCounts:
    """Revoke a subject's tokens. User grants go (revoked upstream where possible); app grants
    lose their cached tokens, while the installation and the connector's secrets stay."""
    connector = links.linked_connector(caller=caller, connector_ref=connector_ref)
    if subject is None:
        raise errors.Forbidden("Revoking every subject's tokens takes a team member.")
    grants = list(
        Grant.objects.filter(
            installation__in=_installations(connector, installation_ref),
            subject_type=subject.type,
            subject_id=subject.id,
            issuer=subject.issuer,
        )
    )
    counts = RevokeCounts()
    provider = get_provider(connector.type)
    credentials = connector.provider_credentials()
    endpoints = connector.grant_endpoints_digest()
    now = timezone.now()

    def upstream(token: str, hint: str, grant: Grant) -> None:
        """Revoke one token at the provider where it may go, and count the outcome."""
        counts.tokens_found += 1
        # Tokens go only to the URLs they came from (see Grant.tokens_belong_to).
        if provider is None or not token or not grant.tokens_belong_to(endpoints):
            counts.provider_skipped += 1
            return
        outcome = provider.revoke(credentials, token, hint=hint, now=now)
        if not outcome.attempted:
            counts.provider_skipped += 1
        elif outcome.succeeded:
            counts.provider_revoked += 1
        else:
            counts.provider_failed += 1

    for grant in grants:
        # Tokens minted for one request (GitHub's down-scoped ones) are the grant's tokens too.
        minted = list(grant.minted_tokens.all()) if grant.subject_type == SubjectType.APP else []
        for kept in minted:
            upstream(kept.reveal("access_token"), "access_token", grant)
        if minted:
            grant.minted_tokens.all().delete()
            counts.deleted += len(minted)
        access, refresh = grant.reveal("access_token"), grant.reveal("refresh_token")
        if provider is None:
            token, hint = (refresh, "refresh_token") if refresh else (access, "access_token")
        else:
            token, hint = provider.revocable_token(access_token=access, refresh_token=refresh)
        if not token and connector.type != "api-key":
            continue
        upstream(token, hint, grant)
        with transaction.atomic():
            if grant.subject_type == SubjectType.USER:
                grant.delete()
                counts.deleted += 1
            elif token:
                grant.clear_tokens(now=now)
                grant.save()
                counts.deleted += 1
    audit_record(
        team=connector.team_id,
        type="token.revoked",
        actor=caller.label,
        targets={"connectorId": connector.public_id},
        fields={"subject": subject.type, **counts.as_wire()},
    )
    return counts


@dataclass
class ImportedGrant:
    grant: Grant | None
    echo: dict[str, Any]
    error: str = ""


@dataclass
class ImportResult:
    accepted: int = 0
    imported: int = 0
    items: list[ImportedGrant] = field(default_factory=list)


@dataclass(frozen=True)
class Importer:
    """Who imports grants, and so what they may write.

    A deployment imports only its own users: user subjects under its project's issuer. App and
    jwt-bearer grants serve every project linked to the connector (and a jwt-bearer subject's
    issuer is any string a caller names), so only a team member imports them. Either way an
    import never replaces an active grant that another project made.
    """

    team_id: int
    label: str
    #: The project the imported grants are made for (None: the team's own, a member only).
    project_id: int | None
    #: The issuer user subjects default to: the project's public id.
    own_issuer: str = ""
    #: The member importing, whose role is checked in the connector's team.
    user: Any = None

    @classmethod
    def deployment(cls, caller: Caller) -> "Importer":
        return cls(
            team_id=caller.team_id,
            label=caller.label,
            project_id=caller.project_id,
            own_issuer=caller.default_user_issuer,
        )

    @classmethod
    def member(cls, *, user: Any, team_id: int, project: Project | None = None) -> "Importer":
        """A team member importing for the team, or for one of its projects' users."""
        if project is not None and project.team_id != team_id:
            raise errors.NotFound("No such project in this team.")
        return cls(
            team_id=team_id,
            label=actor_label(user),
            project_id=None if project is None else project.pk,
            own_issuer="" if project is None else project.public_id,
            user=user,
        )

    def subject(self, raw: dict[str, Any]) -> Subject:
        """The subject an item names, if this importer may write it."""
        type_ = str(raw.get("type", "") or "")
        id_ = str(raw.get("id") or raw.get("sub") or "")
        issuer = str(raw.get("issuer") or raw.get("iss") or "")
        if self.user is None:
            if type_ != SubjectType.USER:
                raise errors.Forbidden(
                    f"A deployment imports only user grants; {type_ or 'this'} grants serve "
                    "every linked project and are imported by a team member."
                )
            if issuer and issuer != self.own_issuer:
                raise errors.Forbidden(
                    "A deployment imports only its own users: leave issuer out (it defaults to "
                    "the project's id)."
                )
        if type_ == SubjectType.USER:
            if not issuer and not self.own_issuer:
                raise errors.InvalidRequest("Name the user's issuer, or import for a project.")
            issuer = issuer or self.own_issuer
        return Subject.parse(type=type_, id=id_, issuer=issuer)


def grants_import(
    *, importer: Importer, connector: Connector, items: list[dict[str, Any]]
) -> ImportResult:
    """Store existing tokens (a migration from elsewhere); each item succeeds or fails alone."""
    if connector.team_id != importer.team_id:
        raise errors.NotFound("No such connector.")
    if importer.user is not None and not role_allows(importer.user, connector.team_id, Role.MEMBER):
        raise errors.Forbidden("Importing grants takes the member role in the connector's team.")
    result = ImportResult(accepted=len(items))
    for item in items:
        echo = {k: v for k, v in item.items() if k not in ("accessToken", "refreshToken")}
        try:
            grant = _import_one(importer, connector, item)
        except errors.ConnectError as exc:
            result.items.append(ImportedGrant(grant=None, echo=echo, error=exc.message))
            continue
        result.imported += 1
        result.items.append(ImportedGrant(grant=grant, echo=echo))
    audit_record(
        team=connector.team_id,
        type="token.imported",
        actor=importer.user if importer.user is not None else importer.label,
        targets={"connectorId": connector.public_id},
        fields={"accepted": result.accepted, "imported": result.imported},
    )
    return result


def _millis(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.InvalidRequest(f"{name} must be epoch milliseconds.")
    return datetime.fromtimestamp(value / 1000, tz=timezone.get_current_timezone())


@transaction.atomic
def _import_one(importer: Importer, connector: Connector, item: dict[str, Any]) -> Grant:
    access_token = item.get("accessToken")
    if not isinstance(access_token, str) or not access_token:
        raise errors.InvalidRequest("accessToken is required.")
    raw_subject = item.get("subject") or {}
    if not isinstance(raw_subject, dict):
        raise errors.InvalidRequest("subject must be an object.")
    subject = importer.subject(raw_subject)
    installation_ref = item.get("installationId")
    installations = Installation.objects.filter(connector=connector, status="active")
    if installation_ref:
        installation = installations.filter(public_id=installation_ref).first()
    else:
        installation = installations.filter(is_default=True).first()
    if installation is None:
        raise errors.ConnectorInstallationRequired("No such installation for this connector.")
    scopes = item.get("scopes") or []
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise errors.InvalidRequest("scopes must be a list of strings.")
    grant, created = Grant.objects.select_for_update().get_or_create(
        installation=installation,
        subject_type=subject.type,
        subject_id=subject.id,
        issuer=subject.issuer,
        defaults={"project_id": importer.project_id},
    )
    taken = grant.status == GrantStatus.ACTIVE and grant.project_id != importer.project_id
    if not created and taken:
        # Whoever relies on this grant would silently receive the importer's token.
        raise errors.Forbidden(
            "An active grant for this subject belongs to another project (or to the team); "
            "it is not replaced by an import."
        )
    # A grant changing hands keeps no refresh token of its previous holder.
    new_holder = grant.project_id != importer.project_id
    grant.project_id = importer.project_id
    tokens = TokenSet(
        access_token=access_token,
        expires_at=_millis(item.get("expiresAt"), "expiresAt"),
        refresh_token=str(item.get("refreshToken") or "") or None,
        refresh_expires_at=_millis(item.get("refreshTokenExpiresAt"), "refreshTokenExpiresAt"),
        scopes=tuple(scopes),
    )
    # Only the expiry is given, not how long the token was granted for.
    grant.store_tokens(tokens, now=timezone.now(), lifetime_known=False, new_holder=new_holder)
    grant.save()
    return grant
