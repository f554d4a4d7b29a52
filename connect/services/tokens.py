"""Handing out provider tokens: resolve, check, refresh if needed, record, answer."""

import fcntl
import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent import futures
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, connections, transaction
from django.utils import timezone

from connect import crypto, errors, metrics
from connect.callers import Caller
from connect.kinds import Subject
from connect.models import (
    Connector,
    ConnectorType,
    Grant,
    Installation,
    MintedToken,
    TokenIssue,
)
from connect.models.installations import GrantStatus, SubjectType
from connect.providers import get_provider
from connect.providers.base import (
    Provider,
    ProviderError,
    ProviderInvalidGrant,
    ProviderUnavailable,
    ScopeRefused,
    TokenRequest,
    Unsupported,
)
from connect.providers.oauth import OAuthProvider
from connect.services import links, resolution
from connect.services.audit import audit_record
from connect.services.resolution import Candidate, Resolution

logger = logging.getLogger(__name__)

PROVIDER_RETRY_AFTER = 5


@dataclass(frozen=True)
class TokenAsk:
    subject: Subject
    installation_ref: str | None = None
    scopes: tuple[str, ...] | None = None  # None (or "*") means the connector's defaults
    resources: tuple[str, ...] = ()
    audience: tuple[str, ...] = ()
    authorization_details: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class IssuedToken:
    token: str = field(repr=False)
    issue: TokenIssue
    expires_at: datetime
    connector: Connector
    installation: Installation
    grant: Grant
    metadata: dict[str, Any] = field(default_factory=dict)


def _choose(resolved: Resolution, ask: TokenAsk) -> Candidate:
    candidates = resolved.candidates
    if ask.installation_ref is None and candidates:
        default = next((c for c in candidates if c.installation.is_default), None)
        if default is not None:
            return default
        if len(candidates) == 1:
            return candidates[0]
        raise errors.ConnectorInstallationRequired(
            "The connector has several installations and no default; pass installationId."
        )
    if candidates:
        return candidates[0]
    if ask.subject.type == SubjectType.USER and ask.installation_ref == "*":
        raise errors.UserAuthorizationRequired("The user has not authorized this connector.")
    raise errors.ConnectorInstallationRequired(
        "The connector has no matching installation; install it first."
    )


def _scopes(
    connector: Connector, grant: Grant, ask: TokenAsk, *, minted_on_demand: bool
) -> tuple[str, ...]:
    """The scopes to hand out: the defaults unless asked, never beyond what is allowed.

    App tokens minted on demand may carry any of the connector's app scopes; anything granted
    through consent may carry only what the grant holds. An empty allowance is unknown, and
    left to the provider.
    """
    if minted_on_demand:
        defaults = connector.default_scopes
        allowed = set(defaults.get(ask.subject.type) or defaults.get(SubjectType.APP) or ())
    else:
        allowed = set(grant.scopes or ())
    if ask.scopes is None or tuple(ask.scopes) == ("*",):
        requested = tuple(connector.default_scopes.get(ask.subject.type, []) or ())
        if allowed and not minted_on_demand:
            # "The defaults" of a grant the provider narrowed (or that predates new defaults)
            # mean what it holds of them, not an error.
            requested = tuple(s for s in requested if s in allowed) or tuple(grant.scopes)
    else:
        requested = tuple(dict.fromkeys(ask.scopes))
    beyond = [scope for scope in requested if scope not in allowed]
    if allowed and beyond:
        raise errors.InvalidScope(f"Scopes beyond the grant: {' '.join(beyond)}")
    return requested


def _fresh(grant: Grant, scopes: Sequence[str], now: datetime) -> bool:
    if grant.scopes and not set(scopes) <= set(grant.scopes):
        return False
    return grant.access_token_fresh(now)


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


def _renewed(
    grant: Grant, *, connector: Connector, provider: Provider, request: TokenRequest
) -> Grant | ProviderInvalidGrant:
    """With the grant held: leave a fresh token be, else ask the provider and store its answer.

    A dead refresh token marks the grant ``needs_reauth`` and comes back as the provider's
    error, for the caller to answer once that is committed.
    """
    now = timezone.now()
    if grant.status != GrantStatus.ACTIVE:
        raise errors.NoToken("The grant needs re-authorization.")
    if _fresh(grant, request.scopes, now):
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
        elif grant.subject_type == SubjectType.JWT_BEARER and isinstance(provider, OAuthProvider):
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
        grant.status = GrantStatus.NEEDS_REAUTH
        grant.updated_at = now
        grant.save(update_fields=["status", "updated_at"])
        return exc
    except ProviderUnavailable as exc:
        metrics.refresh_failed(exc, connector_type=connector.type)
        raise _unavailable(exc, connector=connector, grant=grant) from exc
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


