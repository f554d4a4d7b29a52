"""Handing out provider tokens: resolve, check, refresh if needed, record, answer."""

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from connect import crypto, errors, generations, issue_writer, local_caches, metrics
from connect.callers import Caller
from connect.kinds import Subject
from connect.models import (
    Connector,
    Grant,
    Installation,
    MintedToken,
    TokenIssue,
)
from connect.models.deliveries import LifecycleEventType
from connect.models.installations import GrantStatus, SubjectType
from connect.providers.base import (
    Provider,
    ProviderError,
    ProviderUnavailable,
    ScopeRefused,
    TokenRequest,
    Unsupported,
)
from connect.services import grants, lifecycle, links, resolution
from connect.services.resolution import Candidate, Resolution

logger = logging.getLogger(__name__)


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


@contextmanager
def _provider_errors(*, connector: Connector, grant: Grant) -> Iterator[None]:
    """Provider failures as the API's codes (a dead grant is handled where a grant is)."""
    try:
        yield
    except ProviderUnavailable as exc:
        metrics.provider_failed(exc, connector_type=connector.type)
        raise grants.provider_unavailable_error(exc, connector=connector, grant=grant) from exc
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


def _grant_for(installation: Installation, **subject: Any) -> Grant:
    """The grant a minted token is cached on; made (and announced) on first use."""
    grant = Grant.objects.filter(installation=installation, **subject).first()
    if grant is not None:
        return grant
    with transaction.atomic():
        grant, created = Grant.objects.get_or_create(installation=installation, **subject)
        if created:
            lifecycle.lifecycle_emit(
                LifecycleEventType.GRANT_CREATED,
                connector=installation.connector,
                installation=installation,
                grant=grant,
            )
    return grant


def _asserted_grant(installation: Installation, ask: TokenAsk) -> Grant:
    return _grant_for(
        installation,
        subject_type=SubjectType.JWT_BEARER,
        subject_id=ask.subject.id,
        issuer=ask.subject.issuer,
    )


def _app_grant(installation: Installation) -> Grant:
    return _grant_for(installation, subject_type=SubjectType.APP, subject_id="", issuer="")


@dataclass(frozen=True)
class GrantChoice:
    """What a token request resolved to, before any token is obtained: the linked connector,
    its installation, the grant that holds (or will hold) the subject's token, the driver, and
    the provider request with the scopes that may be handed out."""

    connector: Connector
    installation: Installation
    grant: Grant
    provider: Provider
    request: TokenRequest
    #: The driver mints app tokens on demand (GitHub Apps, client credentials, jwt-bearer).
    mints: bool


@dataclass(frozen=True)
class ObtainedToken:
    token: str = field(repr=False)
    expires_at: datetime
    #: The grant as it stands after the token was obtained (refreshed, if it had to be).
    grant: Grant


