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
from connect.models import AuditEvent, AuthorizationRequest, Connector, Grant, Installation
from connect.models.activity import ActivityKind
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
from connect.services import activity, installations
from connect.services.audit import Actor, audit_record
from connect.web_urls import UnsafeURL, check_web_url, is_web_url

logger = logging.getLogger(__name__)

MAX_TTL = timedelta(hours=1)
POLL_INTERVAL_SECONDS = 1
#: The error of a request whose install waits for an organization owner's approval.
APPROVAL_PENDING = "approval_pending"


class FlowError(Exception):
    """A flow cannot go on; the page says why, in words a tenant understands."""

    def __init__(self, title: str, detail: str, *, flow: AuthorizationRequest | None = None):
        super().__init__(detail)
        self.title = title
        self.detail = detail
        self.flow = flow


@dataclass(frozen=True)
class StartedFlow:
    flow: AuthorizationRequest
    verifier: str = field(repr=False)
    url: str


def redirect_uri() -> str:
    """The one callback URL every provider sends tenants back to."""
    return f"{settings.PUBLIC_URL}/connect/callback"


def origin_of(url: str) -> str:
    """A URL's scheme and host (with port), lowercased, to compare origins."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def return_url_allowed(connector: Connector, url: str) -> bool:
    """Only an exact origin the connector lists: the flow never becomes an open redirect."""
    if not is_web_url(url):
        return False
    allowed = {origin_of(str(o)) for o in connector.allowed_return_origins or []}
    return origin_of(url) in allowed


def flow_provider(connector: Connector) -> Provider:
    """The connector's driver, if its type has a browser flow; else InvalidRequest."""
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
    installations = Installation.objects.filter(
        connector=connector, status=Installation.Status.ACTIVE
    )
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
    if installation_ref and installation is not None:
        # Started for one tenant: the provider must prove that one (see _check_pinned).
        if tenant_hint and tenant_hint != installation.tenant_id:
            raise errors.InvalidRequest("tenantId is not the tenant of installationId.")
        tenant_hint = installation.tenant_id
    verifier = "scv_" + secrets.token_urlsafe(32)
    flow = AuthorizationRequest(
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
        expires_at=timezone.now() + ttl,
        created_by=actor if isinstance(actor, User) else None,
    )
    flow.seal("pkce_verifier", secrets.token_urlsafe(64))
    flow.save()
    audit_record(
        team=connector.team_id,
        type=AuditEvent.Type.AUTHORIZATION_STARTED,
        actor=actor,
        targets={"connectorId": connector.public_id},
        correlation={"authorizationId": flow.public_id},
        fields={"kind": kind},
    )
    url = f"{settings.PUBLIC_URL}/connect/install/{connector.public_id}?request={flow.public_id}"
    return StartedFlow(flow=flow, verifier=verifier, url=url)


def authorization_page(*, connector_id: str, request_id: str) -> tuple[AuthorizationRequest, str]:
    """The pending request behind an install link, and the provider URL to continue to."""
    flow = (
        AuthorizationRequest.objects.select_related("connector", "installation")
        .filter(public_id=request_id, connector__public_id=connector_id)
        .first()
    )
    if flow is None:
        raise FlowError("This link is not valid", "Ask for a new install link.")
    if flow.outcome != AuthorizationOutcome.PENDING or flow.consumed_at is not None:
        raise FlowError("This link was already used", "Ask for a new install link.", flow=flow)
    if flow.expires_at <= timezone.now():
        raise FlowError("This link has expired", "Ask for a new install link.", flow=flow)
    provider = flow_provider(flow.connector)
    url = provider.authorize_url(
        flow.connector.provider_credentials(),
        AuthorizeRequest(
            kind=flow.kind,
            subject_type=flow.subject_type,
            scopes=list(flow.scopes),
            redirect_uri=redirect_uri(),
            state=flow.state,
            code_challenge=_pkce_challenge(flow.reveal("pkce_verifier")) if provider.pkce else "",
            tenant_hint=flow.tenant_hint
            or (flow.installation.tenant_id if flow.installation else ""),
        ),
    )
    if not is_web_url(url):
        # Saved configuration is checked, but a page never links to what it cannot vouch for.
        raise FlowError(
            "This connector is misconfigured",
            "Its sign-in address is not a web address. Tell the app's team.",
            flow=flow,
        )
    return flow, url


