"""Every admin list (and the index) costs the same number of queries at 50 rows as at 500: no
query per row, per filter choice or per chart. Timings at 100,000 rows are the benchmark's
(``benchmarks/admin_lists.py``); here, the counts."""

import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from connect.admin.connectors import INSTALLATIONS_SHOWN
from connect.models import (
    AuditEvent,
    AuthorizationRequest,
    Connector,
    Delivery,
    DeliveryAttempt,
    Grant,
    InboundEvent,
    Installation,
    Project,
    Role,
    Team,
    TokenIssue,
    TriggerDestination,
)
from connect.models.authorizations import verifier_digest

LISTS = [
    "/admin/",
    "/admin/activity/",
    "/admin/connect/connector/",
    "/admin/connect/installation/",
    "/admin/connect/installation/?status__exact=active",
    "/admin/connect/grant/",
    "/admin/connect/tokenissue/",
    "/admin/connect/tokenissue/?q=stk_missing",
    "/admin/connect/inboundevent/",
    "/admin/connect/inboundevent/?verified__exact=1",
    "/admin/connect/delivery/",
    "/admin/connect/delivery/?status__exact=failed",
    "/admin/connect/delivery/?q=msg_",
    "/admin/connect/deliveryattempt/",
    "/admin/connect/deliveryattempt/?answer=5xx",
    "/admin/connect/auditevent/",
    "/admin/connect/auditevent/?type__exact=installation.added",
    "/admin/connect/authorizationrequest/",
    "/admin/connect/triggerdestination/",
]


class World:
    def __init__(self, team: Team, project: Project, connector: Connector, owner: User) -> None:
        self.team, self.project, self.connector, self.owner = team, project, connector, owner
        self.destinations: list[TriggerDestination] = []

    def grow(self, rows: int) -> None:
        """Add rows of every listed kind until each has ``rows`` (destinations: a tenth)."""
        now = timezone.now()
        have = Installation.objects.filter(connector=self.connector).count()
        installations = Installation.objects.bulk_create(
            Installation(
                connector=self.connector,
                tenant_id=f"T{i}",
                display_name=f"tenant {i}",
                created_at=now - timedelta(seconds=i),
            )
            for i in range(have, rows)
        )
        grants = Grant.objects.bulk_create(
            Grant(
                installation=installation,
                subject_type="user",
                subject_id=str(i),
                status="needs_reauth" if i % 7 == 0 else "active",
            )
            for i, installation in enumerate(installations, start=have)
        )
        TokenIssue.objects.bulk_create(
            TokenIssue(grant=grant, project=self.project, environment="production")
            for grant in grants
        )
        while len(self.destinations) < rows // 10:
            self.destinations.append(
                TriggerDestination.objects.create(
                    connector=self.connector,
                    project=self.project,
                    environment=self.project.environments.get(slug="production"),
                    path=f"/hook/{len(self.destinations)}",
                )
            )
        events = InboundEvent.objects.bulk_create(
            InboundEvent(
                connector=self.connector,
                installation=installation,
                event_type="message",
                body=b"{}",
                body_sha256=secrets.token_hex(32),
                verified=True,
            )
            for installation in installations
        )
        deliveries = Delivery.objects.bulk_create(
            Delivery(
                event=event,
                destination=self.destinations[i % len(self.destinations)],
                status="failed" if i % 3 == 0 else "succeeded",
                attempts=1,
            )
            for i, event in enumerate(events)
        )
        DeliveryAttempt.objects.bulk_create(
            DeliveryAttempt(delivery=delivery, status_code=500 if i % 3 == 0 else 200)
            for i, delivery in enumerate(deliveries)
        )
        AuditEvent.objects.bulk_create(
            AuditEvent(
                team=self.team,
                type="installation.added",
                targets={
                    "connectorId": self.connector.public_id,
                    "installationId": installation.public_id,
                },
            )
            for installation in installations
        )
        AuthorizationRequest.objects.bulk_create(
            AuthorizationRequest(
                connector=self.connector,
                kind="consent",
                installation=installation,
                subject_type="user",
                subject_id=str(i),
                verifier_sha256=verifier_digest(secrets.token_urlsafe(16)),
                state=secrets.token_urlsafe(24),
                expires_at=now,
                outcome="completed",
            )
            for i, installation in enumerate(installations)
        )


@pytest.fixture
def world(
    make_team: Callable[..., Team],
    make_member: Callable[..., User],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
) -> World:
    team = make_team(slug="big", name="Big")
    owner = make_member(team, Role.OWNER, username="owner")
    project = make_project(team, slug="app")
    connector = make_connector(team, uid="slack/big", type="slack", name="Big Slack")
    # Another team's rows, never listed to this owner.
    other = make_team(slug="other")
    make_connector(other, uid="api-key/other", secrets={"api_key": "k"})
    return World(team, project, connector, owner)


def queries(client: Client, path: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return len(captured.captured_queries)


@pytest.mark.django_db
def test_each_list_costs_the_same_queries_at_50_and_500_rows(
    client: Client, world: World, django_assert_num_queries: Any
) -> None:
    client.force_login(world.owner)
    # The connector page too: its installations capped, its destinations' selects read once.
    pages = [*LISTS, f"/admin/connect/connector/{world.connector.pk}/change/"]
    world.grow(50)
    at_50 = {path: queries(client, path) for path in pages}
    world.grow(500)
    for path in LISTS:
        with django_assert_num_queries(at_50[path]):
            assert client.get(path).status_code == 200, path
    # The connector page: never more at 500 (it made one query fewer there, unexplained yet).
    connector_page = pages[-1]
    assert queries(client, connector_page) <= at_50[connector_page]
    # Each inline's selects, the link rows' environments and the page's own object read once
    # (the page made 40 queries before they were).
    assert at_50[connector_page] <= 20


@pytest.mark.django_db
def test_the_connector_page_shows_the_newest_installations_and_links_to_the_rest(
    client: Client, world: World
) -> None:
    client.force_login(world.owner)
    world.grow(120)
    html = client.get(f"/admin/connect/connector/{world.connector.pk}/change/").content.decode()
    assert html.count('class="field-tenant_id"') == INSTALLATIONS_SHOWN == 20
    assert "tenant 0<" in html  # the newest
    assert "tenant 119<" not in html
    assert f"/admin/connect/installation/?connector__id__exact={world.connector.pk}" in html


@pytest.mark.django_db
def test_a_webhook_id_is_found_by_its_start(client: Client, world: World) -> None:
    client.force_login(world.owner)
    world.grow(20)
    delivery = Delivery.objects.filter(event__connector=world.connector).first()
    assert delivery is not None
    html = client.get(f"/admin/connect/delivery/?q={delivery.webhook_id[:12]}").content.decode()
    assert delivery.webhook_id in html
    html = client.get(f"/admin/connect/delivery/?q={delivery.webhook_id.upper()}").content.decode()
    assert delivery.webhook_id not in html  # ids match as stored, by the index


@pytest.mark.django_db
def test_log_rows_carry_their_team_whoever_writes_them(world: World) -> None:
    """Rows written without their team (here, the ORM as any writer) get it from the database,
    and the team-scoped lists filter that one column: no join through grants or events."""
    world.grow(10)
    for model in (TokenIssue, InboundEvent, Delivery, DeliveryAttempt):
        teams = set(model._default_manager.values_list("team_id", flat=True))
        assert teams == {world.team.pk}, model
        sql = str(model._default_manager.all().for_user(world.owner).query)
        for parent in ("connect_grant", "connect_installation", "connect_connector"):
            assert parent not in sql, (model, parent)
