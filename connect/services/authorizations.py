"""Install and consent flows: our own single-use request row, PKCE, and the provider's callback.

allauth is not involved in the flow itself (no session state, no login, no SocialApp): the row
binds connector, team, subject and PKCE verifier, and the callback finds it by its state.
"""

import base64
import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from connect import errors
from connect.models import AuthorizationRequest, Connector, Grant, Installation
from connect.models.authorizations import AuthorizationKind, AuthorizationOutcome, verifier_digest
from connect.models.connectors import SINGLE_ACCOUNT_TYPES
from connect.models.installations import GrantStatus, SubjectType
from connect.providers import get_provider
from connect.providers.base import (
    AuthorizationDenied,
    AuthorizeRequest,
    CallbackRequest,
    InstallResult,
    Provider,
    ProviderError,
    ProviderUnavailable,
    TokenSet,
    Unsupported,
)
from connect.services.audit import Actor, audit_record
from connect.services.resolution import Subject
from connect.services.tokens import credentials_for

logger = logging.getLogger(__name__)

MAX_TTL = timedelta(hours=1)
POLL_INTERVAL_SECONDS = 1


class FlowError(Exception):
    """A flow cannot go on; the page says why, in words a tenant understands."""

    def __init__(self, title: str, detail: str, *, request: AuthorizationRequest | None = None):
        super().__init__(detail)
        self.title = title
        self.detail = detail
        self.request = request


@dataclass(frozen=True)
class StartedFlow:
    request: AuthorizationRequest
    verifier: str
    url: str