def _renew(
    *, grant_id: int, connector: Connector, provider: Provider, request: TokenRequest
) -> Grant:
    with _held(grant_id) as grant:
        outcome = _renewed(grant, connector=connector, provider=provider, request=request)
    if isinstance(outcome, Grant):
        return outcome
    audit_record(
        team=connector.team_id,
        type="grant.needs_reauth",
        targets={"connectorId": connector.public_id, "grantId": grant.public_id},
    )
    raise errors.InvalidGrant(
        "The provider rejected the stored refresh token; the subject must authorize again.",
        vendor=outcome.vendor or None,
    )


#: Refreshes in flight in this process, by grant and scopes: whoever asks for one that is
#: running waits for it instead of starting another.
_flights: dict[tuple[int, tuple[str, ...]], "Future[Grant]"] = {}
_flights_guard = threading.Lock()


def _fly(
    key: tuple[int, tuple[str, ...]],
    future: "Future[Grant]",
    *,
    connector: Connector,
    provider: Provider,
    request: TokenRequest,
) -> None:
    """A refresh on its own thread and database connection, run to the end whoever waits."""
    try:
        grant = _renew(grant_id=key[0], connector=connector, provider=provider, request=request)
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
    grant_id: int, *, connector: Connector, provider: Provider, request: TokenRequest
) -> tuple["Future[Grant]", bool]:
    """The refresh of this grant for these scopes, started unless one is in flight; and
    whether it was started now."""
    key = (grant_id, tuple(request.scopes))
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


def grant_renew(
    *,
    grant_id: int,
    connector: Connector,
    provider: Provider,
    request: TokenRequest,
    wait: float | None,
) -> Grant:
    """Refresh (or re-mint) one grant's token: one provider call however many ask at once.

    The call runs on a thread of its own holding the grant (``_held``), so every process asks
    the provider at most once per expiry: whoever gets the grant second re-reads it and finds
    the token fresh. The caller waits ``wait`` seconds at most (``None``: to the end); then it
    is answered ``provider_unavailable`` while the refresh goes on, because a provider that
    rotates refresh tokens has already spent the old one, and presenting it again would make
    it revoke the whole grant. A dead refresh token marks the grant ``needs_reauth``,
    committed before answering ``invalid_grant``.
    """
    if connection.in_atomic_block:
        # Another connection could not see what this transaction has not committed; the
        # refresh runs here, inside it, and is committed with it.
        return _renew(grant_id=grant_id, connector=connector, provider=provider, request=request)
    if getattr(connection, "pool", None) is not None:
        # Hand the pooled connection back while waiting: the refresh thread needs one, and
        # would get none while every pooled connection serves a request waiting here.
        connection.close()
    deadline = None if wait is None else time.monotonic() + wait
    while True:
        future, started = _flight(grant_id, connector=connector, provider=provider, request=request)
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


