"""Credential checks ahead of users: a broken connection is found by beat, not by a request.

What is checked:

- grants with a refresh token that has not been used for ``CONNECT_KEEPALIVE_AFTER`` seconds
  are refreshed (providers that expire idle refresh tokens keep them alive);
- app grants of types that mint their own tokens (client credentials, app installations)
  mint one, which proves the connector's secret;
- API-key connectors with a ``verifyUrl`` in their configuration call it with the key.

Only ``invalid_grant``, ``invalid_client`` or a 401 count as failures: a dead refresh token
marks its grant ``needs_reauth``, a refused secret marks the connector, each with its lifecycle
event, and a later success on the connector emits ``connector.secret_recovered``. A provider
that is down, slow or rate-limiting (5xx, timeouts, 429 with its ``Retry-After``) puts the
check off without marking anything.

When a check is due lives in the rows (``next_check_at``), never in broker countdowns; each run
claims a bounded batch under a lease (``SELECT … FOR UPDATE SKIP LOCKED``), so however many
workers run, one check per grant is in flight. Unscheduled rows are spread at random over
their connector's period, so a thousand new grants are not all checked in the same minute.
"""

import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from connect import errors, http
from connect.models import Connector, Grant
from connect.models.deliveries import LifecycleEventType
from connect.models.installations import GrantStatus, InstallationStatus, SubjectType
from connect.providers import PROVIDERS
from connect.providers.api_key import ApiKeyProvider
from connect.providers.base import ProviderError
from connect.services import deliveries, grants, lifecycle

logger = logging.getLogger(__name__)

#: The refusals that mean the credential is dead; everything else is not ours to judge.
DEAD_SECRET_ERRORS = frozenset({"invalid_client", "unauthorized_client"})
VERIFY_TIMEOUT = 10.0

OK = "ok"
SKIPPED = "skipped"
GRANT_FAILED = "grant_failed"
SECRET_FAILED = "secret_failed"
BACKED_OFF = "backed_off"
OTHER_ERROR = "error"


def _minting_types() -> list[str]:
    return [k for k, p in PROVIDERS.items() if p.mints_app_tokens and not p.static_token]


def checkable_grants() -> QuerySet[Grant]:
    """Active grants a check can prove: a refresh token to keep alive, or an app grant whose
    type mints its own tokens."""
    app_mints = Q(
        subject_type=SubjectType.APP,
        installation__connector__type__in=_minting_types(),
        installation__status=InstallationStatus.ACTIVE,
    )
    return Grant.objects.filter(status=GrantStatus.ACTIVE).filter(
        ~Q(refresh_token_sealed="") | app_mints
    )


def checkable_connectors() -> QuerySet[Connector]:
    """API-key connectors that name a URL to check their key with."""
    return Connector.objects.filter(type=ApiKeyProvider.key).exclude(config__verifyUrl=None)


def _spread(interval: int, now: datetime) -> datetime:
    return now + timedelta(seconds=random.uniform(0, interval))  # noqa: S311


def _next(interval: int, now: datetime) -> datetime:
    """A period on, give or take a tenth, so checks made together drift apart."""
    return now + timedelta(seconds=interval * random.uniform(0.9, 1.1))  # noqa: S311


def checks_schedule(*, now: datetime | None = None, limit: int | None = None) -> int:
    """Give unscheduled grants and connectors their first check, spread over their
    connector's period; returns how many were scheduled."""
    now = now or timezone.now()
    limit = limit or settings.CONNECT_CHECK_BATCH * 20
    scheduled = 0
    for checkable, period in (
        (checkable_grants(), "installation__connector__check_interval_seconds"),
        (checkable_connectors(), "check_interval_seconds"),
    ):
        rows = list(checkable.filter(next_check_at__isnull=True).values_list("pk", period)[:limit])
        for pk, interval in rows:
            checkable.model.objects.filter(pk=pk, next_check_at__isnull=True).update(
                next_check_at=_spread(interval, now)
            )
        scheduled += len(rows)
    return scheduled


@dataclass(frozen=True)
class Claim:
    ids: list[int]
    lease: datetime


def _claim(queryset: QuerySet[Any], *, now: datetime, limit: int) -> Claim:
    """Due rows nobody holds, taken under a lease: rows another worker is claiming are skipped,
    rows whose worker vanished come back when their lease lapses."""
    lease = now + timedelta(seconds=settings.CONNECT_CHECK_LEASE_SECONDS)
    with transaction.atomic():
        ids = list(
            queryset.select_for_update(skip_locked=True, of=("self",))
            .filter(next_check_at__lte=now)
            .filter(Q(check_lease_until__isnull=True) | Q(check_lease_until__lte=now))
            .order_by("next_check_at")
            .values_list("pk", flat=True)[:limit]
        )
        queryset.model.objects.filter(pk__in=ids).update(check_lease_until=lease)
    return Claim(ids=ids, lease=lease)


