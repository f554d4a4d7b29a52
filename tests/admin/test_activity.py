"""Health from what happened, hourly counters, charts and the Activity page.

Token requests go through the real API (the test client); counters are written by
``activity_flush``, as the background thread would.
"""

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.utils import timezone

from connect.charts import activity_charts
from connect.models import (
    ActivityCount,
    AuthorizationRequest,
    Connector,
    Grant,
    InboundEvent,
    Installation,
    Project,
    ProxyCall,
    Role,
    Team,
    TokenIssue,
)
from connect.models.activity import ActivityKind
from connect.services import activity, health, installations
from tests.api.wire import post_json
from tests.fakes.oauth import OAuthFake

APP = {"subject": {"type": "app"}}


@pytest.fixture
def acme(
    make_team: Callable[..., Team],
    make_member: Callable[..., User],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
    make_credential: Callable[..., str],
    oauth_server: OAuthFake,
) -> dict[str, Any]:
    """A team with a client-credentials connector whose provider knows its client, and a
    viewer; another team with a connector of its own."""
    team = make_team(slug="acme", name="Acme")
    viewer = make_member(team, Role.VIEWER, username="vic")
    project = make_project(team, slug="shop")
    connector = make_connector(
        team,
        uid="oauth/acme",
        type="oauth",
        name="Acme API",
        client_id="acme-client",
        secrets={"client_secret": "right-secret"},
        config={
            "tokenEndpoint": oauth_server.token_endpoint,
            "tokenEndpointAuthMethod": "client_secret_post",
        },
        default_scopes={"app": ["read"]},
    )
    make_link(connector, project, ["production"])
    oauth_server.add_client("acme-client", method="client_secret_post", secret="right-secret")
    other = make_team(slug="globex", name="Globex")
    other_connector = make_connector(other, uid="api-key/globex", name="Globex Key")
    return {
        "team": team,
        "viewer": viewer,
        "project": project,
        "connector": connector,
        "bearer": {"HTTP_AUTHORIZATION": f"Bearer {make_credential(project)}"},
        "server": oauth_server,
        "other": other,
        "other_connector": other_connector,
    }


def token(client: Client, acme: dict[str, Any]) -> Any:
    return post_json(client, "/v1/connect/token/oauth%2Facme", APP, **acme["bearer"])


