"""Generations (issue 13): a counter per team, per connector and one for the server, bumped by
triggers on every change that can narrow access, so process-local caches of the token path
learn of it. Triggers, not signals: a queryset ``update()``, a cascade, the admin and psql are
all seen. PostgreSQL also sends ``NOTIFY connect_generations, '<scope>'`` (delivered on commit,
deduplicated per transaction); SQLite has no notifications, its processes poll."""

from django.db import migrations, models

CHANNEL = "connect_generations"

# table: (events, columns whose change counts on UPDATE (None: any), scope query of row {r})
WATCHED: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None, str]] = {
    "connect_deploymentcredential": (
        ("UPDATE", "DELETE"),
        ("revoked_at", "secret_sha256", "prefix", "project_id", "environment_id"),
        "SELECT 't:' || team_id AS s FROM connect_project WHERE id = {r}.project_id",
    ),
    "connect_environment": (
        ("UPDATE", "DELETE"),
        None,
        "SELECT 't:' || team_id AS s FROM connect_project WHERE id = {r}.project_id",
    ),
    "connect_project": (("UPDATE", "DELETE"), None, "SELECT 't:' || {r}.team_id AS s"),
    "connect_projectlink": (
        ("UPDATE", "DELETE"),
        None,
        "SELECT 't:' || team_id AS s FROM connect_connector WHERE id = {r}.connector_id",
    ),
    "connect_connector": (("UPDATE", "DELETE"), None, "SELECT 'c:' || {r}.id AS s"),
    "connect_installation": (
        ("INSERT", "UPDATE", "DELETE"),
        None,
        "SELECT 'c:' || {r}.connector_id AS s",
    ),
    "connect_grant": (
        ("INSERT", "UPDATE", "DELETE"),
        None,
        "SELECT 'c:' || connector_id AS s FROM connect_installation WHERE id = {r}.installation_id",
    ),
    "connect_membership": (("UPDATE", "DELETE"), None, "SELECT 't:' || {r}.team_id AS s"),
    "connect_trustedissuer": (("UPDATE", "DELETE"), None, "SELECT 't:' || {r}.team_id AS s"),
    "connect_trustedissuerrule": (
        ("UPDATE", "DELETE"),
        None,
        "SELECT 't:' || team_id AS s FROM connect_trustedissuer WHERE id = {r}.trusted_issuer_id",
    ),
    "connect_team": (("DELETE",), None, "SELECT 't:' || {r}.id AS s"),
    "connect_signingkey": (("INSERT", "UPDATE", "DELETE"), None, "SELECT 'g' AS s"),
}


def _scopes_query(table: str, op: str) -> str:
    query = WATCHED[table][2]
    if op == "INSERT":
        return query.format(r="NEW")
    if op == "DELETE":
        return query.format(r="OLD")
    return f"{query.format(r='OLD')} UNION {query.format(r='NEW')}"


def _postgresql(forward: bool) -> list[str]:
    if not forward:
        drops = [f"DROP FUNCTION IF EXISTS connect_gen_{t}() CASCADE" for t in WATCHED]
        return [*drops, "DROP FUNCTION IF EXISTS connect_generation_bump(text)"]
    statements = [
        f"""
        CREATE OR REPLACE FUNCTION connect_generation_bump(s text) RETURNS void
        LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO connect_generation (scope, value) VALUES (s, 1)
            ON CONFLICT (scope) DO UPDATE SET value = connect_generation.value + 1;
            PERFORM pg_notify('{CHANNEL}', s);
        END $$
        """
    ]
    for table, (events, columns, _) in WATCHED.items():
        branches = "\n".join(
            f"""IF TG_OP = '{op}' THEN
                FOR s IN {_scopes_query(table, op)} LOOP
                    IF s IS NOT NULL THEN PERFORM connect_generation_bump(s); END IF;
                END LOOP;
            END IF;"""
            for op in events
        )
        statements.append(
            f"""
            CREATE OR REPLACE FUNCTION connect_gen_{table}() RETURNS trigger
            LANGUAGE plpgsql AS $$
            DECLARE s text;
            BEGIN
                {branches}
                RETURN NULL;
            END $$
            """
        )
        for op in events:
            when = ""
            if op == "UPDATE":
                changed = (
                    " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in columns)
                    if columns
                    else "OLD.* IS DISTINCT FROM NEW.*"
                )
                when = f"WHEN ({changed})"
            statements.append(
                f"CREATE TRIGGER connect_gen_{table}_{op.lower()} AFTER {op} ON {table} "
                f"FOR EACH ROW {when} EXECUTE FUNCTION connect_gen_{table}()"
            )
    return statements


def _sqlite(forward: bool) -> list[str]:
    statements = []
    for table, (events, columns, _) in WATCHED.items():
        for op in events:
            name = f"connect_gen_{table}_{op.lower()}"
            if not forward:
                statements.append(f"DROP TRIGGER IF EXISTS {name}")
                continue
            when = ""
            if op == "UPDATE" and columns:
                when = "WHEN " + " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in columns)
            statements.append(
                f"""CREATE TRIGGER {name} AFTER {op} ON {table} FOR EACH ROW {when}
                BEGIN
                    INSERT INTO connect_generation (scope, value)
                    SELECT s, 1 FROM ({_scopes_query(table, op)}) WHERE s IS NOT NULL
                    ON CONFLICT (scope) DO UPDATE SET value = value + 1;
                END"""
            )
    return statements


def _run(forward: bool):  # type: ignore[no-untyped-def]
    def run(apps, schema_editor):  # type: ignore[no-untyped-def]
        vendor = schema_editor.connection.vendor
        statements = (
            _postgresql(forward)
            if vendor == "postgresql"
            else _sqlite(forward)
            if vendor == "sqlite"
            else []
        )
        for statement in statements:
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("connect", "0025_lifecycle_checks_reconnect"),
    ]

    operations = [
        migrations.CreateModel(
            name="Generation",
            fields=[
                ("scope", models.CharField(max_length=40, primary_key=True, serialize=False)),
                ("value", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.RunPython(_run(True), _run(False)),
    ]
