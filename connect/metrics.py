"""Prometheus figures for ``/metrics``.

Two kinds, by where the truth lives:

- Counters of what a process did, in its own memory (a few microseconds, no query, no round
  trip, so the token path can afford them): token requests by outcome and their latency,
  refreshes by outcome, provider errors by type. Under gunicorn or a Celery worker they are
  kept in per-process files and added up at scrape time (``connect.metrics_processes``).
  prometheus_client is imported on first use, not with this module: it chooses between memory
  and files when it is imported, and a Celery worker imports this module (with its tasks)
  before it knows its node name, hence its folder.
- Figures read from the database at scrape time, the same whichever process or machine did the
  work: the outbox (depth, oldest due delivery), what came of recent delivery attempts, and
  when a worker and beat were last seen. Each is one indexed query.
"""

import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Case, Count, Q, Value, When
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone
from django.views.decorators.http import require_GET
from rest_framework.views import APIView

from connect import errors, metrics_processes
from connect.heartbeats import heartbeats_seen
from connect.models import Delivery, DeliveryAttempt
from connect.models.deliveries import DeliveryStatus
from connect.providers import base as providers
from connect.services import activity

if TYPE_CHECKING:
    from prometheus_client import Counter, Histogram
    from prometheus_client.core import Metric

#: Delivery attempts are counted over this last stretch of time.
RECENT = timedelta(minutes=5)


@dataclass(frozen=True)
class Counted:
    token_requests: "Counter"
    token_request_seconds: "Histogram"
    refreshes: "Counter"
    provider_errors: "Counter"


_made: list[Counted] = []
_making = threading.Lock()


def counted() -> Counted:
    """This process's counters, made on first use (see the module's docstring); once, though
    the first requests come on many threads at once (a second registration would raise)."""
    if not _made:
        with _making:
            if not _made:
                _made.append(_counters())
    return _made[0]


def _counters() -> Counted:
    from prometheus_client import Counter, Histogram

    return Counted(
        token_requests=Counter(
            "connect_token_requests",
            "Token requests answered, by outcome: ok, or the error code of the answer.",
            ["outcome"],
        ),
        token_request_seconds=Histogram(
            "connect_token_request_seconds",
            "Time to answer a token request, from the view's start to its response.",
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        ),
        refreshes=Counter(
            "connect_refreshes",
            "Refreshes (and re-mints) of a grant's token at its provider, by outcome: ok, or "
            "the type of provider error.",
            ["outcome"],
        ),
        provider_errors=Counter(
            "connect_provider_errors",
            "Errors answered by providers, by type and connector type.",
            ["type", "connector_type"],
        ),
    )


#: Every code the API answers with: the outcome label of a token request takes no other value.
KNOWN_CODES = frozenset(
    {
        value.code
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, errors.ConnectError)
    }
    | set(errors.CODE_FOR_STATUS.values())
)
# Most specific first: the first class in an error's MRO found here names its type.
PROVIDER_ERROR_TYPES: dict[type[providers.ProviderError], str] = {
    providers.ProviderInvalidGrant: "invalid_grant",
    providers.ProviderUnavailable: "unavailable",
    providers.Unsupported: "unsupported",
    providers.ScopeRefused: "scope_refused",
    providers.AuthorizationDenied: "denied",
    providers.TenantUnproven: "tenant_unproven",
    providers.SetupRequired: "setup_required",
    providers.IssuerMismatch: "issuer_mismatch",
    providers.ProviderError: "error",
}


def provider_error_type(exc: providers.ProviderError) -> str:
    # A refused client secret is what an operator must act on first: its own type.
    if exc.vendor.get("error") == "invalid_client":
        return "invalid_client"
    return next(
        (PROVIDER_ERROR_TYPES[cls] for cls in type(exc).__mro__ if cls in PROVIDER_ERROR_TYPES),
        "error",
    )


def provider_failed(exc: providers.ProviderError, *, connector_type: str) -> str:
    """Count a provider's error; returns its type."""
    kind = provider_error_type(exc)
    counted().provider_errors.labels(kind, connector_type).inc()
    return kind


def refresh_succeeded() -> None:
    counted().refreshes.labels("ok").inc()


def refresh_failed(exc: providers.ProviderError, *, connector_type: str) -> None:
    counted().refreshes.labels(provider_failed(exc, connector_type=connector_type)).inc()