def _claim(state: str, now: datetime) -> AuthorizationRequest:
    """Find the request by its state and spend it: a state works exactly once."""
    flow = (
        AuthorizationRequest.objects.select_related("connector", "installation")
        .filter(state=state)
        .first()
        if state
        else None
    )
    if flow is None:
        raise FlowError(
            "We could not match this sign-in", "The link is unknown or was tampered with."
        )
    spent = AuthorizationRequest.objects.filter(
        pk=flow.pk, consumed_at__isnull=True, outcome=AuthorizationOutcome.PENDING
    ).update(consumed_at=now)
    if not spent:
        raise FlowError("This link was already used", "Start the installation again.", flow=flow)
    if flow.expires_at <= now:
        _finish(flow, AuthorizationOutcome.EXPIRED, "expired")
        raise FlowError("This link has expired", "Start the installation again.", flow=flow)
    return flow


def _finish(flow: AuthorizationRequest, outcome: AuthorizationOutcome, error: str = "") -> None:
    AuthorizationRequest.objects.filter(pk=flow.pk).update(outcome=outcome, error=error[:255])
    flow.outcome, flow.error = outcome, error
    if flow.kind == AuthorizationKind.CONSENT:
        activity.activity_count(connector=flow.connector, kind=ActivityKind.CONSENT, label=outcome)
    audit_record(
        team=flow.connector.team_id,
        type=AuditEvent.Type.AUTHORIZATION_COMPLETED
        if outcome == AuthorizationOutcome.COMPLETED
        else AuditEvent.Type.AUTHORIZATION_FAILED,
        targets={"connectorId": flow.connector.public_id},
        correlation={"authorizationId": flow.public_id},
        fields={"outcome": outcome, "error": error[:255]},
    )


def _check_pinned(provider: Provider, flow: AuthorizationRequest, result: InstallResult) -> None:
    """A flow started for one tenant (``tenantId``, or an installation) completes only into
    the tenant the provider proved to be that one."""
    pinned = flow.tenant_hint
    if pinned and result.tenant_id and not provider.tenant_matches(pinned, result.tenant_id):
        raise FlowError(
            "This link is for another organization",
            "You signed in to a different workspace or organization than this link was made "
            "for, so nothing was installed. Sign in to the right one, or ask for a new link.",
            flow=flow,
        )


@transaction.atomic
def _record(flow: AuthorizationRequest, result: InstallResult, now: datetime) -> Installation:
    """Attach the flow to the tenant the provider proved. Without one (GitHub user tokens,
    single-account types) the flow keeps the installation its starter chose; drivers of
    multi-tenant providers raise TenantUnproven rather than return no tenant."""
    connector = flow.connector
    created = False
    if result.tenant_id:
        installation, created = Installation.objects.select_for_update().get_or_create(
            connector=connector,
            tenant_id=result.tenant_id,
            defaults={"installed_by": flow.created_by},
        )
    elif flow.installation is not None:
        installation = Installation.objects.select_for_update().get(pk=flow.installation.pk)
    else:
        raise FlowError(
            "The installation could not be completed",
            "The provider did not say which workspace or organization this is.",
            flow=flow,
        )
    installation.attach(display_name=result.display_name, metadata=result.metadata, now=now)
    if result.app_tokens is not None:
        grant, _ = Grant.objects.select_for_update().get_or_create(
            installation=installation, subject_type=SubjectType.APP, subject_id="", issuer=""
        )
        grant.store_tokens(result.app_tokens, now=now)
        grant.save()
    if result.user_tokens is not None and flow.subject_type == SubjectType.USER:
        grant, _ = Grant.objects.select_for_update().get_or_create(
            installation=installation,
            subject_type=SubjectType.USER,
            subject_id=flow.subject_id,
            issuer=flow.issuer,
            defaults={"project_id": flow.project_id},  # whose consent made it
        )
        grant.store_tokens(result.user_tokens, now=now, external_subject=result.external_subject)
        grant.save()
    AuthorizationRequest.objects.filter(pk=flow.pk).update(installation=installation)
    if created:
        activity.activity_count(connector=connector, kind=ActivityKind.INSTALL, label="added")
        audit_record(
            team=connector.team_id,
            type=AuditEvent.Type.INSTALLATION_ADDED,
            targets={"connectorId": connector.public_id, "installationId": installation.public_id},
            correlation={"authorizationId": flow.public_id},
        )
    return installation