def signed_in(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


def test_health_turns_red_with_the_reason_after_failed_token_requests(
    client: Client, acme: dict[str, Any]
) -> None:
    connector = acme["connector"]
    assert token(client, acme).status_code == 200
    activity.activity_flush()
    assert health.connector_health(connector=connector).level == health.Level.OK

    # The secret is changed at the provider: every request now comes back invalid_client.
    acme["server"].add_client("acme-client", method="client_secret_post", secret="rotated")
    Grant.objects.filter(installation__connector=connector).update(
        access_expires_at=timezone.now() - timedelta(minutes=1)
    )
    for _ in range(3):
        refused = token(client, acme)
        assert refused.status_code == 422
        assert refused.json()["error"]["vendor"]["error"] == "invalid_client"
    # Nothing is written until the batch is.
    assert health.connector_health(connector=connector).level == health.Level.OK
    activity.activity_flush()

    found = health.connector_health(connector=connector)
    assert found.level == health.Level.FAIL
    assert found.reason.startswith(
        "The provider refused the client credentials (invalid_client) 3 times in the last hour"
    )
    assert "3 of 4 token requests failed in the last hour (mostly no_token)." in found.reasons

    viewer = signed_in(client, acme["viewer"])
    for page in (
        "/admin/",
        "/admin/connect/connector/",
        f"/admin/connect/connector/{connector.pk}/change/",
    ):
        html = viewer.get(page).content.decode()
        assert 'class="connect-health connect-health-fail"' in html, page
        assert "(invalid_client) 3 times in the last hour" in html, page


def test_health_findings_from_grants_removals_and_deliveries(
    acme: dict[str, Any],
    make_installation: Callable[..., Installation],
    make_grant: Callable[..., Grant],
) -> None:
    connector = acme["connector"]
    installation = connector.installations.get()
    make_grant(installation, "user", "7", status=Grant.Status.NEEDS_REAUTH)
    found = health.connector_health(connector=connector)
    assert (found.level, found.reason) == (
        health.Level.WARN,
        "1 grant needs re-authorization: the subject must connect again.",
    )

    removed = make_installation(connector, tenant_id="T9")
    installations.installation_removed_by_provider(connector=connector, tenant_id="T9")
    for label in ["succeeded"] * 3 + ["failed"] * 7:
        activity.activity_count(connector=connector, kind=ActivityKind.DELIVERY, label=label)
    activity.activity_flush()

    found = health.connector_health(connector=connector)
    assert found.level == health.Level.FAIL
    assert found.reasons == [
        "7 of 10 delivery attempts failed for good in the last hour.",
        "1 grant needs re-authorization: the subject must connect again.",
        "1 installation removed at the provider in the last 24 h.",
    ]
    assert Installation.objects.get(pk=removed.pk).status == Installation.Status.REVOKED
    # Removals of a day ago count no longer; failures two hours old neither.
    later = health.connector_health(connector=connector, now=timezone.now() + timedelta(days=2))
    assert later.reasons == ["1 grant needs re-authorization: the subject must connect again."]


def test_a_refused_request_is_the_callers_not_the_connectors(
    client: Client, acme: dict[str, Any]
) -> None:
    """A wrong scope is the caller's mistake: charted as refused, never against health."""
    response = post_json(
        client,
        "/v1/connect/token/oauth%2Facme",
        {**APP, "scopes": ["admin"]},
        **acme["bearer"],
    )
    assert response.status_code == 400
    activity.activity_flush()
    (hour,) = activity.activity_hours(team_ids=[acme["team"].pk], hours=1)
    assert (hour.token_requests, hour.token_errors, hour.token_failures) == (1, 1, 0)
    assert health.connector_health(connector=acme["connector"]).level == health.Level.OK


def test_the_token_path_counts_without_a_query(
    client: Client, acme: dict[str, Any], django_assert_max_num_queries: Any
) -> None:
    assert token(client, acme).status_code == 200  # warm: the grant holds a token now
    activity.activity_discard()
    with django_assert_max_num_queries(20) as captured:
        assert token(client, acme).status_code == 200
    assert not any("activitycount" in q["sql"] for q in captured.captured_queries)
    assert activity.activity_flush() == 2  # the request's outcome and its latency bucket
    rows = dict(ActivityCount.objects.values_list("kind", "count"))
    assert rows == {"token": 1, "latency": 1}


@pytest.mark.django_db(transaction=True)
def test_counters_add_up_when_processes_flush_at_once(
    require_postgres: None, make_team: Callable[..., Team], make_connector: Callable[..., Connector]
) -> None:
    """Flushes on several connections at once, all adding to the same new hour's rows: the
    upsert with F() loses nothing (and the unique row is created once)."""
    team = make_team()
    connector = make_connector(team, uid="api-key/busy", secrets={"api_key": "k"})
    threads, per_thread = 8, 25
    start = threading.Barrier(threads)
    failures: list[BaseException] = []

    def flusher() -> None:
        try:
            start.wait()
            for _ in range(per_thread):
                activity.token_request_counted(
                    team_id=team.pk, connector_ref=connector.uid, outcome="ok", seconds=0.003
                )
                activity.activity_flush()
        except BaseException as exc:  # reported below
            failures.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=flusher) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    activity.activity_flush()

    assert failures == []
    # (Besides the one "added" install the API-key connector's saving made.)
    tokens = ActivityCount.objects.filter(connector=connector, kind__in=["token", "latency"])
    counts = dict(tokens.values_list("kind", "count"))
    assert counts == {"token": threads * per_thread, "latency": threads * per_thread}
    assert tokens.count() == 2