def _unavailable(
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


@contextmanager
def _provider_errors(*, connector: Connector, grant: Grant) -> Iterator[None]:
    """Provider failures as the API's codes (a dead grant is handled where a grant is)."""
    try:
        yield
    except ProviderUnavailable as exc:
        metrics.provider_failed(exc, connector_type=connector.type)
        raise _unavailable(exc, connector=connector, grant=grant) from exc
    except ScopeRefused as exc:
        metrics.provider_failed(exc, connector_type=connector.type)
        raise errors.InvalidScope(str(exc), vendor=exc.vendor or None) from exc
    except (Unsupported, ProviderError) as exc:
        metrics.provider_failed(exc, connector_type=connector.type)
        raise errors.NoToken(str(exc), vendor=getattr(exc, "vendor", None) or None) from exc


def _distinct_app_token(
    grant: Grant, connector: Connector, provider: Provider, request: TokenRequest, now: datetime
) -> tuple[str, datetime | None]:
    """A token minted for exactly this request (GitHub down-scoping), kept per distinct request
    until it nears expiry (see ``MintedToken`` for why a table and not the cache)."""
    fingerprint = json.dumps(
        [
            grant.public_id,
            list(request.scopes),
            list(request.resources),
            list(request.audience),
            list(request.authorization_details),
        ],
        sort_keys=True,
    )
    digest = hashlib.sha256(fingerprint.encode()).hexdigest()
    margin = timedelta(seconds=settings.CONNECT_REFRESH_MARGIN_SECONDS)
    kept = MintedToken.objects.usable(digest, valid_after=now + margin).first()
    if kept is not None:
        try:
            return kept.reveal("access_token"), kept.expires_at
        except crypto.DecryptionError:
            # Sealed under a key no longer configured (removed before a rotation reached it):
            # a miss, minted again below, never an error for the caller.
            logger.warning("minted token %s no longer opens; minting again", kept.public_id)
    with _provider_errors(connector=connector, grant=grant):
        tokens = provider.mint_app_token(connector.provider_credentials(), request, now=now)
    if tokens.expires_at is not None and tokens.expires_at > now + margin:
        MintedToken.objects.keep(
            grant=grant,
            request_digest=digest,
            token=tokens.access_token,
            expires_at=tokens.expires_at,
            now=now,
        )
    return tokens.access_token, tokens.expires_at


def _asserted_grant(installation: Installation, ask: TokenAsk) -> Grant:
    grant, _ = Grant.objects.get_or_create(
        installation=installation,
        subject_type=SubjectType.JWT_BEARER,
        subject_id=ask.subject.id,
        issuer=ask.subject.issuer,
    )
    return grant


def _app_grant(installation: Installation) -> Grant:
    grant, _ = Grant.objects.get_or_create(
        installation=installation, subject_type=SubjectType.APP, subject_id="", issuer=""
    )
    return grant


def token_issue(*, caller: Caller, connector_ref: str, ask: TokenAsk) -> IssuedToken:
    resolved = links.link_check(
        caller=caller,
        resolved=resolution.resolve(
            team_id=caller.team_id,
            project_id=caller.project_id,
            connector_ref=connector_ref,
            subject=ask.subject,
            installation_ref=ask.installation_ref,
        ),
    )
    connector = resolved.connector
    if connector.type == ConnectorType.API_KEY and ask.subject.type != SubjectType.APP:
        raise errors.InvalidRequest("An api-key connector has only the app subject.")
    chosen = _choose(resolved, ask)
    installation, grant = chosen.installation, chosen.grant
    provider = get_provider(connector.type)
    mints = provider is not None and provider.mints_app_tokens
    asserted = ask.subject.type == SubjectType.JWT_BEARER
    if asserted and not (
        isinstance(provider, OAuthProvider) and connector.config.get("jwtBearer", {}).get("enabled")
    ):
        raise errors.InvalidRequest("This connector does not accept jwt-bearer subjects.")
    if grant is None:
        if ask.subject.type == SubjectType.USER:
            raise errors.UserAuthorizationRequired("The user has not authorized this connector.")
        if not mints:
            raise errors.ConnectorInstallationRequired("The installation has no app grant.")
        grant = _app_grant(installation) if not asserted else _asserted_grant(installation, ask)
    if grant.status != GrantStatus.ACTIVE:
        raise errors.NoToken(f"The grant is {grant.status}; the subject must authorize again.")
    scopes = _scopes(
        connector,
        grant,
        ask,
        minted_on_demand=mints and ask.subject.type in (SubjectType.APP, SubjectType.JWT_BEARER),
    )
    request = TokenRequest(
        scopes=scopes,
        resources=ask.resources,
        audience=ask.audience,
        authorization_details=ask.authorization_details,
        tenant_id=installation.tenant_id,
    )
    now = timezone.now()
    if ask.authorization_details and mints and ask.subject.type == SubjectType.APP:
        assert provider is not None
        token, expires_at = _distinct_app_token(grant, connector, provider, request, now)
    elif connector.type == ConnectorType.API_KEY:
        assert provider is not None
        if not connector.has_secret("api_key"):
            raise errors.NoToken("The connector has no API key set.")
        tokens = provider.mint_app_token(connector.provider_credentials(), request, now=now)
        token, expires_at = tokens.access_token, tokens.expires_at
    else:
        if not _fresh(grant, scopes, now):
            if provider is None:
                raise errors.NoToken(f"{connector.type} connectors cannot refresh tokens yet.")
            grant = grant_renew(
                grant_id=grant.pk,
                connector=connector,
                provider=provider,
                request=request,
                wait=settings.CONNECT_PROVIDER_WAIT_SECONDS,
            )
            grant.installation = installation
        token, expires_at = grant.reveal("access_token"), grant.access_expires_at
    if expires_at is None:
        expires_at = now + timedelta(hours=1)
    issue = TokenIssue.objects.record(
        TokenIssue(
            grant=grant,
            project_id=caller.project_id,
            environment=caller.environment,
            scopes=list(scopes),
            resources=list(ask.resources),
            authorization_details=list(ask.authorization_details),
            expires_at=expires_at,
            created_at=now,
        )
    )
    return IssuedToken(
        token=token,
        issue=issue,
        expires_at=expires_at,
        connector=connector,
        installation=installation,
        grant=grant,
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


def grant_refresh(*, grant_id: int) -> bool:
    """Refresh one grant ahead of demand; False when it is gone or needs re-authorization.

    A dead refresh token marks the grant ``needs_reauth`` (inside ``grant_renew``); a provider
    outage propagates so the task retries.
    """
    grant = (
        Grant.objects.select_related("installation__connector")
        .filter(pk=grant_id, status=GrantStatus.ACTIVE)
        .first()
    )
    if grant is None:
        return False
    connector = grant.installation.connector
    provider = get_provider(connector.type)
    if provider is None:
        return False
    request = TokenRequest(scopes=tuple(grant.scopes or ()), tenant_id=grant.installation.tenant_id)
    try:
        grant_renew(
            grant_id=grant.pk, connector=connector, provider=provider, request=request, wait=None
        )
    except (errors.InvalidGrant, errors.NoToken) as exc:
        logger.info("grant %s not refreshed: %s", grant.public_id, exc.code)
        return False
    return True
