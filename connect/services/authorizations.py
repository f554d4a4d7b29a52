"""Install and consent flows: our own single-use request row, PKCE, and the provider's callback.

allauth is not involved in the flow itself (no session state, no login, no SocialApp): the row
binds connector, team, subject and PKCE verifier, and the callback finds it by its state.
"""

import base64
import hashlib
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from connect import errors, metrics
from connect.kinds import Subject
from connect.models import AuthorizationRequest, Connector, Grant, Installation
from connect.models.authorizations import AuthorizationKind, AuthorizationOutcome, verifier_digest
from connect.models.installations import SubjectType
from connect.providers.base import (
    AuthorizationDenied,
    AuthorizeRequest,
    CallbackRequest,
    InstallResult,
    IssuerMismatch,
    Provider,
    ProviderError,
    ProviderUnavailable,
    SetupRequired,
    TenantUnproven,
    Unsupported,
)
from connect.providers.github import GitHubProvider
from connect.services import installations, lifecycle
from connect.services.audit import Actor, audit_record
from connect.web_urls import UnsafeURL, check_web_url, is_web_url

logger = logging.getLogger(__name__)

MAX_TTL = timedelta(hours=1)
POLL_INTERVAL_SECONDS = 1
#: The error of a request whose install waits for an organization owner's approval.
APPROVAL_PENDING = "approval_pending"


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
    verifier: str = field(repr=False)
    url: str


def redirect_uri() -> str:
    return f"{settings.PUBLIC_URL}/connect/callback"


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def return_url_allowed(connector: Connector, url: str) -> bool:
    """Only an exact origin the connector lists: the flow never becomes an open redirect."""
    if not is_web_url(url):
        return False
    allowed = {origin_of(str(o)) for o in connector.allowed_return_origins or []}
    return origin_of(url) in allowed