def test_charts_render_as_inline_svg(client: Client, acme: dict[str, Any]) -> None:
    connector = acme["connector"]
    now = timezone.now()
    for seconds, outcome in [(0.004, "ok")] * 18 + [(0.2, "ok"), (0.9, "no_token")]:
        activity.token_request_counted(
            team_id=acme["team"].pk,
            connector_ref=connector.public_id,
            outcome=outcome,
            seconds=seconds,
            at=now - timedelta(hours=3),
        )
    activity.activity_count(connector=connector, kind=ActivityKind.DELIVERY, label="retrying")
    activity.activity_count(connector=connector, kind=ActivityKind.CONSENT, label="completed")
    activity.activity_flush()

    hours = activity.activity_hours(team_ids=[acme["team"].pk], hours=24, now=now)
    assert len(hours) == 24
    assert hours[-4].token_requests == 20
    assert hours[-4].latency_percentile(0.5) == 5.0
    assert hours[-4].latency_percentile(0.95) == 250.0
    tokens, latency, deliveries, installs = activity_charts(hours)
    assert "20 · failed 5.0%" in tokens  # no refusal among them: none said
    assert tokens.count('<rect class="s-ok"') == 2  # one hour's bar, and the legend's swatch
    assert "p50 ≤ 5 ms · p95 ≤ 250 ms" in latency
    assert "1 retrying" in deliveries
    assert "1 consents" in installs
    # The day's axis says how far back it starts (a bare "13:00" of yesterday read as today);
    # the week's names the day.
    assert ">24 h ago</text>" in tokens
    assert ">now</text>" in tokens
    week = activity_charts(activity.activity_hours(team_ids=[acme["team"].pk], hours=168, now=now))
    assert f">{(now - timedelta(hours=167)).strftime('%d %b')}</text>" in week[0]

    viewer = signed_in(client, acme["viewer"])
    for page in ("/admin/", f"/admin/connect/connector/{connector.pk}/change/"):
        html = viewer.get(page).content.decode()
        assert html.count('<svg viewBox="0 0 360 130"') == 8, page  # 4 charts, 24 h and 7 days
        assert "Last 24 hours" in html
        assert "Last 7 days" in html
        # Nothing the policy would refuse: no script, no style attribute, no remote source.
        assert " style=" not in html.split('id="content-main"')[1]
        assert "<script" not in html.split('id="content-main"')[1].split("</svg>")[0]


def test_the_index_charts_only_the_users_teams(client: Client, acme: dict[str, Any]) -> None:
    activity.activity_count(
        connector=acme["other_connector"], kind=ActivityKind.DELIVERY, label="failed"
    )
    activity.activity_flush()
    html = signed_in(client, acme["viewer"]).get("/admin/").content.decode()
    assert "0 succeeded · 0 retrying · 0 failed" in html
    assert "Globex" not in html


@pytest.fixture
def logged(
    acme: dict[str, Any],
    make_installation: Callable[..., Installation],
    make_grant: Callable[..., Grant],
    make_authorization_request: Callable[..., AuthorizationRequest],
) -> dict[str, Any]:
    """A few of every kind of event, in both teams."""
    connector = acme["connector"]
    first = connector.installations.get()
    second = make_installation(connector, tenant_id="T2", display_name="Second tenant")
    app = make_grant(first, "app")
    user = make_grant(second, "user", "42")
    issues = [
        TokenIssue.objects.create(grant=grant, project=acme["project"], environment="production")
        for grant in (app, user)
    ]
    consent = make_authorization_request(
        connector, kind="consent", subject_type="user", subject_id="42"
    )
    AuthorizationRequest.objects.filter(pk=consent.pk).update(outcome="failed", error="denied")
    event = InboundEvent.objects.create(
        connector=connector, installation=second, event_type="push", body=b"{}", verified=True
    )
    proxied = [
        ProxyCall.objects.create(
            team=acme["connector"].team,
            connector=connector,
            grant=grant,
            project=acme["project"],
            environment="production",
            method="GET",
            path="/api/users.info",
            outcome="answered",
            status=200,
            latency_ms=12,
        )
        for grant in (app, user)
    ]
    other_installation = acme["other_connector"].installations.get()
    other_issue = TokenIssue.objects.create(
        grant=make_grant(other_installation, "app"),
        project=acme["project"],
        environment="production",
    )
    return {
        "issues": issues,
        "proxied": proxied,
        "consent": consent,
        "event": event,
        "second": second,
        "other_issue": other_issue,
    }