@dataclass(frozen=True)
class CompletedFlow:
    flow: AuthorizationRequest
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


def return_redirect(flow: AuthorizationRequest, **params: str) -> str:
    """Where a finished flow sends the browser: its return URL with the flow's id and
    ``params`` added, or empty when it has none (or it is not a web URL)."""
    if not flow.return_url or not is_web_url(flow.return_url):
        return ""
    joiner = "&" if "?" in flow.return_url else "?"
    return flow.return_url + joiner + urlencode({"request": flow.public_id, **params})


def _declined_detail(flow: AuthorizationRequest, exc: AuthorizationDenied) -> str:
    """What the person who said no reads: what happened, that nothing changed, how to retry."""
    reason = str(exc)
    if flow.kind == AuthorizationKind.INSTALL:
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


def _refused(flow: AuthorizationRequest, exc: ProviderError) -> FlowError:
    """The page for a provider answer that attaches nothing; the flow is marked failed."""
    _finish(flow, AuthorizationOutcome.FAILED, str(exc))
    name = flow.connector.name
    installing = flow.kind == AuthorizationKind.INSTALL
    nothing = "nothing was installed" if installing else "nothing was shared"
    reason = f"{str(exc)[:1].upper()}{str(exc)[1:]}"
    if isinstance(exc, SetupRequired):
        return FlowError(
            f"{name} is not set up to finish this yet",
            f"{reason}. Until the app's team does this, {nothing}.",
            flow=flow,
        )
    if isinstance(exc, TenantUnproven):
        return FlowError(
            "We could not confirm your organization",
            f"{flow.connector.get_type_display()} did not confirm the organization this "
            f"sign-in names ({exc}), so {nothing}. Start again from a new link, signed in to "
            "an organization you manage.",
            flow=flow,
        )
    if isinstance(exc, IssuerMismatch):
        return FlowError(
            "This answer came from the wrong server",
            f"The sign-in did not come back from {name}'s own authorization server ({exc}), "
            f"so {nothing}. Start again from a new link.",
            flow=flow,
        )
    return FlowError(
        "The provider did not complete the authorization",
        f"{name} could not finish it ({exc}). Ask for a new link and try "
        "again; if it keeps failing, tell the app's team.",
        flow=flow,
    )


def _pending_approval(flow: AuthorizationRequest) -> FlowNotice:
    """The request stays pending (its state is spent): no installation exists until the
    provider announces it, and polling says so until the request lapses."""
    AuthorizationRequest.objects.filter(pk=flow.pk).update(error=APPROVAL_PENDING)
    audit_record(
        team=flow.connector.team_id,
        type=AuditEvent.Type.AUTHORIZATION_APPROVAL_REQUESTED,
        targets={"connectorId": flow.connector.public_id},
        correlation={"authorizationId": flow.public_id},
    )
    return FlowNotice(
        title="Waiting for an owner's approval",
        detail=(
            f"You asked to install {flow.connector.name}. An owner of the organization must "
            "approve the request on GitHub; the installation appears here once they do. "
            "Nothing else is needed from you, and you can close this window."
        ),
        connector=flow.connector,
        back_url=return_redirect(flow, status=AuthorizationOutcome.PENDING),
    )