def grant_choose(*, caller: Caller, connector_ref: str, ask: TokenAsk) -> GrantChoice:
    """Choose the grant a token request is answered from, calling no provider.

    Checks the caller's link to the connector, the subject against the connector, picks the
    installation (``installationId``, else the default, else the only one), and the grant:
    the subject's own; for app and jwt-bearer subjects of drivers that mint on demand, one is
    created empty. Works out the scopes to ask for, never beyond what the grant allows.
    Raises the API's errors (``not_found``, ``user_authorization_required``, ``invalid_scope``
    …). ``token_obtain`` then turns the choice into a token.
    """
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
    provider = connector.provider
    asserted = ask.subject.type == SubjectType.JWT_BEARER
    if not asserted and ask.subject.type not in provider.subject_types:
        only = " and ".join(sorted(provider.subject_types))
        raise errors.InvalidRequest(
            f"An {provider.wire_name} connector has only the {only} subject."
        )
    chosen = _choose(resolved, ask)
    installation, grant = chosen.installation, chosen.grant
    mints = provider.mints_app_tokens
    if asserted and not (
        provider.jwt_bearer and connector.config.get("jwtBearer", {}).get("enabled")
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
    return GrantChoice(
        connector=connector,
        installation=installation,
        grant=grant,
        provider=provider,
        request=request,
        mints=mints,
    )


def token_obtain(*, choice: GrantChoice, now: datetime) -> ObtainedToken:
    """The token a ``grant_choose`` choice stands for: the stored one while it serves the
    request, else refreshed or minted (one provider call per grant however many ask, see
    ``grants.grant_refresh_on_demand``); a token for exactly the request where the request
    narrows an app token (``authorizationDetails``); an API key as it is. An unknown expiry is
    given as an hour from ``now``. Records nothing: ``token_issue`` records what it hands out.
    """
    connector, grant, provider, request = (
        choice.connector,
        choice.grant,
        choice.provider,
        choice.request,
    )
    if request.authorization_details and choice.mints and grant.subject_type == SubjectType.APP:
        token, expires_at = _distinct_app_token(grant, connector, provider, request, now)
    elif provider.static_token:
        if not connector.has_secret("api_key"):
            raise errors.NoToken("The connector has no API key set.")
        tokens = provider.mint_app_token(connector.provider_credentials(), request, now=now)
        token, expires_at = tokens.access_token, tokens.expires_at
    else:
        if not grant.access_token_serves(request.scopes, now):
            grant = grants.grant_refresh_on_demand(
                grant_id=grant.pk,
                connector=connector,
                provider=provider,
                request=request,
                wait=settings.CONNECT_PROVIDER_WAIT_SECONDS,
            )
            grant.installation = choice.installation
        token, expires_at = grant.reveal("access_token"), grant.access_expires_at
    if expires_at is None:
        expires_at = now + timedelta(hours=1)
    return ObtainedToken(token=token, expires_at=expires_at, grant=grant)


@dataclass(frozen=True)
class _Answered:
    """A resolution kept by this process: the choice and, unless the driver hands out a
    static key, the token obtained for it."""

    choice: GrantChoice
    obtained: ObtainedToken | None


#: Static keys (``api-key``) are kept this long at most; connector changes are pushed sooner.
STATIC_SECONDS = 600.0


def _remembered(
    caller: Caller, connector_ref: str, ask: TokenAsk, now: datetime
) -> tuple[GrantChoice, ObtainedToken]:
    """``grant_choose`` and ``token_obtain`` through this process's cache: kept until a
    generation of the caller's team or of the connector moves, and never a token within the
    refresh margin of its expiry."""
    cache = local_caches.cache("resolutions")
    key = (
        caller.team_id,
        caller.project_id,
        caller.environment,
        connector_ref,
        ask.subject,
        ask.installation_ref,
        ask.scopes,
        ask.resources,
        ask.audience,
    )
    margin = timedelta(seconds=settings.CONNECT_REFRESH_MARGIN_SECONDS)
    found = cache.get(key, now.timestamp())
    if isinstance(found, _Answered):
        if found.obtained is None:
            return found.choice, token_obtain(choice=found.choice, now=now)
        if found.obtained.expires_at > now + margin:
            return found.choice, found.obtained
        cache.drop(key)
    epoch = generations.epoch()
    choice = grant_choose(caller=caller, connector_ref=connector_ref, ask=ask)
    obtained = token_obtain(choice=choice, now=now)
    if choice.provider.static_token:
        kept, until = _Answered(choice=choice, obtained=None), time.time() + STATIC_SECONDS
    elif choice.grant.access_token_serves(choice.request.scopes, now):
        kept, until = (
            _Answered(choice=choice, obtained=obtained),
            (obtained.expires_at - margin).timestamp(),
        )
    else:
        return choice, obtained
    cache.put(
        key,
        kept,
        scopes=(f"t:{caller.team_id}", f"c:{choice.connector.pk}"),
        epoch=epoch,
        expires_at=until,
    )
    return choice, obtained


def token_issue(*, caller: Caller, connector_ref: str, ask: TokenAsk) -> IssuedToken:
    """Answer a runtime token request: choose the grant (``grant_choose``), obtain its token
    (``token_obtain``), and record what was handed out to whom (a ``TokenIssue``, written by
    ``connect.issue_writer``). With ``CONNECT_LOCAL_CACHES`` the first two come from this
    process's cache while no generation they depend on moved (README, "Benchmarks");
    requests with ``authorizationDetails`` are always answered afresh."""
    now = timezone.now()
    if local_caches.enabled() and not ask.authorization_details:
        choice, obtained = _remembered(caller, connector_ref, ask, now)
    else:
        choice = grant_choose(caller=caller, connector_ref=connector_ref, ask=ask)
        now = timezone.now()
        obtained = token_obtain(choice=choice, now=now)
    issue = issue_writer.record(
        TokenIssue(
            team_id=choice.connector.team_id,
            grant=obtained.grant,
            project_id=caller.project_id,
            environment=caller.environment,
            scopes=list(choice.request.scopes),
            resources=list(ask.resources),
            authorization_details=list(ask.authorization_details),
            expires_at=obtained.expires_at,
            created_at=now,
        )
    )
    return IssuedToken(
        token=obtained.token,
        issue=issue,
        expires_at=obtained.expires_at,
        connector=choice.connector,
        installation=choice.installation,
        grant=obtained.grant,
    )