def flow_provider(connector: Connector) -> Provider:
    provider = connector.provider
    if not provider.browser_flow:
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
    if connector.is_single_account:
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
    if return_url:
        try:
            check_web_url(return_url)
        except UnsafeURL as exc:
            raise errors.InvalidRequest(f"returnUrl {exc}.") from exc
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
    installation = _flow_installation(connector, kind, installation_ref)
    reconnect: Grant | None = None
    if installation_ref and installation is not None:
        # Started for one tenant: the provider must prove that one (see _check_pinned).
        if tenant_hint and tenant_hint != installation.tenant_id:
            raise errors.InvalidRequest("tenantId is not the tenant of installationId.")
        tenant_hint = installation.tenant_id
        # An existing grant of that installation for this subject: reconnected in place, its
        # ids kept, and only by the account it was made with (see _record).
        reconnect = Grant.objects.filter(
            installation=installation,
            subject_type=subject_type,
            subject_id=subject.id if subject else "",
            issuer=subject.issuer if subject else "",
        ).first()
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
        installation=installation,
        reconnect_grant=reconnect,
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
        fields={"kind": kind, **({"reconnectGrantId": reconnect.public_id} if reconnect else {})},
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
        request.connector.provider_credentials(),
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
    if not is_web_url(url):
        # Saved configuration is checked, but a page never links to what it cannot vouch for.
        raise FlowError(
            "This connector is misconfigured",
            "Its sign-in address is not a web address. Tell the app's team.",
            request=request,
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


def _check_pinned(provider: Provider, request: AuthorizationRequest, result: InstallResult) -> None:
    """A flow started for one tenant (``tenantId``, or an installation) completes only into
    the tenant the provider proved to be that one."""
    pinned = request.tenant_hint
    if pinned and result.tenant_id and not provider.tenant_matches(pinned, result.tenant_id):
        raise FlowError(
            "This link is for another organization",
            "You signed in to a different workspace or organization than this link was made "
            "for, so nothing was installed. Sign in to the right one, or ask for a new link.",
            request=request,
        )


def _different_account(request: AuthorizationRequest, what: str) -> FlowError:
    return FlowError(
        "This is a different account",
        f"This link reconnects an existing connection to {request.connector.name}, but you "
        f"signed in as {what} than the one it was made with, so nothing was changed. Sign in "
        "with the account the connection was made with (sign out at the provider first if "
        "it signed you in automatically), or ask the app's team for a new connection instead.",
        request=request,
    )


def _check_reconnect(
    request: AuthorizationRequest, installation: Installation, result: InstallResult
) -> None:
    """A reconnect completes only into the installation it was made for: the provider must
    prove the same tenant (a reconnect is always pinned to it, see ``authorization_start``)."""
    if request.reconnect_grant_id is None:
        return
    if request.installation_id is not None and installation.pk != request.installation_id:
        raise _different_account(request, "a different workspace or organization")


@transaction.atomic
def _record(request: AuthorizationRequest, result: InstallResult, now: datetime) -> Installation:
    """Attach the flow to the tenant the provider proved. Without one (GitHub user tokens,
    single-account types) the flow keeps the installation its starter chose; drivers of
    multi-tenant providers raise TenantUnproven rather than return no tenant."""
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
    _check_reconnect(request, installation, result)
    was_status = None if created else installation.status
    installation.attach(display_name=result.display_name, metadata=result.metadata, now=now)
    lifecycle.installation_attached(
        installation, connector=connector, created=created, was=was_status
    )
    if result.app_tokens is not None:
        grant, made = Grant.objects.select_for_update().get_or_create(
            installation=installation, subject_type=SubjectType.APP, subject_id="", issuer=""
        )
        was = None if made else grant.status
        grant.store_tokens(result.app_tokens, now=now)
        grant.save()
        lifecycle.grant_tokens_stored(grant, connector=connector, was=was)
    if result.user_tokens is not None and request.subject_type == SubjectType.USER:
        grant, made = Grant.objects.select_for_update().get_or_create(
            installation=installation,
            subject_type=SubjectType.USER,
            subject_id=request.subject_id,
            issuer=request.issuer,
            defaults={"project_id": request.project_id},  # whose consent made it
        )
        if request.reconnect_grant_id is not None and grant.pk != request.reconnect_grant_id:
            raise _different_account(request, "a different user")
        if (
            request.reconnect_grant_id is not None
            and grant.external_subject
            and result.external_subject
            and result.external_subject != grant.external_subject
        ):
            raise _different_account(request, "a different account")
        was = None if made else grant.status
        grant.store_tokens(result.user_tokens, now=now, external_subject=result.external_subject)
        grant.save()
        lifecycle.grant_tokens_stored(grant, connector=connector, was=was)
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


@dataclass(frozen=True)
class FlowNotice:
    """A callback that ends without attaching anything, and not in error: an install waiting
    for an owner's approval, or a change made at the provider."""

    title: str
    detail: str
    connector: Connector | None = None
    back_url: str = ""


def return_redirect(request: AuthorizationRequest, **params: str) -> str:
    if not request.return_url or not is_web_url(request.return_url):
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


def _setup_without_state(params: dict[str, str]) -> FlowNotice:
    """GitHub sends people back without our state after changing an installation ("Redirect
    on update") or approving a requested one. Its installation_id proves nothing, so nothing
    is attached: an approved install arrives by GitHub's signed webhook, and an update only
    refreshes, from GitHub itself, an installation that already exists."""
    installation_id = params.get("installation_id", "")
    if params.get("setup_action") == "install":
        return FlowNotice(
            title="Installed on GitHub",
            detail="The app learns of the installation from GitHub directly. There is nothing "
            "more to do here; you can close this window.",
        )
    if installation_id.isdigit():
        installations.installations_refresh(
            connector_type=GitHubProvider.key, tenant_id=installation_id
        )
    return FlowNotice(
        title="Your changes are saved on GitHub",
        detail="There is nothing more to do here. You can close this window.",
    )


def _refused(request: AuthorizationRequest, exc: ProviderError) -> FlowError:
    """The page for a provider answer that attaches nothing; the flow is marked failed."""
    _finish(request, AuthorizationOutcome.FAILED, str(exc))
    name = request.connector.name
    installing = request.kind == AuthorizationKind.INSTALL
    nothing = "nothing was installed" if installing else "nothing was shared"
    reason = f"{str(exc)[:1].upper()}{str(exc)[1:]}"
    if isinstance(exc, SetupRequired):
        return FlowError(
            f"{name} is not set up to finish this yet",
            f"{reason}. Until the app's team does this, {nothing}.",
            request=request,
        )
    if isinstance(exc, TenantUnproven):
        return FlowError(
            "We could not confirm your organization",
            f"{request.connector.get_type_display()} did not confirm the organization this "
            f"sign-in names ({exc}), so {nothing}. Start again from a new link, signed in to "
            "an organization you manage.",
            request=request,
        )
    if isinstance(exc, IssuerMismatch):
        return FlowError(
            "This answer came from the wrong server",
            f"The sign-in did not come back from {name}'s own authorization server ({exc}), "
            f"so {nothing}. Start again from a new link.",
            request=request,
        )
    return FlowError(
        "The provider did not complete the authorization",
        f"{name} could not finish it ({exc}). Ask for a new link and try "
        "again; if it keeps failing, tell the app's team.",
        request=request,
    )


def _pending_approval(request: AuthorizationRequest) -> FlowNotice:
    """The request stays pending (its state is spent): no installation exists until the
    provider announces it, and polling says so until the request lapses."""
    AuthorizationRequest.objects.filter(pk=request.pk).update(error=APPROVAL_PENDING)
    audit_record(
        team=request.connector.team_id,
        type="authorization.approval_requested",
        targets={"connectorId": request.connector.public_id},
        correlation={"authorizationId": request.public_id},
    )
    return FlowNotice(
        title="Waiting for an owner's approval",
        detail=(
            f"You asked to install {request.connector.name}. An owner of the organization must "
            "approve the request on GitHub; the installation appears here once they do. "
            "Nothing else is needed from you, and you can close this window."
        ),
        connector=request.connector,
        back_url=return_redirect(request, status="pending"),
    )


def authorization_complete(*, params: dict[str, str]) -> CompletedFlow | FlowNotice:
    """The provider sent the tenant back: exchange, prove the tenant, store, and say where to
    go next. The tenant is the one the provider proves, never a query parameter alone."""
    if not params.get("state") and params.get("setup_action") in ("install", "update"):
        return _setup_without_state(params)
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
        tenant_hint=request.tenant_hint
        or (request.installation.tenant_id if request.installation else ""),
    )
    try:
        result = provider.complete(request.connector.provider_credentials(), callback, now=now)
    except AuthorizationDenied as exc:
        _finish(request, AuthorizationOutcome.DENIED, "access_denied")
        raise FlowError(
            "Authorization was declined", _declined_detail(request, exc), request=request
        ) from exc
    except (ProviderUnavailable, ProviderError, Unsupported) as exc:
        metrics.provider_failed(exc, connector_type=request.connector.type)
        raise _refused(request, exc) from exc
    if result.pending_approval:
        return _pending_approval(request)
    try:
        _check_pinned(provider, request, result)
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
        AuthorizationOutcome.PENDING: errors.AuthorizationPending(
            "Waiting for an organization owner to approve the installation."
            if request.error == APPROVAL_PENDING
            else "Not completed yet."
        ),
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