def grants_check_claim(*, now: datetime | None = None, limit: int | None = None) -> Claim:
    """Claim a bounded batch of due grant checks."""
    return _claim(
        checkable_grants(),
        now=now or timezone.now(),
        limit=limit or settings.CONNECT_CHECK_BATCH,
    )


def connectors_check_claim(*, now: datetime | None = None, limit: int | None = None) -> Claim:
    return _claim(
        checkable_connectors(),
        now=now or timezone.now(),
        limit=limit or settings.CONNECT_CHECK_BATCH,
    )


def _dead_secret(exc: BaseException | None) -> bool:
    if not isinstance(exc, ProviderError):
        return False
    return exc.status == 401 or str(exc.vendor.get("error", "")) in DEAD_SECRET_ERRORS


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, ProviderError):
        return grants.provider_error_text(exc)
    return str(exc)[:500]


def connector_secret_failed(*, connector: Connector, error: str, now: datetime) -> bool:
    """Mark the connector's secret as refused and tell the app, once per transition."""
    with transaction.atomic():
        marked = Connector.objects.filter(pk=connector.pk, secret_failed_at__isnull=True).update(
            secret_failed_at=now, last_check_error=error[:500]
        )
        if marked:
            lifecycle.lifecycle_emit(
                LifecycleEventType.CONNECTOR_SECRET_FAILED,
                connector=connector,
                error=error,
                now=now,
            )
    return bool(marked)


def connector_secret_works(*, connector: Connector, now: datetime) -> bool:
    """The connector's secret worked: if it was marked refused, it has recovered (once)."""
    with transaction.atomic():
        cleared = Connector.objects.filter(pk=connector.pk, secret_failed_at__isnull=False).update(
            secret_failed_at=None, last_check_error=""
        )
        if cleared:
            lifecycle.lifecycle_emit(
                LifecycleEventType.CONNECTOR_SECRET_RECOVERED, connector=connector, now=now
            )
    return bool(cleared)


def _release(model: Any, pk: int, *, next_at: datetime, **fields: Any) -> None:
    model.objects.filter(pk=pk).update(next_check_at=next_at, check_lease_until=None, **fields)


def _still_ours(model: Any, pk: int, lease: datetime | None, now: datetime) -> bool:
    """Renew the claim's lease for this one check, if it is still the claim's: a batch that
    ran long may have let it lapse, and then another worker may hold the row now."""
    if lease is None:
        return True
    renewed = now + timedelta(seconds=settings.CONNECT_CHECK_LEASE_SECONDS)
    return bool(
        model.objects.filter(pk=pk, check_lease_until=lease).update(check_lease_until=renewed)
    )


def _hand_back(model: Any, ids: list[int], lease: datetime) -> None:
    """Rows claimed but not checked (the budget ran out): due again at once."""
    model.objects.filter(pk__in=ids, check_lease_until=lease).update(check_lease_until=None)


def grant_check(
    *, grant_id: int, lease: datetime | None = None, now: datetime | None = None
) -> str:
    """Check one claimed grant; reschedule it and release its lease. Returns the outcome."""
    now = now or timezone.now()
    if not _still_ours(Grant, grant_id, lease, now):
        return SKIPPED
    grant = Grant.objects.select_related("installation__connector").filter(pk=grant_id).first()
    if grant is None:
        return SKIPPED
    connector = grant.installation.connector
    interval = connector.check_interval_seconds
    if grant.status != GrantStatus.ACTIVE:
        _release(Grant, grant.pk, next_at=_next(interval, now))
        return SKIPPED
    idle_since = now - timedelta(seconds=settings.CONNECT_KEEPALIVE_AFTER_SECONDS)
    if grant.has_secret("refresh_token") and grant.updated_at > idle_since:
        # Used (refreshed) lately: alive; checked again when it may have gone idle.
        _release(Grant, grant.pk, next_at=_next(interval, now))
        return SKIPPED
    try:
        grants.grant_refresh_now(grant=grant)
    except errors.InvalidGrant:
        # Marked needs_reauth, with its event, in the refresh's own transaction.
        _release(Grant, grant.pk, next_at=_next(interval, now))
        return GRANT_FAILED
    except errors.ProviderUnavailable as exc:
        logger.info("check of grant %s put off: %s", grant.public_id, exc.__cause__ or exc)
        backoff = timedelta(seconds=settings.CONNECT_CHECK_BACKOFF_SECONDS)
        _release(Grant, grant.pk, next_at=now + backoff)
        return BACKED_OFF
    except errors.NoToken as exc:
        cause = exc.__cause__
        if _dead_secret(cause):
            assert cause is not None
            connector_secret_failed(connector=connector, error=_error_text(cause), now=now)
            _release(Grant, grant.pk, next_at=_next(interval, now))
            return SECRET_FAILED
        if isinstance(cause, ProviderError) and (cause.status == 429 or (cause.status or 0) >= 500):
            backoff = timedelta(seconds=settings.CONNECT_CHECK_BACKOFF_SECONDS)
            _release(Grant, grant.pk, next_at=now + backoff)
            return BACKED_OFF
        _release(
            Grant, grant.pk, next_at=_next(interval, now), last_error=_error_text(cause or exc)
        )
        return OTHER_ERROR
    connector_secret_works(connector=connector, now=now)
    _release(Grant, grant.pk, next_at=_next(interval, now))
    return OK