def redirect_uri() -> str:
    return f"{settings.PUBLIC_URL}/connect/callback"


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def return_url_allowed(connector: Connector, url: str) -> bool:
    """Only an exact origin the connector lists: the flow never becomes an open redirect."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    allowed = {origin_of(str(o)) for o in connector.allowed_return_origins or []}
    return origin_of(url) in allowed


def flow_provider(connector: Connector) -> Provider:
    provider = get_provider(connector.type)
    if provider is None or connector.type == "api-key":
        raise errors.InvalidRequest(f"{connector.type} connectors have no browser flow.")
    return provider


def _pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _flow_installation(
    connector: Connector, kind: str, installation_ref: str | None
) -> Installation | None:
    """The installation a consent is for (an install makes or finds its own)."""
    installations = Installation.objects.filter(connector=connector, status="active")
    if installation_ref:
        found = installations.filter(public_id=installation_ref).first()
        if found is None:
            raise errors.ConnectorInstallationRequired("No such installation of this connector.")
        return found
    if connector.type in SINGLE_ACCOUNT_TYPES:
        return installations.filter(is_default=True).first()
    if kind == AuthorizationKind.CONSENT:
        # Providers that name the tenant in the token answer (Slack, Linear, Microsoft) need
        # no installation up front; GitHub user tokens attach to the default one.
        return installations.filter(is_default=True).first()
    return None


def authorization_start(
    *,
    connector: Connector,
    kind: str,
    subject: Subject | None,
    scopes: tuple[str, ...] | None,
    return_url: str = "",
    expires_in: timedelta | None = None,
    tenant_hint: str = "",
    installation_ref: str | None = None,
    project_id: int | None = None,
    environment: str = "",
    actor: Actor = None,
) -> StartedFlow:
    """Create the single-use request and the link a tenant opens to install or consent."""
    flow_provider(connector)
    if return_url and not return_url_allowed(connector, return_url):
        raise errors.InvalidRequest(
            "returnUrl's origin is not among the connector's allowed return origins."
        )
    subject_type = subject.type if subject else SubjectType.APP
    if kind == AuthorizationKind.CONSENT and subject_type != SubjectType.USER:
        raise errors.InvalidRequest("A consent is for a user subject.")
    if scopes is None or tuple(scopes) == ("*",):
        scopes = tuple(connector.default_scopes.get(subject_type, []) or ())
    ttl = timedelta(seconds=settings.CONNECT_AUTHORIZATION_TTL_SECONDS)
    if expires_in is not None:
        if expires_in <= timedelta(0):
            raise errors.InvalidRequest("expiresInMs must be positive.")
        ttl = min(expires_in, MAX_TTL)
    verifier = "scv_" + secrets.token_urlsafe(32)
    request = AuthorizationRequest(
        kind=kind,
        connector=connector,
        project_id=project_id,
        environment=environment,
        subject_type=subject_type,
        subject_id=subject.id if subject else "",
        issuer=subject.issuer if subject else "",
        scopes=list(scopes),
        verifier_sha256=verifier_digest(verifier),
        state=secrets.token_urlsafe(32),
        return_url=return_url,
        tenant_hint=tenant_hint,
        installation=_flow_installation(connector, kind, installation_ref),
        expires_at=timezone.now() + ttl,
        created_by=actor if isinstance(actor, User) else None,
    )
    request.seal("pkce_verifier", secrets.token_urlsafe(64))
    request.save()
    audit_record(
        team=connector.team_id,
        type="authorization.started",
        actor=actor,
        targets={"connectorId": connector.public_id},
        correlation={"authorizationId": request.public_id},
        fields={"kind": kind},
    )
    url = f"{settings.PUBLIC_URL}/connect/install/{connector.public_id}?request={request.public_id}"
    return StartedFlow(request=request, verifier=verifier, url=url)


def authorization_page(*, connector_id: str, request_id: str) -> tuple[AuthorizationRequest, str]:
    """The pending request behind an install link, and the provider URL to continue to."""
    request = (
        AuthorizationRequest.objects.select_related("connector", "installation")
        .filter(public_id=request_id, connector__public_id=connector_id)
        .first()
    )
    if request is None:
        raise FlowError("This link is not valid", "Ask for a new install link.")
    if request.outcome != AuthorizationOutcome.PENDING or request.consumed_at is not None:
        raise FlowError(
            "This link was already used", "Ask for a new install link.", request=request
        )
    if request.expires_at <= timezone.now():
        raise FlowError("This link has expired", "Ask for a new install link.", request=request)
    provider = flow_provider(request.connector)
    url = provider.authorize_url(
        credentials_for(request.connector),
        AuthorizeRequest(
            kind=request.kind,
            subject_type=request.subject_type,
            scopes=list(request.scopes),
            redirect_uri=redirect_uri(),
            state=request.state,
            code_challenge=_pkce_challenge(request.reveal("pkce_verifier"))
            if provider.pkce
            else "",
            tenant_hint=request.tenant_hint
            or (request.installation.tenant_id if request.installation else ""),
        ),
    )
    return request, url


def _claim(state: str, now: datetime) -> AuthorizationRequest:
    """Find the request by its state and spend it: a state works exactly once."""
    request = (
        AuthorizationRequest.objects.select_related("connector", "installation")
        .filter(state=state)
        .first()
        if state
        else None
    )
    if request is None:
        raise FlowError(
            "We could not match this sign-in", "The link is unknown or was tampered with."
        )
    spent = AuthorizationRequest.objects.filter(
        pk=request.pk, consumed_at__isnull=True, outcome=AuthorizationOutcome.PENDING
    ).update(consumed_at=now)
    if not spent:
        raise FlowError(
            "This link was already used", "Start the installation again.", request=request
        )
    if request.expires_at <= now:
        _finish(request, AuthorizationOutcome.EXPIRED, "expired")
        raise FlowError("This link has expired", "Start the installation again.", request=request)
    return request


def _finish(request: AuthorizationRequest, outcome: str, error: str = "") -> None:
    AuthorizationRequest.objects.filter(pk=request.pk).update(outcome=outcome, error=error[:255])
    request.outcome, request.error = outcome, error
    audit_record(
        team=request.connector.team_id,
        type="authorization.completed" if outcome == "completed" else "authorization.failed",
        targets={"connectorId": request.connector.public_id},
        correlation={"authorizationId": request.public_id},
        fields={"outcome": outcome, "error": error[:255]},
    )


def _store_tokens(grant: Grant, tokens: TokenSet, *, external_subject: str, now: datetime) -> None:
    grant.seal("access_token", tokens.access_token)
    grant.seal("refresh_token", tokens.refresh_token or "")
    grant.access_expires_at = tokens.expires_at
    grant.refresh_expires_at = tokens.refresh_expires_at
    if tokens.scopes is not None:
        grant.scopes = list(tokens.scopes)
    if external_subject:
        grant.external_subject = external_subject
    grant.status = GrantStatus.ACTIVE
    grant.version += 1
    grant.updated_at = now
    grant.save()


@transaction.atomic
def _record(request: AuthorizationRequest, result: InstallResult, now: datetime) -> Installation:
    connector = request.connector
    created = False
    if result.tenant_id:
        installation, created = Installation.objects.select_for_update().get_or_create(
            connector=connector,
            tenant_id=result.tenant_id,
            defaults={"installed_by": request.created_by},
        )
    elif request.installation is not None:
        installation = Installation.objects.select_for_update().get(pk=request.installation.pk)
    else:
        raise FlowError(
            "The installation could not be completed",
            "The provider did not say which workspace or organization this is.",
            request=request,
        )
    installation.status = "active"
    installation.display_name = result.display_name or installation.display_name
    installation.metadata = {
        **installation.metadata,
        **{k: v for k, v in result.metadata.items() if v is not None},
    }
    if (
        not Installation.objects.filter(connector=connector, is_default=True)
        .exclude(pk=installation.pk)
        .exists()
    ):
        installation.is_default = True
    installation.updated_at = now
    installation.save()
    if result.app_tokens is not None:
        grant, _ = Grant.objects.select_for_update().get_or_create(
            installation=installation, subject_type=SubjectType.APP, subject_id="", issuer=""
        )
        _store_tokens(grant, result.app_tokens, external_subject="", now=now)
    if result.user_tokens is not None and request.subject_type == SubjectType.USER:
        grant, _ = Grant.objects.select_for_update().get_or_create(
            installation=installation,
            subject_type=SubjectType.USER,
            subject_id=request.subject_id,
            issuer=request.issuer,
            defaults={"project_id": request.project_id},  # whose consent made it
        )
        _store_tokens(grant, result.user_tokens, external_subject=result.external_subject, now=now)
    AuthorizationRequest.objects.filter(pk=request.pk).update(installation=installation)
    if created:
        audit_record(
            team=connector.team_id,
            type="installation.added",
            targets={"connectorId": connector.public_id, "installationId": installation.public_id},
            correlation={"authorizationId": request.public_id},
        )
    return installation


@dataclass(frozen=True)
class CompletedFlow:
    request: AuthorizationRequest
    installation: Installation
    redirect_to: str


def return_redirect(request: AuthorizationRequest, **params: str) -> str:
    if not request.return_url:
        return ""
    joiner = "&" if "?" in request.return_url else "?"
    return request.return_url + joiner + urlencode({"request": request.public_id, **params})


def _declined_detail(request: AuthorizationRequest, exc: AuthorizationDenied) -> str:
    """What the person who said no reads: what happened, that nothing changed, how to retry."""
    reason = str(exc)
    if request.kind == AuthorizationKind.INSTALL:
        outcome, again = "nothing was installed", "ask for a new install link"
    else:
        outcome, again = "nothing was shared", "start again from the app"
    return f"{reason[:1].upper()}{reason[1:]}, so {outcome}. To try again, {again}."


def authorization_complete(*, params: dict[str, str]) -> CompletedFlow:
    """The provider sent the tenant back: exchange, store, and say where to go next."""
    now = timezone.now()
    request = _claim(params.get("state", ""), now)
    provider = flow_provider(request.connector)
    callback = CallbackRequest(
        kind=request.kind,
        subject_type=request.subject_type,
        scopes=list(request.scopes),
        params=params,
        redirect_uri=redirect_uri(),
        code_verifier=request.reveal("pkce_verifier") if provider.pkce else "",
        tenant_id=request.installation.tenant_id if request.installation else "",
    )
    try:
        result = provider.complete(credentials_for(request.connector), callback, now=now)
    except AuthorizationDenied as exc:
        _finish(request, AuthorizationOutcome.DENIED, "access_denied")
        raise FlowError(
            "Authorization was declined", _declined_detail(request, exc), request=request
        ) from exc
    except (ProviderUnavailable, ProviderError, Unsupported) as exc:
        _finish(request, AuthorizationOutcome.FAILED, str(exc))
        raise FlowError(
            "The provider did not complete the authorization",
            f"{request.connector.name} could not finish it ({exc}). Ask for a new link and try "
            "again; if it keeps failing, tell the app's team.",
            request=request,
        ) from exc
    try:
        installation = _record(request, result, now)
    except FlowError as exc:
        _finish(request, AuthorizationOutcome.FAILED, exc.detail)
        raise
    _finish(request, AuthorizationOutcome.COMPLETED)
    return CompletedFlow(
        request=request,
        installation=installation,
        redirect_to=return_redirect(request, status="completed"),
    )


def authorization_result(*, team_id: int, verifier: str) -> AuthorizationRequest:
    """Polling by the verifier the start call returned; the codes of SPEC section 3."""
    request = (
        AuthorizationRequest.objects.select_related("connector", "installation")
        .filter(verifier_sha256=verifier_digest(verifier), connector__team_id=team_id)
        .first()
    )
    if request is None:
        raise errors.NotFound("No authorization request with this verifier.")
    if not cache.add(f"connect:poll:{request.pk}", 1, POLL_INTERVAL_SECONDS):
        raise errors.SlowDown("Poll at most once a second.")
    if request.outcome == AuthorizationOutcome.PENDING and request.expires_at <= timezone.now():
        _finish(request, AuthorizationOutcome.EXPIRED, "expired")
    outcome_errors: dict[str, Any] = {
        AuthorizationOutcome.PENDING: errors.AuthorizationPending("Not completed yet."),
        AuthorizationOutcome.DENIED: errors.AccessDenied("The authorization was declined."),
        AuthorizationOutcome.EXPIRED: errors.ExpiredToken("The authorization request expired."),
        AuthorizationOutcome.FAILED: errors.AccessDenied(
            request.error or "The authorization failed."
        ),
    }
    if request.outcome in outcome_errors:
        raise outcome_errors[request.outcome]
    return request


def authorization_requests_expire() -> int:
    """Mark pending flows past their deadline as expired; returns how many."""
    return AuthorizationRequest.objects.lapsed(timezone.now()).update(
        outcome=AuthorizationRequest.Outcome.EXPIRED
    )