def rows(client: Client, query: str = "") -> list[str]:
    html = client.get(f"/admin/activity/{query}").content.decode()
    body = html.split('id="connect-events"')[1].split("</table>")[0]
    return [row.split("</tr>")[0] for row in body.split("<tr class=")[1:]]


def test_the_activity_page_lists_events_with_their_correlation_ids(
    client: Client, acme: dict[str, Any], logged: dict[str, Any]
) -> None:
    viewer = signed_in(client, acme["viewer"])
    listed = rows(viewer)
    assert len(listed) == 6  # two tokens, two proxy calls, one consent, one webhook; no Globex
    everything = "".join(listed)
    for call in logged["proxied"]:
        assert f"proxyCallId={call.public_id}" in everything
        assert f"/admin/connect/proxycall/{call.pk}/change/" in everything
    for issue in logged["issues"]:
        assert f"tokenId={issue.public_id}" in everything
        assert f"/admin/connect/tokenissue/{issue.pk}/change/" in everything
    assert f"authorizationId={logged['consent'].public_id}" in everything
    assert f"triggerRequestId={logged['event'].public_id}" in everything
    assert f"/admin/connect/inboundevent/{logged['event'].pk}/change/" in everything
    assert logged["other_issue"].public_id not in everything
    assert "connect-outcome-bad" in everything  # the failed consent stands out


@pytest.mark.parametrize(
    ("query", "kinds"),
    [
        ("?outcome=issued", ["token", "token"]),
        ("?outcome=failed", ["authorization"]),
        ("?outcome=verified", ["trigger"]),
        ("?outcome=answered", ["proxy", "proxy"]),
        ("?subject=user:42", ["token", "authorization", "proxy"]),
        ("?subject=app:42", []),
        ("?subject=app", ["token", "proxy"]),
        ("?installation={second}", ["trigger", "token", "proxy"]),
        ("?connector={connector}&outcome=issued", ["token", "token"]),
    ],
)
def test_the_activity_page_filters(
    client: Client, acme: dict[str, Any], logged: dict[str, Any], query: str, kinds: list[str]
) -> None:
    query = query.format(second=logged["second"].public_id, connector=acme["connector"].pk)
    listed = rows(signed_in(client, acme["viewer"]), query)
    assert sorted(row.split('"')[1].removeprefix("connect-event-") for row in listed) == sorted(
        kinds
    )


def test_another_teams_connector_is_no_filter_choice(
    client: Client, acme: dict[str, Any], logged: dict[str, Any]
) -> None:
    viewer = signed_in(client, acme["viewer"])
    response = viewer.get(f"/admin/activity/?connector={acme['other_connector'].pk}")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Select a valid choice" in html
    assert logged["other_issue"].public_id not in html
    assert "Globex Key" not in html


def test_the_subject_filter_names_every_subject_type_as_the_api_does(
    client: Client,
    acme: dict[str, Any],
    logged: dict[str, Any],
    make_grant: Callable[..., Grant],
) -> None:
    asserted = make_grant(logged["second"], Grant.SubjectType.JWT_BEARER, "svc-1")
    issue = TokenIssue.objects.create(
        grant=asserted, project=acme["project"], environment="production"
    )
    viewer = signed_in(client, acme["viewer"])

    listed = rows(viewer, "?subject=jwt-bearer:svc-1")

    assert len(listed) == 1
    assert f"tokenId={issue.public_id}" in listed[0]
    # The type narrows: the same id under another type is another subject.
    assert rows(viewer, "?subject=user:svc-1") == []


def test_the_token_chart_rates_failures_and_names_refusals_apart() -> None:
    hour = activity.Hour(start=timezone.now())
    hour.tokens.update({"ok": 7, "unauthorized": 2, "provider_unavailable": 1})
    [tokens, *_] = activity_charts([hour])
    # A caller's bad credential is not the connector failing: as health counts them.
    assert "10 · failed 10.0% · 2 refused" in tokens