@dataclass(frozen=True)
class Verified:
    status: int | None
    retry_after: timedelta | None
    error: str


def _verify_key(connector: Connector, now: datetime) -> Verified:
    """GET the connector's ``verifyUrl`` with its key: as a bearer token, or raw in the header
    its ``verifyHeader`` names. Through the SSRF guard, as every outbound call."""
    url = str(connector.config.get("verifyUrl") or "")
    header = str(connector.config.get("verifyHeader") or "")
    key = connector.reveal("api_key")
    headers = {header: key} if header else {"Authorization": f"Bearer {key}"}
    try:
        response = http.session().get(
            url, headers=headers, timeout=(http.CONNECT_TIMEOUT, VERIFY_TIMEOUT), stream=True
        )
    except (requests.RequestException, ValueError) as exc:
        return Verified(None, None, f"{type(exc).__name__}: {exc}"[:500])
    with response:
        return Verified(response.status_code, deliveries.retry_after_of(response, now), "")


def connector_check(
    *, connector_id: int, lease: datetime | None = None, now: datetime | None = None
) -> str:
    """Check one claimed API-key connector with its ``verifyUrl``; reschedule and release."""
    now = now or timezone.now()
    if not _still_ours(Connector, connector_id, lease, now):
        return SKIPPED
    connector = Connector.objects.filter(pk=connector_id).first()
    if connector is None:
        return SKIPPED
    interval = connector.check_interval_seconds
    started = time.monotonic()
    outcome = _verify_key(connector, now)
    logger.info(
        "verifyUrl check of %s: %s in %d ms",
        connector.public_id,
        outcome.status or outcome.error,
        (time.monotonic() - started) * 1000,
    )
    status = outcome.status
    if status is not None and 200 <= status < 300:
        connector_secret_works(connector=connector, now=now)
        _release(Connector, connector.pk, next_at=_next(interval, now))
        return OK
    if status == 401:
        connector_secret_failed(connector=connector, error="verifyUrl answered 401", now=now)
        _release(Connector, connector.pk, next_at=_next(interval, now))
        return SECRET_FAILED
    if status is None or status == 429 or status >= 500:
        wait = outcome.retry_after or timedelta(seconds=settings.CONNECT_CHECK_BACKOFF_SECONDS)
        _release(Connector, connector.pk, next_at=now + wait)
        return BACKED_OFF
    _release(
        Connector,
        connector.pk,
        next_at=_next(interval, now),
        last_check_error=f"verifyUrl answered {status}",
    )
    return OTHER_ERROR


def credentials_check(*, budget_seconds: float | None = None) -> dict[str, int]:
    """One beat run: schedule what is new, then check due batches until none is due or the
    budget is spent (a batch claimed is checked to its end; its lease outlasts it)."""
    budget = settings.CONNECT_CHECK_BUDGET if budget_seconds is None else budget_seconds
    stop_at = time.monotonic() + budget
    counts: dict[str, int] = {"scheduled": checks_schedule()}

    def run(model: Any, claim: Claim, check: Any) -> None:
        waiting = list(claim.ids)
        try:
            while waiting and time.monotonic() < stop_at:
                outcome = check(waiting.pop(0), claim.lease)
                counts[outcome] = counts.get(outcome, 0) + 1
        finally:
            _hand_back(model, waiting, claim.lease)

    while time.monotonic() < stop_at:
        grant_claim = grants_check_claim()
        connector_claim = connectors_check_claim()
        if not grant_claim.ids and not connector_claim.ids:
            break
        run(Grant, grant_claim, lambda pk, lease: grant_check(grant_id=pk, lease=lease))
        run(
            Connector,
            connector_claim,
            lambda pk, lease: connector_check(connector_id=pk, lease=lease),
        )
    return counts