def authorization_complete(*, params: dict[str, str]) -> CompletedFlow | FlowNotice:
    """The provider sent the tenant back: exchange, prove the tenant, store, and say where to
    go next. The tenant is the one the provider proves, never a query parameter alone."""
    if not params.get("state") and params.get("setup_action") in ("install", "update"):
        return _setup_without_state(params)
    now = timezone.now()
    flow = _claim(params.get("state", ""), now)
    provider = flow_provider(flow.connector)
    callback = CallbackRequest(
        kind=flow.kind,
        subject_type=flow.subject_type,
        scopes=list(flow.scopes),
        params=params,
        redirect_uri=redirect_uri(),
        code_verifier=flow.reveal("pkce_verifier") if provider.pkce else "",
        tenant_id=flow.installation.tenant_id if flow.installation else "",
        tenant_hint=flow.tenant_hint or (flow.installation.tenant_id if flow.installation else ""),
    )
    try:
        result = provider.complete(flow.connector.provider_credentials(), callback, now=now)
    except AuthorizationDenied as exc:
        _finish(flow, AuthorizationOutcome.DENIED, "access_denied")
        raise FlowError(
            "Authorization was declined", _declined_detail(flow, exc), flow=flow
        ) from exc
    except (ProviderUnavailable, ProviderError, Unsupported) as exc:
        metrics.provider_failed(exc, connector_type=flow.connector.type)
        raise _refused(flow, exc) from exc
    if result.pending_approval:
        return _pending_approval(flow)
    try:
        _check_pinned(provider, flow, result)
        installation = _record(flow, result, now)
    except FlowError as exc:
        _finish(flow, AuthorizationOutcome.FAILED, exc.detail)
        raise
    _finish(flow, AuthorizationOutcome.COMPLETED)
    return CompletedFlow(
        flow=flow,
        installation=installation,
        redirect_to=return_redirect(flow, status=AuthorizationOutcome.COMPLETED),
    )


def authorization_result(*, team_id: int, verifier: str) -> AuthorizationRequest:
    """Polling by the verifier the start call returned; the codes of SPEC section 3."""
    flow = (
        AuthorizationRequest.objects.select_related("connector", "installation")
        .filter(verifier_sha256=verifier_digest(verifier), connector__team_id=team_id)
        .first()
    )
    if flow is None:
        raise errors.NotFound("No authorization request with this verifier.")
    if not cache.add(f"connect:poll:{flow.pk}", 1, POLL_INTERVAL_SECONDS):
        raise errors.SlowDown("Poll at most once a second.")
    if flow.outcome == AuthorizationOutcome.PENDING and flow.expires_at <= timezone.now():
        _finish(flow, AuthorizationOutcome.EXPIRED, "expired")
    outcome_errors: dict[str, Any] = {
        AuthorizationOutcome.PENDING: errors.AuthorizationPending(
            "Waiting for an organization owner to approve the installation."
            if flow.error == APPROVAL_PENDING
            else "Not completed yet."
        ),
        AuthorizationOutcome.DENIED: errors.AccessDenied("The authorization was declined."),
        AuthorizationOutcome.EXPIRED: errors.ExpiredToken("The authorization request expired."),
        AuthorizationOutcome.FAILED: errors.AccessDenied(flow.error or "The authorization failed."),
    }
    if flow.outcome in outcome_errors:
        raise outcome_errors[flow.outcome]
    return flow


def authorization_requests_expire() -> int:
    """Mark pending flows past their deadline as expired; returns how many."""
    return AuthorizationRequest.objects.lapsed(timezone.now()).update(
        outcome=AuthorizationRequest.Outcome.EXPIRED
    )
