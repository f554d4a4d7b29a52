"""Revoking and importing grants through the runtime API."""

import fcntl
import logging
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, connections, transaction
from django.utils import timezone

from connect import errors, metrics
from connect.callers import Caller
from connect.kinds import Subject
from connect.models import AuditEvent, Connector, Grant, Installation, Project, Role
from connect.models.deliveries import LifecycleEventType
from connect.models.installations import GrantStatus, SubjectType
from connect.models.teams import role_allows
from connect.providers.base import (
    Provider,
    ProviderError,
    ProviderInvalidGrant,
    ProviderUnavailable,
    TokenRequest,
    TokenSet,
    Unsupported,
)
from connect.services import lifecycle, links
from connect.services.audit import actor_label, audit_record

logger = logging.getLogger(__name__)


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
    provider = connector.provider
    credentials = connector.provider_credentials()
    endpoints = connector.grant_endpoints_digest()
    now = timezone.now()

    def upstream(token: str, hint: str, grant: Grant) -> None:
        """Revoke one token at the provider where it may go, and count the outcome."""
        counts.tokens_found += 1
        # Tokens go only to the URLs they came from (see Grant.tokens_belong_to).
        if not token or not grant.tokens_belong_to(endpoints):
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
        token, hint = provider.revocable_token(access_token=access, refresh_token=refresh)
        if not token and not provider.static_token:
            continue
        upstream(token, hint, grant)
        with transaction.atomic():
            if grant.subject_type == SubjectType.USER:
                lifecycle.lifecycle_emit(
                    LifecycleEventType.GRANT_REVOKED, connector=connector, grant=grant, now=now
                )
                grant.delete()
                counts.deleted += 1
            elif token:
                grant.clear_tokens(now=now)
                grant.save()
                counts.deleted += 1
    audit_record(
        team=connector.team_id,
        type=AuditEvent.Type.TOKEN_REVOKED,
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
    #: A team API token importing (its role checked by the API): a member, without a user.
    by_token: bool = False

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
        return cls._for_team(team_id=team_id, label=actor_label(user), project=project, user=user)

    @classmethod
    def team_token(cls, *, team_id: int, label: str, project: Project | None = None) -> "Importer":
        """A team API token importing for the team, or for one of its projects' users; the
        API has checked its role (the member role, as for a user)."""
        return cls._for_team(team_id=team_id, label=label, project=project, by_token=True)

    @classmethod
    def _for_team(
        cls,
        *,
        team_id: int,
        label: str,
        project: Project | None,
        user: Any = None,
        by_token: bool = False,
    ) -> "Importer":
        if project is not None and project.team_id != team_id:
            raise errors.NotFound("No such project in this team.")
        return cls(
            team_id=team_id,
            label=label,
            project_id=None if project is None else project.pk,
            own_issuer="" if project is None else project.public_id,
            user=user,
            by_token=by_token,
        )

    def subject(self, raw: dict[str, Any]) -> Subject:
        """The subject an item names, if this importer may write it."""
        type_ = str(raw.get("type", "") or "")
        id_ = str(raw.get("id") or raw.get("sub") or "")
        issuer = str(raw.get("issuer") or raw.get("iss") or "")
        if self.user is None and not self.by_token:
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
        type=AuditEvent.Type.TOKEN_IMPORTED,
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
    installations = Installation.objects.filter(
        connector=connector, status=Installation.Status.ACTIVE
    )
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
    was = None if created else grant.status
    grant.store_tokens(tokens, now=timezone.now(), lifetime_known=False, new_holder=new_holder)
    grant.save()
    lifecycle.grant_tokens_stored(grant, connector=connector, was=was)
    return grant


# Refreshing ---------------------------------------------------------------------------------

#: Seconds a caller is told to wait when a provider did not answer in time.
PROVIDER_RETRY_AFTER = 5


@contextmanager
def _held(grant_id: int) -> Iterator[Grant]:
    """The grant, held against every other refresher of it until the block ends.

    PostgreSQL: its row lock, in a transaction that spans the provider call. SQLite has no row
    locks, and its write lock is the whole database, which must never wait on a provider: there
    a file lock serialises refreshers (SQLite is one machine), and each write is a statement of
    its own, committed at once.
    """
    if connection.features.has_select_for_update:
        with transaction.atomic():
            yield Grant.objects.select_for_update().get(pk=grant_id)
        return
    folder = Path(settings.VAR_DIR) / "locks"
    folder.mkdir(exist_ok=True)
    with open(folder / f"grant-{grant_id}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield Grant.objects.get(pk=grant_id)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _refreshed(
    grant: Grant,
    *,
    connector: Connector,
    provider: Provider,
    request: TokenRequest,
    rejected_version: int | None = None,
    force: bool = False,
) -> Grant | ProviderInvalidGrant:
    """With the grant held: leave a fresh token be, else ask the provider and store its answer.
    A token the provider refused (the grant still at ``rejected_version``) is never fresh.

    A dead refresh token marks the grant ``needs_reauth`` and comes back as the provider's
    error, for the caller to answer once that is committed.
    """
    now = timezone.now()
    if grant.status != GrantStatus.ACTIVE:
        raise errors.NoToken("The grant needs re-authorization.")
    if (
        not force
        and grant.version != rejected_version
        and grant.access_token_serves(request.scopes, now)
    ):
        return grant
    credentials = connector.provider_credentials()
    endpoints = connector.grant_endpoints_digest()
    try:
        if grant.has_secret("refresh_token"):
            if not grant.tokens_belong_to(endpoints):
                # The token endpoint changed since this refresh token was issued: whoever
                # changed it must not receive it. The subject authorizes again instead.
                raise ProviderInvalidGrant("the connector's token endpoint has changed")
            tokens = provider.refresh(credentials, grant.reveal("refresh_token"), request, now=now)
        elif grant.subject_type == SubjectType.JWT_BEARER and provider.jwt_bearer:
            settings_ = connector.config.get("jwtBearer", {})
            tokens = provider.mint_jwt_bearer_token(
                credentials,
                replace(request, subject_id=grant.subject_id),
                issuer=grant.issuer or str(settings_.get("iss", "")),
                audience=str(settings_.get("aud", "")),
                now=now,
            )
        elif grant.subject_type == SubjectType.APP and provider.mints_app_tokens:
            tokens = provider.mint_app_token(credentials, request, now=now)
            # The cached token answers what it was asked for as well as what came back:
            # a provider that grants less (or names ".default" by what it stands for)
            # would otherwise have every request mint anew.
            tokens = replace(
                tokens, scopes=tuple(dict.fromkeys((*request.scopes, *(tokens.scopes or ()))))
            )
        else:
            raise errors.NoToken("The token expired and there is no refresh token.")
    except ProviderInvalidGrant as exc:
        metrics.refresh_failed(exc, connector_type=connector.type)
        grant_mark_needs_reauth(grant, connector=connector, error=provider_error_text(exc), now=now)
        return exc
    except ProviderUnavailable as exc:
        metrics.refresh_failed(exc, connector_type=connector.type)
        raise provider_unavailable_error(exc, connector=connector, grant=grant) from exc
    except (Unsupported, ProviderError) as exc:
        metrics.refresh_failed(exc, connector_type=connector.type)
        raise errors.NoToken(str(exc), vendor=getattr(exc, "vendor", None) or None) from exc
    metrics.refresh_succeeded()
    seen = grant.version
    grant.store_tokens(tokens, now=now)
    grant.record_endpoints(endpoints)
    # Compare-and-swap on the version: a held grant always matches, but on SQLite a consent or
    # an import may have replaced the tokens during the call, and theirs are the newer.
    columns = {
        name: getattr(grant, name)
        for name in (*Grant.TOKEN_FIELDS, "endpoints_digest", "endpoints_version")
    }
    if not Grant.objects.filter(pk=grant.pk, version=seen).update(**columns):
        logger.warning("grant %s changed during its refresh; keeping the change", grant.public_id)
        return Grant.objects.get(pk=grant.pk)
    return grant


def provider_error_text(exc: ProviderError) -> str:
    """What the provider said, for the grant's record and its lifecycle event: its error code
    and description where it gave them, else the driver's message."""
    vendor = exc.vendor or {}
    parts = [str(vendor.get(k)) for k in ("error", "error_description") if vendor.get(k)]
    return (": ".join(parts) if parts else str(exc))[:500]


def grant_mark_needs_reauth(
    grant: Grant, *, connector: Connector, error: str, now: datetime
) -> None:
    """The grant's refresh token is dead: mark it and tell the app, in one transaction (the
    caller holds the grant, which is active, so this happens once per transition)."""
    with transaction.atomic():
        grant.status = GrantStatus.NEEDS_REAUTH
        grant.last_error = error[:500]
        grant.updated_at = now
        grant.save(update_fields=["status", "last_error", "updated_at"])
        lifecycle.lifecycle_emit(
            LifecycleEventType.GRANT_NEEDS_REAUTH,
            connector=connector,
            grant=grant,
            error=error,
            now=now,
        )


def _refresh(
    *,
    grant_id: int,
    connector: Connector,
    provider: Provider,
    request: TokenRequest,
    rejected_version: int | None = None,
) -> Grant:
    with _held(grant_id) as grant:
        outcome = _refreshed(
            grant,
            connector=connector,
            provider=provider,
            request=request,
            rejected_version=rejected_version,
        )
    if isinstance(outcome, Grant):
        return outcome
    audit_record(
        team=connector.team_id,
        type=AuditEvent.Type.GRANT_NEEDS_REAUTH,
        targets={"connectorId": connector.public_id, "grantId": grant.public_id},
    )
    raise errors.InvalidGrant(
        "The provider rejected the stored refresh token; the subject must authorize again.",
        vendor=outcome.vendor or None,
    )


#: Refreshes in flight in this process, by grant, scopes and the version refused (if any):
#: whoever asks for one that is running waits for it instead of starting another.
_FlightKey = tuple[int, tuple[str, ...], int | None]
_flights: dict[_FlightKey, "Future[Grant]"] = {}
_flights_guard = threading.Lock()


def _fly(
    key: _FlightKey,
    future: "Future[Grant]",
    *,
    connector: Connector,
    provider: Provider,
    request: TokenRequest,
) -> None:
    """A refresh on its own thread and database connection, run to the end whoever waits."""
    try:
        grant = _refresh(
            grant_id=key[0],
            connector=connector,
            provider=provider,
            request=request,
            rejected_version=key[2],
        )
    except BaseException as exc:
        # Whoever started this may have been answered already: the outcome is logged here
        # (a provider outage where it became the API's error, with its cause).
        if not isinstance(exc, errors.ConnectError):
            logger.exception("refresh of grant %s failed", key[0])
        elif not isinstance(exc, errors.ProviderUnavailable):
            logger.warning("refresh of grant %s ended in %s: %s", key[0], exc.code, exc)
        with _flights_guard:
            _flights.pop(key, None)
        future.set_exception(exc)
    else:
        with _flights_guard:
            _flights.pop(key, None)
        future.set_result(grant)
    finally:
        # Back to the pool: a thread's connection is never reused once the thread is gone.
        connections.close_all()


def _flight(
    grant_id: int,
    *,
    connector: Connector,
    provider: Provider,
    request: TokenRequest,
    rejected_version: int | None = None,
) -> tuple["Future[Grant]", bool]:
    """The refresh of this grant for these scopes, started unless one is in flight; and
    whether it was started now."""
    key = (grant_id, tuple(request.scopes), rejected_version)
    with _flights_guard:
        future = _flights.get(key)
        if future is not None:
            return future, False
        future = _flights[key] = Future()
    # Not a daemon: a process that is shutting down lets the refresh finish (gunicorn's
    # graceful timeout and the task's time limits allow for it, see the settings).
    thread = threading.Thread(
        target=_fly,
        args=(key, future),
        kwargs={"connector": connector, "provider": provider, "request": request},
        name=f"connect-refresh-{grant_id}",
    )
    try:
        thread.start()
    except RuntimeError:
        # No thread, no refresh: nobody may wait for this one.
        with _flights_guard:
            _flights.pop(key, None)
        raise
    return future, True


def grant_refresh_on_demand(
    *,
    grant_id: int,
    connector: Connector,
    provider: Provider,
    request: TokenRequest,
    wait: float | None,
    rejected_version: int | None = None,
) -> Grant:
    """Refresh (or re-mint) one grant's token: one provider call however many ask at once.

    The call runs on a thread of its own holding the grant (``_held``), so every process asks
    the provider at most once per expiry: whoever gets the grant second re-reads it and finds
    the token fresh. The caller waits ``wait`` seconds at most (``None``: to the end); then it
    is answered ``provider_unavailable`` while the refresh goes on, because a provider that
    rotates refresh tokens has already spent the old one, and presenting it again would make
    it revoke the whole grant. A dead refresh token marks the grant ``needs_reauth``,
    committed before answering ``invalid_grant``.

    ``rejected_version``: the provider refused the token of that version of the grant (a 401
    to a proxied call), so it is renewed even if it looks fresh, unless it has been already.
    """
    if connection.in_atomic_block:
        # Another connection could not see what this transaction has not committed; the
        # refresh runs here, inside it, and is committed with it.
        return _refresh(
            grant_id=grant_id,
            connector=connector,
            provider=provider,
            request=request,
            rejected_version=rejected_version,
        )
    if getattr(connection, "pool", None) is not None:
        # Hand the pooled connection back while waiting: the refresh thread needs one, and
        # would get none while every pooled connection serves a request waiting here.
        connection.close()
    deadline = None if wait is None else time.monotonic() + wait
    while True:
        future, started = _flight(
            grant_id,
            connector=connector,
            provider=provider,
            request=request,
            rejected_version=rejected_version,
        )
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not futures.wait([future], timeout=remaining).done:
            logger.warning(
                "provider_unavailable for grant %s of connector %s: no answer within %g s; "
                "its refresh goes on",
                grant_id,
                connector.public_id,
                wait,
            )
            raise errors.ProviderUnavailable(
                "The provider is slow to answer; the refresh goes on, try again shortly.",
                retry_after=PROVIDER_RETRY_AFTER,
            )
        grant = future.result()
        # A refresh joined late may have brought a token that is by now within its margin;
        # only what the provider has just answered this caller is handed out regardless.
        if started or grant.access_token_fresh(timezone.now()):
            return grant


def provider_unavailable_error(
    exc: ProviderUnavailable, *, connector: Connector, grant: Grant
) -> errors.ConnectError:
    """The API's answer to a provider that did not answer, its cause logged here, once.

    The caller is only told to try again, and Django's own line for the 502 names no cause; the
    provider's message does (``… unreachable: ConnectionError``, a status, the SSRF guard's
    reason), and holds no secret: the log handlers redact any URL's secret parameters.
    """
    logger.warning(
        "provider_unavailable for grant %s of connector %s: %s",
        grant.public_id,
        connector.public_id,
        exc,
    )
    return errors.ProviderUnavailable(
        "The provider did not answer; try again shortly.", retry_after=PROVIDER_RETRY_AFTER
    )


def grants_due_for_refresh(*, now: datetime | None = None) -> list[int]:
    """Grants with a refresh token whose access token is within its margin, as a request would
    find it; only those granted for more than two sweep periods. A shorter-lived token would
    be due at most sweeps, refreshed over and over whether anyone uses it or not; the requests
    that need it refresh it."""
    now = now or timezone.now()
    period = settings.CONNECT_REFRESH_SWEEP_SECONDS
    candidates = (
        Grant.objects.expiring_before(now + Grant.refresh_margin_for(None))
        .granted_for_longer_than(2 * period)
        .values_list("pk", "access_expires_at", "access_lifetime_seconds")
    )
    # The configured margin is the widest; each row's own, by the one rule requests use.
    return [
        pk
        for pk, expires_at, lifetime in candidates
        if expires_at < now + Grant.refresh_margin_for(lifetime)
    ]


def grant_refresh_now(*, grant: Grant) -> Grant:
    """Refresh (or re-mint) one grant now, fresh token or not: a credential check. Holds the
    grant like any refresh, so it never races a request's. A dead refresh token marks the grant
    ``needs_reauth`` and emits its lifecycle event (``invalid_grant``); the provider's other
    answers propagate as the API's errors, their cause chained."""
    connector = grant.installation.connector
    request = TokenRequest(scopes=tuple(grant.scopes or ()), tenant_id=grant.installation.tenant_id)
    with _held(grant.pk) as held:
        outcome = _refreshed(
            held, connector=connector, provider=connector.provider, request=request, force=True
        )
    if isinstance(outcome, Grant):
        return outcome
    raise errors.InvalidGrant(
        "The provider rejected the stored refresh token; the subject must authorize again.",
        vendor=outcome.vendor or None,
    ) from outcome


def grant_refresh_ahead(*, grant_id: int) -> bool:
    """Refresh one grant ahead of demand; False when it is gone or needs re-authorization.

    The sweeper's task calls this for each grant ``grants_due_for_refresh`` finds. A dead
    refresh token marks the grant ``needs_reauth`` (inside ``grant_refresh_on_demand``); a
    provider outage propagates so the task retries.
    """
    grant = (
        Grant.objects.select_related("installation__connector")
        .filter(pk=grant_id, status=GrantStatus.ACTIVE)
        .first()
    )
    if grant is None:
        return False
    connector = grant.installation.connector
    provider = connector.provider
    request = TokenRequest(scopes=tuple(grant.scopes or ()), tenant_id=grant.installation.tenant_id)
    try:
        grant_refresh_on_demand(
            grant_id=grant.pk, connector=connector, provider=provider, request=request, wait=None
        )
    except (errors.InvalidGrant, errors.NoToken) as exc:
        logger.info("grant %s not refreshed: %s", grant.public_id, exc.code)
        return False
    return True
