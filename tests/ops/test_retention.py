"""Retention (issue 11, item 6): token issues, events, delivery attempts and audit rows older than
their setting are deleted by beat, in batches of bounded statements; an event waits while any
of its deliveries is still to be sent."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.celery import app as celery_app
from connect.models import (
    AuditEvent,
    Connector,
    Delivery,
    DeliveryAttempt,
    Grant,
    InboundEvent,
    Installation,
    LifecycleEvent,
    Project,
    Team,
    TokenIssue,
    TriggerDestination,
)
from connect.services.retention import retention_prune

NOW = timezone.now().replace(microsecond=0)


@dataclass
class World:
    team: Team
    project: Project
    connector: Connector
    grant: Grant
    destination: TriggerDestination


@pytest.fixture
def world(
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_grant: Callable[..., Grant],
    make_destination: Callable[..., TriggerDestination],
) -> World:
    team = make_team()
    project = make_project(team)
    connector = make_connector(team)
    grant = make_grant(Installation.objects.get(connector=connector))
    return World(team, project, connector, grant, make_destination(connector, project))


def issue(world: World, at: datetime) -> TokenIssue:
    return TokenIssue.objects.create(
        grant=world.grant, project=world.project, environment="production", created_at=at
    )


def event(world: World, at: datetime, *statuses: str, attempts_at: datetime | None = None) -> int:
    """An event received ``at``, with one delivery per status, each with one attempt."""
    made = InboundEvent.objects.create(
        connector=world.connector, body=b"{}", provider_event_id=uuid.uuid4().hex, received_at=at
    )
    for status in statuses:
        destination = TriggerDestination.objects.create(
            connector=world.connector,
            project=world.project,
            environment=world.destination.environment,
            path=f"/{uuid.uuid4().hex}",
        )
        delivery = Delivery.objects.create(event=made, destination=destination, status=status)
        DeliveryAttempt.objects.create(
            delivery=delivery, status_code=200, started_at=attempts_at or at
        )
    return made.pk


def audit(world: World, at: datetime) -> AuditEvent:
    return AuditEvent.objects.create(team=world.team, type="test.happened", created_at=at)


def days(n: float) -> timedelta:
    return timedelta(days=n)


SECOND = timedelta(seconds=1)


@pytest.mark.django_db
def test_each_kind_goes_exactly_when_older_than_its_setting(world: World) -> None:
    kept_issue, _gone_issue = (
        issue(world, NOW - days(7) + SECOND),
        issue(world, NOW - days(7) - SECOND),
    )
    kept_event = event(world, NOW - days(30) + SECOND, "succeeded")
    gone_event = event(world, NOW - days(30) - SECOND, "succeeded", "failed")
    kept_audit, gone_audit = (
        audit(world, NOW - days(365) + SECOND),
        audit(world, NOW - days(365) - SECOND),
    )
    AuditEvent.objects.exclude(pk__in=[kept_audit.pk, gone_audit.pk]).delete()  # the factories'

    deleted = retention_prune(now=NOW)

    assert deleted == {
        "token_issues": 1,
        "delivery_attempts": 2,
        "events": 1,
        "audit_events": 1,
        "lifecycle_events": 0,
        "proxy_calls": 0,
        "counters": 0,
    }
    assert list(TokenIssue.objects.values_list("pk", flat=True)) == [kept_issue.pk]
    assert list(InboundEvent.objects.values_list("pk", flat=True)) == [kept_event]
    assert not Delivery.objects.filter(event_id=gone_event).exists()
    assert Delivery.objects.filter(event_id=kept_event).count() == 1
    assert DeliveryAttempt.objects.filter(delivery__event_id=kept_event).count() == 1
    assert DeliveryAttempt.objects.count() == 1
    assert list(AuditEvent.objects.values_list("pk", flat=True)) == [kept_audit.pk]


@pytest.mark.django_db
def test_an_old_event_stays_while_a_delivery_is_still_to_be_sent(world: World) -> None:
    old = NOW - days(90)
    waiting = event(world, old, "succeeded", "pending", attempts_at=NOW)
    sending = event(world, old, "delivering", attempts_at=NOW)
    over = event(world, old, "succeeded", "failed", attempts_at=NOW)

    deleted = retention_prune(now=NOW)

    assert deleted["events"] == 1
    assert set(InboundEvent.objects.values_list("pk", flat=True)) == {waiting, sending}
    assert Delivery.objects.filter(event_id=waiting).count() == 2
    assert DeliveryAttempt.objects.filter(delivery__event_id=waiting).count() == 2
    assert not Delivery.objects.filter(event_id=over).exists()


def lifecycle_event(world: World, at: datetime, status: str) -> int:
    """A lifecycle event made ``at`` with one delivery of ``status`` and one attempt."""
    made = LifecycleEvent.objects.create(
        connector=world.connector,
        type=LifecycleEvent.Type.GRANT_CREATED,
        body=b"{}",
        created_at=at,
    )
    destination = TriggerDestination.objects.create(
        connector=world.connector,
        project=world.project,
        environment=world.destination.environment,
        path=f"/{uuid.uuid4().hex}",
    )
    delivery = Delivery.objects.create(lifecycle_event=made, destination=destination, status=status)
    DeliveryAttempt.objects.create(delivery=delivery, status_code=200, started_at=at)
    return made.pk


@pytest.mark.django_db
def test_old_lifecycle_events_go_with_their_deliveries_once_those_are_over(world: World) -> None:
    # Only this test's events: not the installation.created the fixture's connector told.
    LifecycleEvent.objects.all().delete()
    kept_new = lifecycle_event(world, NOW - days(30) + SECOND, "succeeded")
    gone = lifecycle_event(world, NOW - days(30) - SECOND, "failed")
    waiting = lifecycle_event(world, NOW - days(90), "pending")

    assert retention_prune(now=NOW)["lifecycle_events"] == 1

    assert set(LifecycleEvent.objects.values_list("pk", flat=True)) == {kept_new, waiting}
    assert not Delivery.objects.filter(lifecycle_event_id=gone).exists()
    assert Delivery.objects.filter(lifecycle_event_id=waiting).count() == 1


@pytest.mark.django_db
def test_old_attempts_go_on_their_own_setting(world: World, settings: Any) -> None:
    settings.CONNECT_RETAIN_DELIVERY_ATTEMPTS_DAYS = 3
    kept = event(world, NOW, "pending", attempts_at=NOW - days(3) + SECOND)
    gone = event(world, NOW, "pending", attempts_at=NOW - days(3) - SECOND)

    assert retention_prune(now=NOW)["delivery_attempts"] == 1

    assert DeliveryAttempt.objects.filter(delivery__event_id=kept).count() == 1
    assert not DeliveryAttempt.objects.filter(delivery__event_id=gone).exists()
    assert InboundEvent.objects.count() == 2


@pytest.mark.django_db
def test_zero_days_keeps_a_kind_forever(world: World, settings: Any) -> None:
    settings.CONNECT_RETAIN_TOKEN_ISSUES_DAYS = 0
    issue(world, NOW - days(10_000))

    assert retention_prune(now=NOW)["token_issues"] == 0
    assert TokenIssue.objects.count() == 1


def deletes_by_table(queries: list[dict[str, str]]) -> dict[str, int]:
    found: dict[str, int] = {}
    for query in queries:
        sql = query["sql"]
        if sql.startswith("DELETE FROM"):
            table = sql.split('"')[1]
            found[table] = found.get(table, 0) + 1
    return found


@pytest.mark.django_db
@pytest.mark.parametrize("rows", [5, 50])
def test_rows_go_in_batches_of_a_few_statements_each(
    world: World, require_postgres: None, rows: int
) -> None:
    """Each batch costs the same statements whatever it holds: 1 DELETE for a plain table
    (and 1 more for the batch that finds the rest), 5 queries for events (choose, lock,
    attempts, deliveries, events)."""
    batch = rows // 5 * 2  # 2 or 20: two full batches and a last one with the rest
    for _ in range(rows):
        issue(world, NOW - days(8))
        audit(world, NOW - days(400))
    for _ in range(rows):
        event(world, NOW - days(31), "succeeded", attempts_at=NOW)
    AuditEvent.objects.filter(created_at__gt=NOW - days(1)).delete()  # the factories'

    with CaptureQueriesContext(connection) as captured:
        deleted = retention_prune(now=NOW, batch=batch)

    assert deleted == {
        "token_issues": rows,
        "delivery_attempts": 0,
        "events": rows,
        "audit_events": rows,
        "lifecycle_events": 0,
        "proxy_calls": 0,
        "counters": 0,
    }
    assert not TokenIssue.objects.exists()
    assert not InboundEvent.objects.exists()
    assert not DeliveryAttempt.objects.exists()
    assert not AuditEvent.objects.exists()
    batches = 3  # 2 + 2 + 1 or 20 + 20 + 10
    assert deletes_by_table(captured.captured_queries) == {
        "connect_tokenissue": batches,
        "connect_auditevent": batches,
        "connect_deliveryattempt": 1 + batches,  # the attempts' own run finds none
        "connect_delivery": batches,
        "connect_inboundevent": batches,
        "connect_proxycall": 1,  # none to delete: one statement finds that out
        "connect_activitycount": 1,  # none to prune
    }
    event_queries = 5 * batches
    # Token issues and audit; attempts, proxy calls and counters: one each that found none;
    # lifecycle events: one SELECT that chose none.
    plain_queries = 2 * batches + 4
    # The test's own transaction turns each batch's into a savepoint: not a statement of ours.
    statements = [q for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(statements) == event_queries + plain_queries


@pytest.mark.django_db
def test_a_run_stops_at_its_time_budget_and_the_next_one_goes_on(world: World) -> None:
    for _ in range(3):
        issue(world, NOW - days(8))

    assert retention_prune(now=NOW, batch=1, budget_seconds=0)["token_issues"] == 0
    assert TokenIssue.objects.count() == 3
    assert retention_prune(now=NOW, batch=1)["token_issues"] == 3


def test_beat_prunes_every_minute_within_the_tasks_time_limit() -> None:
    entry = django_settings.CELERY_BEAT_SCHEDULE["retention-prune"]

    assert entry["task"] in celery_app.tasks
    assert entry["schedule"] == 60.0
    limits = celery_app.conf.task_annotations[entry["task"]]
    budget = django_settings.CONNECT_RETENTION_BUDGET
    assert budget < limits["soft_time_limit"] < limits["time_limit"]
