"""Fill a PostgreSQL database at the scale the admin must stay fast at (for the benchmark only:
``benchmarks/admin_lists.py``; never in CI, never on a database anyone uses).

One team ("scale") whose owner ``scale-owner`` sees everything: connectors, 100,000
installations with a grant each, 1,000,000 token issues, 1,000,000 events with a delivery and
an attempt each, audit rows, flows and a week of hourly counters. Rows are written by
``INSERT … SELECT … FROM generate_series`` (seconds per million), every column from a model
instance built once, so the rows are what the app itself would write (their team included, so
the database's fill-in trigger has nothing to look up).
"""

import time
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, models, transaction
from django.utils import timezone

from connect.models import (
    ActivityCount,
    AuditEvent,
    AuthorizationRequest,
    Connector,
    Delivery,
    DeliveryAttempt,
    Environment,
    Grant,
    InboundEvent,
    Installation,
    Membership,
    Project,
    Role,
    Team,
    TokenIssue,
    TriggerDestination,
)

OWNER = "scale-owner"


def insert_series(
    model: type[models.Model], rows: int, template: models.Model, per_row: dict[str, str]
) -> None:
    """``rows`` copies of ``template``, but for the columns in ``per_row``: SQL expressions of
    ``i`` (1 … rows). Only model metadata and those fixed expressions are interpolated."""
    qn = connection.ops.quote_name
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    columns, values, params = [], [], []
    for f in fields:
        column = str(f.column)
        columns.append(qn(column))
        if column in per_row:
            values.append(per_row[column].replace("%", "%%"))  # modulo, not a placeholder
        else:
            values.append("%s")
            params.append(f.get_db_prep_save(getattr(template, f.attname), connection))
    sql = (
        f"INSERT INTO {qn(model._meta.db_table)} ({', '.join(columns)}) "  # noqa: S608
        f"SELECT {', '.join(values)} FROM generate_series(1, %s) AS i"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, rows])