def token_request_outcome(response: HttpResponseBase) -> str:
    if response.status_code < 400:
        return "ok"
    data = getattr(response, "data", None)
    error = data.get("error") if isinstance(data, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if code in KNOWN_CODES else errors.code_for_status(response.status_code)


def vendor_error(response: HttpResponseBase) -> str:
    """The provider's own error code relayed in an answer (``invalid_client`` …), if any."""
    data = getattr(response, "data", None)
    error = data.get("error") if isinstance(data, dict) else None
    vendor = error.get("vendor") if isinstance(error, dict) else None
    code = vendor.get("error") if isinstance(vendor, dict) else None
    return code[:40] if isinstance(code, str) and code == "invalid_client" else ""


def token_request_record(
    response: HttpResponseBase, *, seconds: float, team_id: object, connector_ref: str | None
) -> None:
    """Count one token request's answer by outcome and time it; for a caller we know, also in
    the admin's hourly charts and health (counted in memory, written in batches)."""
    counters = counted()
    counters.token_request_seconds.observe(seconds)
    outcome = token_request_outcome(response)
    counters.token_requests.labels(outcome).inc()
    if isinstance(team_id, int) and connector_ref is not None:
        activity.token_request_counted(
            team_id=team_id,
            connector_ref=connector_ref,
            outcome=outcome,
            seconds=seconds,
            provider_error=vendor_error(response),
        )


class CountedTokenRequests(APIView):
    """For the token view: every answer counted by outcome and timed, the refused ones
    (unauthorized, rate_limited) included."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        started = time.perf_counter()
        response = super().dispatch(request, *args, **kwargs)
        caller = getattr(self.request, "_auth", None)  # never authenticates again
        connector = kwargs.get("connector")
        token_request_record(
            response,
            seconds=time.perf_counter() - started,
            team_id=getattr(caller, "team_id", None),
            connector_ref=None if connector is None else str(connector),
        )
        return response


# At scrape time --------------------------------------------------------------------------------


class DatabaseFigures:
    """A Prometheus collector reading the figures whose truth is in the database."""

    def collect(self) -> Iterator["Metric"]:
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily(
            "connect_metrics_database_up",
            "1 when this scrape could read the figures below from the database.",
        )
        try:
            figures = list(self._figures())
        except DatabaseError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from figures

    def _figures(self) -> Iterator["Metric"]:
        from prometheus_client.core import GaugeMetricFamily

        now = timezone.now()
        waiting = (DeliveryStatus.PENDING, DeliveryStatus.DELIVERING)
        depth = GaugeMetricFamily(
            "connect_outbox_depth",
            "Deliveries not yet over: pending (waiting for their time or a worker) and "
            "delivering (claimed by a worker).",
            labels=["status"],
        )
        counted = dict(
            Delivery.objects.filter(status__in=waiting)
            .order_by()
            .values_list("status")
            .annotate(n=Count("pk"))
            .values_list("status", "n")
        )
        for status in waiting:
            depth.add_metric([status], counted.get(status, 0))
        yield depth

        oldest = (
            Delivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at")
            .values_list("next_attempt_at", flat=True)
            .first()
        )
        yield GaugeMetricFamily(
            "connect_outbox_oldest_due_age_seconds",
            "How long the longest-waiting due delivery has been due (0 when none is).",
            value=(now - oldest).total_seconds() if oldest else 0.0,
        )

        recent = GaugeMetricFamily(
            "connect_delivery_attempts_recent",
            f"Delivery attempts started in the last {RECENT.seconds // 60} minutes, by what "
            "came of them: succeeded; retrying (failed, another attempt scheduled or under "
            "way); failed (failed, and the delivery has given up).",
            labels=["outcome"],
        )
        outcomes = dict(
            DeliveryAttempt.objects.filter(started_at__gte=now - RECENT)
            .order_by()
            .annotate(
                outcome=Case(
                    When(Q(status_code__gte=200, status_code__lt=300), then=Value("succeeded")),
                    When(delivery__status=DeliveryStatus.FAILED, then=Value("failed")),
                    default=Value("retrying"),
                )
            )
            .values_list("outcome")
            .annotate(n=Count("pk"))
            .values_list("outcome", "n")
        )
        for outcome in ("succeeded", "retrying", "failed"):
            recent.add_metric([outcome], outcomes.get(outcome, 0))
        yield recent

        seen = GaugeMetricFamily(
            "connect_last_seen_timestamp_seconds",
            "When a Celery worker (any) and beat last reported alive, in Unix time (0: never).",
            labels=["process"],
        )
        for process, at in heartbeats_seen().items():
            seen.add_metric([process], at.timestamp() if at else 0.0)
        yield seen


class EveryProcess:
    """The counters of every process on this machine: gunicorn's workers and Celery's, live or
    exited since their group started (so totals never go backwards while it runs)."""

    def collect(self) -> Iterator["Metric"]:
        from prometheus_client.multiprocess import MultiProcessCollector

        return iter(MultiProcessCollector.merge(metrics_processes.every_group_file()))


def exposition() -> bytes:
    """The text a scrape gets."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

    counted()  # this process's counters exist (at zero) even before anything was counted
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseFigures())
    if metrics_processes.multiprocess_on():
        registry.register(EveryProcess())
        return generate_latest(registry)
    # One process (runserver, tests): its own registry, with the process figures it includes.
    return generate_latest(REGISTRY) + generate_latest(registry)


def _same_secret(given: str, expected: str) -> bool:
    # Digests first: compare_digest's time still depends on the lengths it is given.
    return hmac.compare_digest(
        hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest()
    )


@require_GET
def metrics_endpoint(request: HttpRequest) -> HttpResponse:
    """``GET /metrics`` with ``Authorization: Bearer <CONNECT_METRICS_TOKEN>``. Without the
    setting the endpoint does not exist (404); a missing or wrong token is 401."""
    expected = settings.CONNECT_METRICS_TOKEN
    if not expected:
        return HttpResponse("Not Found\n", status=404, content_type="text/plain")
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not _same_secret(token.strip(), expected):
        refused = HttpResponse("Unauthorized\n", status=401, content_type="text/plain")
        refused["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return refused
    from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

    # The classic text format: every Prometheus version reads it.
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_PLAIN_0_0_4)
