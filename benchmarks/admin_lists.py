"""Timings of every admin list and the index, as a team owner, at scale on PostgreSQL.

Usage: ``make bench-admin``. Creates (once) and seeds BENCH_ADMIN_DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/connect_bench_admin) with ``manage.py seed_scale`` at
SCALE_INSTALLATIONS / SCALE_EVENTS / SCALE_TOKEN_ISSUES (defaults: 100,000 / 1,000,000 /
1,000,000; seeding takes minutes), then requests each page BENCH_RUNS times (default 5) in
process, through the whole middleware stack, and prints the median and worst time, the query
count and the page size. Target (SPEC section 14): every page under 300 ms.
Set BENCH_RESEED=1 to start from an empty database.
"""

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
DATABASE_URL = os.environ.get(
    "BENCH_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/connect_bench_admin"
)
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
TARGET_MS = 300

PAGES = [
    ("index", "/admin/"),
    ("activity", "/admin/activity/"),
    ("activity by connector", "/admin/activity/?connector={connector}"),
    ("activity failed", "/admin/activity/?outcome=failed"),
    ("connectors", "/admin/connect/connector/"),
    ("connector page", "/admin/connect/connector/{connector}/change/"),
    ("installations", "/admin/connect/installation/"),
    ("installations page 100", "/admin/connect/installation/?p={deep_page}"),
    (
        "installations of one connector",
        "/admin/connect/installation/?connector__id__exact={connector}",
    ),
    ("installations search", "/admin/connect/installation/?q=T4242"),
    ("grants", "/admin/connect/grant/"),
    ("grants needing reauth", "/admin/connect/grant/?status__exact=needs_reauth"),
    ("token issues", "/admin/connect/tokenissue/"),
    ("token issue search", "/admin/connect/tokenissue/?q=stk_seed000424242"),
    ("events", "/admin/connect/inboundevent/"),
    ("events of one connector", "/admin/connect/inboundevent/?connector__id__exact={connector}"),
    ("deliveries", "/admin/connect/delivery/"),
    ("deliveries failed", "/admin/connect/delivery/?status__exact=failed"),
    (
        "deliveries to one destination",
        "/admin/connect/delivery/?destination__id__exact={destination}",
    ),
    ("delivery webhook_id search", "/admin/connect/delivery/?q=msg_seed0004242"),
    ("delivery attempts", "/admin/connect/deliveryattempt/"),
    ("delivery attempts 5xx", "/admin/connect/deliveryattempt/?answer=5xx"),
    ("audit", "/admin/connect/auditevent/"),
    ("audit by type", "/admin/connect/auditevent/?type__exact=installation.added"),
    ("flows", "/admin/connect/authorizationrequest/"),
    ("destinations", "/admin/connect/triggerdestination/"),
]


def ensure_database(reseed: bool) -> bool:
    """Create the database if missing; True when it must be seeded."""
    admin_url, _, name = DATABASE_URL.rpartition("/")
    with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and not reseed:
            return False
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return True


def manage(*args: str) -> None:
    env = {**os.environ, "DATABASE_URL": DATABASE_URL, "CONNECT_ACTIVITY_FLUSH": "0"}
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


def main() -> None:
    if ensure_database(reseed=os.environ.get("BENCH_RESEED") == "1"):
        manage("migrate", "--noinput", "-v0")
        manage(
            "seed_scale",
            "--installations",
            os.environ.get("SCALE_INSTALLATIONS", "100000"),
            "--events",
            os.environ.get("SCALE_EVENTS", "1000000"),
            "--token-issues",
            os.environ.get("SCALE_TOKEN_ISSUES", "1000000"),
        )
    else:
        manage("migrate", "--noinput", "-v0")

    os.environ["DATABASE_URL"] = DATABASE_URL
    os.environ["CONNECT_ACTIVITY_FLUSH"] = "0"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from connect.models import (
        Connector,
        InboundEvent,
        Installation,
        TokenIssue,
        TriggerDestination,
    )

    settings.ALLOWED_HOSTS = ["testserver"]
    # Not DEBUG: debug templates render markedly slower than production's; queries are counted
    # on one request of their own instead.
    owner = User.objects.get(username="scale-owner")
    connector = Connector.objects.filter(team__slug="scale").order_by("pk").first()
    assert connector is not None
    destination = TriggerDestination.objects.filter(connector=connector).order_by("pk").first()
    client = Client()
    client.force_login(owner)
    print(
        f"scale: {Installation.objects.count():,} installations, "
        f"{InboundEvent.objects.count():,} events, {TokenIssue.objects.count():,} token issues; "
        f"connector {connector.uid} has "
        f"{Installation.objects.filter(connector=connector).count():,} installations"
    )
    print(f"{'page':<34} {'median ms':>9} {'max ms':>8} {'queries':>7} {'KB':>7}")
    slow = []
    # Deep in the installations: page 100 is the last a capped count (10,000 rows) offers.
    deep_page = min(100, max(Installation.objects.count() // 100 - 1, 1))
    for label, template in PAGES:
        path = template.format(
            connector=connector.pk,
            destination=destination.pk if destination else 0,
            deep_page=deep_page,
        )
        times = []
        with CaptureQueriesContext(connection) as queries:
            client.get(path)  # warm: templates compiled, caches filled; and counted
        count = len(queries)
        for _ in range(RUNS):
            started = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (path, response.status_code)
        size = len(response.content)
        median = statistics.median(times)
        if median > TARGET_MS:
            slow.append(label)
        print(f"{label:<34} {median:>9.1f} {max(times):>8.1f} {count:>7} {size / 1024:>7.1f}")
    print(f"over {TARGET_MS} ms (median): {', '.join(slow) if slow else 'none'}")


if __name__ == "__main__":
    main()