def first_id(model: type[models.Model]) -> int:
    """The id the next inserted row gets (ids of one INSERT … SELECT are consecutive here:
    nothing else writes to the benchmark's database)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [model._meta.db_table])
        (sequence,) = cursor.fetchone()
        cursor.execute("SELECT last_value, is_called FROM " + sequence)  # noqa: S608 - catalog name
        last, called = cursor.fetchone()
    return int(last) + 1 if called else int(last)


class Command(BaseCommand):
    help = "Fill the (benchmark) database with 100k installations and 1M events and token issues."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--installations", type=int, default=100_000)
        parser.add_argument("--events", type=int, default=1_000_000)
        parser.add_argument("--token-issues", type=int, default=1_000_000)
        parser.add_argument("--connectors", type=int, default=24)
        parser.add_argument("--destinations", type=int, default=400)
        parser.add_argument("--password", default="scale-owner-password")

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("seed_scale writes with generate_series: PostgreSQL only.")
        if Team.objects.filter(slug="scale").exists():
            raise CommandError("This database is already seeded (team 'scale' exists).")
        started = time.monotonic()
        with transaction.atomic():
            self._seed(options)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        self.stdout.write(f"seeded in {time.monotonic() - started:.1f} s")

    def _step(self, label: str, since: float) -> float:
        now = time.monotonic()
        self.stdout.write(f"  {label}: {now - since:.1f} s")
        return now

    def _seed(self, options: dict[str, Any]) -> None:
        now = timezone.now()
        t = time.monotonic()
        team = Team.objects.create(slug="scale", name="Scale")
        owner = User.objects.create_user(OWNER, password=options["password"])
        Membership.objects.create(team=team, user=owner, role=Role.OWNER)
        project = Project.objects.create(team=team, slug="app", name="App")
        environment = Environment.objects.create(
            project=project, slug="production", base_url="https://app.example.com"
        )
        # Written directly: connector_save would give each a key, an audit row, a default.
        connectors = Connector.objects.bulk_create(
            Connector(
                team=team,
                uid=f"slack/workspace-{n}",
                type="slack",
                service="slack",
                name=f"Slack {n}",
                client_id=f"client-{n}",
            )
            for n in range(options["connectors"])
        )
        ids = [c.pk for c in connectors]
        k = len(ids)
        pick = f"(ARRAY[{', '.join(str(i) for i in ids)}])[1 + (i % {k})]"
        destinations = TriggerDestination.objects.bulk_create(
            TriggerDestination(
                connector=connectors[n % k],
                project=project,
                environment=environment,
                path=f"/hooks/{n}",
            )
            for n in range(options["destinations"])
        )
        t = self._step("team, connectors, destinations", t)

        installs = options["installations"]
        inst0 = first_id(Installation)
        insert_series(
            Installation,
            installs,
            Installation(connector=connectors[0], tenant_id="", created_at=now, updated_at=now),
            {
                "public_id": "'sci_seed' || lpad(i::text, 9, '0')",
                "connector_id": pick,
                "tenant_id": "'T' || i",
                "display_name": "'workspace ' || i",
                "created_at": _ago(now, 6),
            },
        )
        grant0 = first_id(Grant)
        insert_series(
            Grant,
            installs,
            Grant(
                installation_id=inst0,
                subject_type=Grant.SubjectType.APP,
                created_at=now,
                updated_at=now,
            ),
            {
                "public_id": "'sgr_seed' || lpad(i::text, 9, '0')",
                "installation_id": f"{inst0} - 1 + i",
                "status": "CASE WHEN i % 50 = 0 THEN 'needs_reauth' ELSE 'active' END",
            },
        )
        t = self._step(f"{installs:,} installations and grants", t)

        issues = options["token_issues"]
        insert_series(
            TokenIssue,
            issues,
            TokenIssue(team=team, grant_id=grant0, project=project, environment="production"),
            {
                "public_id": "'stk_seed' || lpad(i::text, 9, '0')",
                "grant_id": f"{grant0} + (i % {installs})",
                "created_at": _ago(now, 0.6),
            },
        )
        t = self._step(f"{issues:,} token issues", t)

        events = options["events"]
        event0 = first_id(InboundEvent)
        insert_series(
            InboundEvent,
            events,
            InboundEvent(
                team=team,
                connector=connectors[0],
                event_type="message",
                body=b"{}",
                verified=True,
            ),
            {
                "public_id": "'trq_seed' || lpad(i::text, 9, '0')",
                # The installation's own connector (installation j has connector j % k).
                "connector_id": pick.replace("(i % ", f"(((i % {installs}) + 1) % "),
                "installation_id": f"{inst0} + (i % {installs})",
                "body_sha256": "md5(i::text) || md5((i + 1)::text)",
                "received_at": _ago(now, 0.6),
            },
        )
        dest_ids = [d.pk for d in destinations]
        delivery0 = first_id(Delivery)
        insert_series(
            Delivery,
            events,
            Delivery(team=team, event_id=event0, destination=destinations[0], attempts=1),
            {
                "event_id": f"{event0} - 1 + i",
                "destination_id": (
                    f"(ARRAY[{', '.join(map(str, dest_ids))}])[1 + (i % {len(dest_ids)})]"
                ),
                "webhook_id": "'msg_seed' || lpad(i::text, 9, '0')",
                "status": "CASE WHEN i % 20 = 0 THEN 'failed' ELSE 'succeeded' END",
                "last_status_code": "CASE WHEN i % 20 = 0 THEN 500 ELSE 200 END",
                "created_at": _ago(now, 0.6),
                "updated_at": _ago(now, 0.6),
            },
        )
        insert_series(
            DeliveryAttempt,
            events,
            DeliveryAttempt(team=team, delivery_id=delivery0, latency_ms=40),
            {
                "delivery_id": f"{delivery0} - 1 + i",
                "status_code": "CASE WHEN i % 20 = 0 THEN 500 ELSE 200 END",
                "started_at": _ago(now, 0.6),
            },
        )
        t = self._step(f"{events:,} events, deliveries and attempts", t)

        insert_series(
            AuditEvent,
            installs,
            AuditEvent(team=team, type=AuditEvent.Type.INSTALLATION_ADDED, actor="system"),
            {"created_at": _ago(now, 6)},
        )
        insert_series(
            AuthorizationRequest,
            installs,
            AuthorizationRequest(
                connector=connectors[0],
                kind=AuthorizationRequest.Kind.CONSENT,
                expires_at=now,
                outcome=AuthorizationRequest.Outcome.COMPLETED,
            ),
            {
                "public_id": "'sca_seed' || lpad(i::text, 9, '0')",
                "connector_id": pick,
                "verifier_sha256": "md5(i::text) || md5((i + 7)::text)",
                "state": "md5((i + 3)::text) || md5((i + 5)::text)",
                "subject_type": "'user'",
                "subject_id": "i::text",
                "created_at": _ago(now, 6),
            },
        )
        hours = 24 * 7
        insert_series(
            ActivityCount,
            hours * k,
            ActivityCount(team=team, connector=connectors[0], hour=now, kind="token", label="ok"),
            {
                "connector_id": pick,
                "hour": f"date_trunc('hour', {_ts(now)}) - make_interval(hours => i / {k})",
                "count": "500 + (i * 37) % 400",
            },
        )
        self._step("audit rows, flows and a week of counters", t)


def _ago(now: Any, seconds_per_row: float) -> str:
    """Row ``i`` is ``i * seconds_per_row`` seconds old: the newest first, spread back."""
    return f"{_ts(now)} - make_interval(secs => i * {seconds_per_row})"


def _ts(moment: Any) -> str:
    """A timestamp literal of our own clock (no user input reaches the SQL)."""
    return f"'{moment.isoformat()}'::timestamptz"
