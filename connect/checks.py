"""Start-up checks on settings that only hold together.

Forwarding relies on one chain of times, in seconds::

    batch budget + attempt deadline < soft time limit < hard time limit < lease < visibility

A doorbell task starts no attempt after its budget and each attempt ends by its deadline, so
the task returns before Celery's soft time limit; the hard limit kills it before the lease on
the rows it holds lapses, so no other worker claims and sends them meanwhile; and the broker
redelivers no unacknowledged doorbell while its task may still be running. Break a link and a
slow receiver can get a delivery twice, or stall a worker past its limits.

``config/settings.py`` refuses a broken chain as it loads, in every process (web, worker, beat,
``manage.py``); the system check looks again at what the Celery app ends up using.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.checks import CheckMessage, Error, register

DELIVERY_TASK = "connect.tasks.deliveries_send"
#: kombu's default visibility timeout, for the transports that have one.
DEFAULT_VISIBILITY_TIMEOUT = 3600.0


@dataclass(frozen=True)
class DeliveryTimes:
    budget: float  # CONNECT_DELIVERY_BUDGET
    attempt: float  # CONNECT_DELIVERY_TIMEOUT
    soft_limit: float | None  # the send task's Celery soft time limit
    hard_limit: float | None  # the send task's Celery (hard) time limit
    lease: float  # CONNECT_DELIVERY_LEASE
    visibility: float | None  # the broker's visibility timeout; None where it has none


def delivery_time_problems(times: DeliveryTimes) -> list[str]:
    """What breaks the chain, in words an operator can act on; empty when it holds."""
    if times.budget <= 0 or times.attempt <= 0:
        return ["CONNECT_DELIVERY_BUDGET and CONNECT_DELIVERY_TIMEOUT must be positive"]
    if times.soft_limit is None or times.hard_limit is None:
        return [f"{DELIVERY_TASK} needs a soft and a hard Celery time limit"]
    links = [
        (
            "CONNECT_DELIVERY_BUDGET + CONNECT_DELIVERY_TIMEOUT",
            times.budget + times.attempt,
            "the soft time limit (CONNECT_DELIVERY_SOFT_TIME_LIMIT)",
            times.soft_limit,
        ),
        (
            "the soft time limit",
            times.soft_limit,
            "the hard time limit (CONNECT_DELIVERY_TIME_LIMIT)",
            times.hard_limit,
        ),
        ("the hard time limit", times.hard_limit, "CONNECT_DELIVERY_LEASE", times.lease),
    ]
    if times.visibility is not None:
        links.append(
            (
                "CONNECT_DELIVERY_LEASE",
                times.lease,
                "the broker's visibility timeout (CONNECT_BROKER_VISIBILITY_TIMEOUT)",
                times.visibility,
            )
        )
    return [
        f"{low_name} ({low:g} s) must be less than {high_name} ({high:g} s)"
        for low_name, low, high_name, high in links
        if not low < high
    ]


def visibility_timeout(
    broker_url: str, transport_options: Mapping[str, Any] | None
) -> float | None:
    if not broker_url.startswith(("redis://", "rediss://", "sqs://")):
        return None  # the filesystem and in-memory transports redeliver nothing by time
    value = (transport_options or {}).get("visibility_timeout", DEFAULT_VISIBILITY_TIMEOUT)
    return float(value)


def task_time_limits(conf: Any, task_name: str) -> tuple[float | None, float | None]:
    """(soft, hard) as a Celery worker applies them: the task's annotation, else the default."""
    annotations = conf.task_annotations
    annotated: Mapping[str, Any] = {}
    if isinstance(annotations, Mapping):
        annotated = annotations.get(task_name) or {}
    soft = annotated.get("soft_time_limit", conf.task_soft_time_limit)
    hard = annotated.get("time_limit", conf.task_time_limit)
    return (None if soft is None else float(soft), None if hard is None else float(hard))


def delivery_times_in_force() -> DeliveryTimes:
    """The chain as this process runs it: Django's settings and the Celery app's."""
    from django.conf import settings

    from config.celery import app

    soft, hard = task_time_limits(app.conf, DELIVERY_TASK)
    return DeliveryTimes(
        budget=float(settings.CONNECT_DELIVERY_BUDGET),
        attempt=float(settings.CONNECT_DELIVERY_TIMEOUT),
        soft_limit=soft,
        hard_limit=hard,
        lease=float(settings.CONNECT_DELIVERY_LEASE_SECONDS),
        visibility=visibility_timeout(str(app.conf.broker_url), app.conf.broker_transport_options),
    )


def visibility_problems(conf: Any) -> list[str]:
    """Every task, not only the doorbell, must be over before the broker hands its message to
    another worker: each hard time limit below the visibility timeout."""
    visibility = visibility_timeout(str(conf.broker_url), conf.broker_transport_options)
    annotations = conf.task_annotations if isinstance(conf.task_annotations, Mapping) else {}
    problems = []
    for name in sorted({"(every task)", *annotations}):
        _, hard = task_time_limits(conf, name)
        if visibility is None:
            continue
        if hard is None or not hard < visibility:
            limit = "no hard time limit" if hard is None else f"a hard time limit of {hard:g} s"
            problems.append(
                f"{name} has {limit}, not less than the broker's visibility timeout "
                f"({visibility:g} s): the broker would hand it to a second worker"
            )
    return problems


@register()
def check_delivery_times(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    from config.celery import app

    problems = delivery_time_problems(delivery_times_in_force()) + visibility_problems(app.conf)
    return [
        Error(problem, hint="See README.md, 'Forwarding'.", id="connect.E101")
        for problem in problems
    ]
