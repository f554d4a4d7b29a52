"""PATCH trigger-destinations and the two replay endpoints, called with deployment credentials."""

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from connect.models import (
    AuditEvent,
    Connector,
    ConnectorType,
    Delivery,
    DeploymentCredential,
    InboundEvent,
    Project,
    Team,
    TriggerDestination,
)
from connect.models.deliveries import DeliveryStatus
from connect.services.credentials import deployment_credential_create

pytestmark = pytest.mark.django_db

WHSEC = re.compile(r"^whsec_([A-Za-z0-9+/]{43}=)$")


def credential_for(project: Project, environment: str = "production") -> str:
    credential = DeploymentCredential(
        project=project, environment=project.environments.get(slug=environment)
    )
    return deployment_credential_create(credential=credential, actor="test")


@dataclass
class Tenant:
    team: Team
    project: Project  # the caller's: production and preview
    sibling: Project  # another project of the same team, also linked
    connector: Connector
    token: str
    sibling_token: str

    @property
    def url(self) -> str:
        return f"/v1/connect/connectors/{self.connector.uid}/trigger-destinations"


@pytest.fixture
def make_tenant(
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
) -> Callable[..., Tenant]:
    def make() -> Tenant:
        team = make_team()
        project = make_project(team, slug="web", environments=("production", "preview"))
        sibling = make_project(team, slug="worker", environments=("production",))
        connector = make_connector(
            team,
            uid="github/acme",
            type=ConnectorType.GITHUB,
            secrets={"trigger_signing_secret": "gh"},
            triggers_enabled=True,
        )
        make_link(connector, project, ["production", "preview"])
        make_link(connector, sibling, ["production"])
        return Tenant(
            team=team,
            project=project,
            sibling=sibling,
            connector=connector,
            token=credential_for(project),
            sibling_token=credential_for(sibling),
        )

    return make


@pytest.fixture
def tenant(make_tenant: Callable[..., Tenant]) -> Tenant:
    return make_tenant()


def patch(
    client: Client,
    tenant: Tenant,
    destinations: list[dict[str, Any]],
    token: str | None = None,
    url: str | None = None,
) -> Any:
    return client.patch(
        url or tenant.url,
        data=json.dumps({"destinations": destinations}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token or tenant.token}"},
    )


def spec(project: Project, environment: str = "production", path: str = "/") -> dict[str, str]:
    return {"projectId": project.public_id, "environment": environment, "path": path}


def error_code(response: Any) -> str:
    payload = response.json()
    assert set(payload) == {"error"}, payload
    return str(payload["error"]["code"])


def by_path(response: Any) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.content
    return {d["path"]: d for d in response.json()["destinations"]}


def sealed_secrets(connector: Connector) -> dict[str, str]:
    return dict(
        TriggerDestination.objects.filter(connector=connector).values_list(
            "public_id", "signing_secret_sealed"
        )
    )


# --- PATCH ---------------------------------------------------------------------------------------


def test_new_destinations_get_a_secret_shown_once(client: Client, tenant: Tenant) -> None:
    response = patch(
        client,
        tenant,
        [spec(tenant.project, "production", "/api/a"), spec(tenant.project, "preview", "/api/b")],
    )
    rows = by_path(response)
    assert set(rows) == {"/api/a", "/api/b"}
    assert rows["/api/a"]["environment"] == "production"
    assert rows["/api/b"]["environment"] == "preview"
    for row in rows.values():
        assert set(row) == {"id", "projectId", "environment", "path", "enabled", "signingSecret"}
        assert row["projectId"] == tenant.project.public_id
        assert row["enabled"] is True
        match = WHSEC.match(row["signingSecret"])
        assert match, row["signingSecret"]
        assert len(base64.b64decode(match.group(1))) == 32
        stored = TriggerDestination.objects.get(public_id=row["id"])
        assert stored.reveal("signing_secret") == row["signingSecret"]
        # Sealed at rest: the clear secret is not in the column.
        assert row["signingSecret"] not in stored.signing_secret_sealed
    assert rows["/api/a"]["signingSecret"] != rows["/api/b"]["signingSecret"]
    assert AuditEvent.objects.filter(type="destinations.replaced", team=tenant.team).count() == 1


def test_replace_keeps_rows_that_stay_with_their_sealed_secret_and_deletes_the_rest(
    client: Client, tenant: Tenant
) -> None:
    first = by_path(
        patch(
            client, tenant, [spec(tenant.project, path="/keep"), spec(tenant.project, path="/drop")]
        )
    )
    before = sealed_secrets(tenant.connector)

    second = by_path(
        patch(
            client,
            tenant,
            [spec(tenant.project, path="/keep"), spec(tenant.project, "preview", "/new")],
        )
    )

    assert set(second) == {"/keep", "/new"}
    kept = second["/keep"]
    assert kept["id"] == first["/keep"]["id"]
    assert "signingSecret" not in kept
    after = sealed_secrets(tenant.connector)
    assert after[kept["id"]] == before[kept["id"]]  # the very same ciphertext
    assert first["/drop"]["id"] not in after
    assert not TriggerDestination.objects.filter(public_id=first["/drop"]["id"]).exists()
    assert WHSEC.match(second["/new"]["signingSecret"])
    assert set(after) == {kept["id"], second["/new"]["id"]}


def test_a_removed_destination_with_history_is_disabled_and_comes_back_with_its_secret(
    client: Client, tenant: Tenant
) -> None:
    first = by_path(patch(client, tenant, [spec(tenant.project, path="/hooks")]))
    destination = TriggerDestination.objects.get(public_id=first["/hooks"]["id"])
    _, (delivery,) = event_with_deliveries(tenant.connector, [destination], DeliveryStatus.FAILED)
    sealed = destination.signing_secret_sealed

    assert by_path(patch(client, tenant, [])) == {}

    destination.refresh_from_db()
    assert destination.enabled is False
    assert Delivery.objects.filter(pk=delivery.pk).exists()  # the log of what was sent stays
    back = by_path(patch(client, tenant, [spec(tenant.project, path="/hooks")]))
    assert back["/hooks"]["id"] == destination.public_id
    assert "signingSecret" not in back["/hooks"]  # the same secret as before, not shown again
    destination.refresh_from_db()
    assert destination.enabled is True
    assert destination.signing_secret_sealed == sealed


def test_identical_patch_changes_nothing(client: Client, tenant: Tenant) -> None:
    wanted = [spec(tenant.project, path="/a"), spec(tenant.project, "preview", "/a")]
    first = patch(client, tenant, wanted)
    assert first.status_code == 200
    assert all("signingSecret" in d for d in first.json()["destinations"])
    before = sealed_secrets(tenant.connector)
    assert len(before) == 2
    again = patch(client, tenant, wanted)
    assert again.status_code == 200
    assert all("signingSecret" not in d for d in again.json()["destinations"])
    assert {d["id"] for d in again.json()["destinations"]} == set(before)
    assert sealed_secrets(tenant.connector) == before


def test_empty_list_removes_only_the_callers_project_destinations(
    client: Client, tenant: Tenant, make_destination: Callable[..., TriggerDestination]
) -> None:
    theirs = make_destination(tenant.connector, tenant.sibling, "production", "/sibling")
    before = theirs.signing_secret_sealed
    by_path(patch(client, tenant, [spec(tenant.project, path="/mine")]))

    response = patch(client, tenant, [])

    assert response.status_code == 200
    assert response.json() == {"destinations": []}
    remaining = TriggerDestination.objects.get(connector=tenant.connector)
    assert remaining.pk == theirs.pk
    assert remaining.signing_secret_sealed == before


def test_more_than_the_maximum_is_400_and_changes_nothing(
    client: Client, tenant: Tenant, settings: Any
) -> None:
    settings.CONNECT_MAX_DESTINATIONS = 3
    by_path(patch(client, tenant, [spec(tenant.project, path="/existing")]))
    before = sealed_secrets(tenant.connector)
    response = patch(client, tenant, [spec(tenant.project, path=f"/p{i}") for i in range(4)])
    assert response.status_code == 400
    assert error_code(response) == "invalid_request"
    assert sealed_secrets(tenant.connector) == before
    # Exactly the maximum is fine.
    assert (
        len(by_path(patch(client, tenant, [spec(tenant.project, path=f"/p{i}") for i in range(3)])))
        == 3
    )


def test_default_maximum_is_ten(client: Client, tenant: Tenant) -> None:
    eleven = [spec(tenant.project, path=f"/p{i}") for i in range(11)]
    response = patch(client, tenant, eleven)
    assert response.status_code == 400
    assert error_code(response) == "invalid_request"
    assert len(by_path(patch(client, tenant, eleven[:10]))) == 10


def test_maximum_counts_every_project_on_the_connector(
    client: Client, tenant: Tenant, settings: Any
) -> None:
    """The limit is per connector (README): two projects cannot take it to twice the limit."""
    settings.CONNECT_MAX_DESTINATIONS = 3
    by_path(
        patch(
            client,
            tenant,
            [spec(tenant.sibling, path=f"/s{i}") for i in range(2)],
            token=tenant.sibling_token,
        )
    )
    response = patch(client, tenant, [spec(tenant.project, path=f"/p{i}") for i in range(2)])
    assert response.status_code == 400
    assert error_code(response) == "invalid_request"
    assert TriggerDestination.objects.filter(connector=tenant.connector).count() == 2
    assert len(by_path(patch(client, tenant, [spec(tenant.project, path="/p0")]))) == 1
    assert TriggerDestination.objects.filter(connector=tenant.connector).count() == 3


def test_destination_for_another_project_is_403(client: Client, tenant: Tenant) -> None:
    by_path(patch(client, tenant, [spec(tenant.project, path="/mine")]))
    before = sealed_secrets(tenant.connector)
    response = patch(
        client, tenant, [spec(tenant.project, path="/mine"), spec(tenant.sibling, path="/x")]
    )
    assert response.status_code == 403
    assert error_code(response) == "forbidden"
    assert sealed_secrets(tenant.connector) == before


def test_project_of_another_team_is_unknown(
    client: Client, tenant: Tenant, make_tenant: Callable[..., Tenant]
) -> None:
    stranger = make_tenant()
    response = patch(client, tenant, [spec(stranger.project, path="/x")])
    assert response.status_code == 400
    assert error_code(response) == "invalid_request"
    missing = patch(
        client,
        tenant,
        [{"projectId": "prj_nosuchproject", "environment": "production", "path": "/x"}],
    )
    assert missing.status_code == 400
    assert not TriggerDestination.objects.exists()


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"environment": "staging"}, id="unknown-environment"),
        pytest.param({"path": "hooks"}, id="relative-path"),
        pytest.param({"environment": "not a slug"}, id="not-a-slug"),
        pytest.param({"projectId": None}, id="null-project"),
    ],
)
def test_invalid_specs_are_400(client: Client, tenant: Tenant, bad: dict[str, Any]) -> None:
    response = patch(client, tenant, [{**spec(tenant.project, path="/ok"), **bad}])
    assert response.status_code == 400
    assert error_code(response) == "invalid_request"
    assert not TriggerDestination.objects.exists()


@pytest.mark.parametrize(
    "body",
    [pytest.param({}, id="no-list"), pytest.param({"destinations": "x"}, id="not-a-list")],
)
def test_malformed_request_is_400(client: Client, tenant: Tenant, body: dict[str, Any]) -> None:
    response = client.patch(
        tenant.url,
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {tenant.token}"},
    )
    assert response.status_code == 400
    assert error_code(response) == "invalid_request"


def test_without_a_credential_is_401(client: Client, tenant: Tenant) -> None:
    response = client.patch(
        tenant.url, data=json.dumps({"destinations": []}), content_type="application/json"
    )
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"


def test_connector_of_another_team_is_404(
    client: Client, tenant: Tenant, make_tenant: Callable[..., Tenant]
) -> None:
    stranger = make_tenant()
    url = f"/v1/connect/connectors/{stranger.connector.public_id}/trigger-destinations"
    response = patch(client, tenant, [spec(tenant.project, path="/x")], url=url)
    assert response.status_code == 404
    assert error_code(response) == "not_found"
    assert not TriggerDestination.objects.exists()


def test_connector_not_linked_to_the_callers_project_is_403(
    client: Client, tenant: Tenant, make_connector: Callable[..., Connector]
) -> None:
    unlinked = make_connector(
        tenant.team,
        uid="github/unlinked",
        type=ConnectorType.GITHUB,
        triggers_enabled=True,
        secrets={"trigger_signing_secret": "gh-unlinked"},
    )
    url = f"/v1/connect/connectors/{unlinked.uid}/trigger-destinations"
    response = patch(client, tenant, [spec(tenant.project, path="/x")], url=url)
    assert response.status_code == 403
    assert error_code(response) == "client_not_linked_to_project"
    assert not TriggerDestination.objects.exists()


# --- Replay --------------------------------------------------------------------------------------


def event_with_deliveries(
    connector: Connector,
    destinations: list[TriggerDestination],
    status: str,
    provider_event_id: str = "",
) -> tuple[InboundEvent, list[Delivery]]:
    event = InboundEvent.objects.create(
        connector=connector,
        provider_event_id=provider_event_id,
        event_type="issues.opened",
        headers={},
        content_type="application/json",
        body=b"{}",
        verified=True,
    )
    past = timezone.now() - timedelta(days=1)
    deliveries = [
        Delivery.objects.create(
            event=event,
            destination=d,
            status=status,
            attempts=8,
            next_attempt_at=past,
            last_status_code=500,
        )
        for d in destinations
    ]
    return event, deliveries


def assert_reset(delivery: Delivery, since: Any) -> None:
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.attempts == 0
    assert delivery.next_attempt_at >= since
    assert delivery.lease_until is None


def assert_untouched(delivery: Delivery) -> None:
    status, attempts = delivery.status, delivery.attempts
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (status, attempts)


def replay(
    client: Client,
    tenant: Tenant,
    what: str,
    token: str | None = None,
    connector: Connector | None = None,
) -> Any:
    ref = (connector or tenant.connector).uid
    return client.post(
        f"/v1/connect/connectors/{ref}/{what}/replay",
        headers={"Authorization": f"Bearer {token or tenant.token}"},
    )


def test_trigger_replay_resets_the_callers_deliveries_of_that_event(
    client: Client, tenant: Tenant, make_destination: Callable[..., TriggerDestination]
) -> None:
    mine = [
        make_destination(tenant.connector, tenant.project, "production", p) for p in ("/a", "/b")
    ]
    theirs = make_destination(tenant.connector, tenant.sibling, "production", "/s")
    event, deliveries = event_with_deliveries(
        tenant.connector, [*mine, theirs], DeliveryStatus.FAILED
    )
    _, other_deliveries = event_with_deliveries(
        tenant.connector, mine, DeliveryStatus.FAILED, provider_event_id="other"
    )
    since = timezone.now()

    response = replay(client, tenant, f"triggers/{event.public_id}")

    assert response.status_code == 200, response.content
    assert response.json() == {"replayed": 2}
    for delivery in deliveries[:2]:
        assert_reset(delivery, since)
    assert_untouched(deliveries[2])  # the sibling project's destination
    for delivery in other_deliveries:
        assert_untouched(delivery)
    recorded = AuditEvent.objects.get(type="trigger.replayed", team=tenant.team)
    assert recorded.correlation == {"triggerRequestId": event.public_id}
    assert recorded.fields == {"deliveries": 2}


def test_trigger_replay_also_resends_succeeded_deliveries(
    client: Client, tenant: Tenant, make_destination: Callable[..., TriggerDestination]
) -> None:
    destination = make_destination(tenant.connector, tenant.project, "production", "/a")
    event, (delivery,) = event_with_deliveries(
        tenant.connector, [destination], DeliveryStatus.SUCCEEDED
    )
    webhook_id = delivery.webhook_id
    since = timezone.now()
    assert replay(client, tenant, f"triggers/{event.public_id}").json() == {"replayed": 1}
    assert_reset(delivery, since)
    assert delivery.webhook_id == webhook_id  # receivers dedupe on it


def test_destination_replay_resets_only_its_failed_deliveries(
    client: Client, tenant: Tenant, make_destination: Callable[..., TriggerDestination]
) -> None:
    destination = make_destination(tenant.connector, tenant.project, "production", "/a")
    neighbour = make_destination(tenant.connector, tenant.project, "production", "/b")
    _, failed = event_with_deliveries(
        tenant.connector, [destination, neighbour], DeliveryStatus.FAILED, "e1"
    )
    _, (succeeded,) = event_with_deliveries(
        tenant.connector, [destination], DeliveryStatus.SUCCEEDED, "e2"
    )
    _, (pending,) = event_with_deliveries(
        tenant.connector, [destination], DeliveryStatus.PENDING, "e3"
    )
    since = timezone.now()

    response = replay(client, tenant, f"trigger-destinations/{destination.public_id}")

    assert response.status_code == 200, response.content
    assert response.json() == {"replayed": 1}
    assert_reset(failed[0], since)
    assert_untouched(failed[1])
    assert_untouched(succeeded)
    pending.refresh_from_db()
    assert pending.attempts == 8  # pending but not failed: left to its schedule
    recorded = AuditEvent.objects.get(type="destination.replayed", team=tenant.team)
    assert recorded.targets == {"destinationId": destination.public_id}
    assert recorded.fields == {"deliveries": 1}


def test_replay_of_another_connectors_event_is_404(
    client: Client,
    tenant: Tenant,
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
    make_destination: Callable[..., TriggerDestination],
) -> None:
    other = make_connector(
        tenant.team,
        uid="github/other",
        type=ConnectorType.GITHUB,
        triggers_enabled=True,
        secrets={"trigger_signing_secret": "gh-other"},
    )
    make_link(other, tenant.project, ["production"])
    destination = make_destination(other, tenant.project, "production", "/o")
    event, (delivery,) = event_with_deliveries(other, [destination], DeliveryStatus.FAILED)
    response = replay(client, tenant, f"triggers/{event.public_id}")
    assert response.status_code == 404
    assert error_code(response) == "not_found"
    response = replay(client, tenant, f"trigger-destinations/{destination.public_id}")
    assert response.status_code == 404
    assert error_code(response) == "not_found"
    assert_untouched(delivery)
    # Through its own connector it works.
    assert replay(client, tenant, f"triggers/{event.public_id}", connector=other).json() == {
        "replayed": 1
    }


def test_replay_of_another_teams_ids_is_404(
    client: Client,
    tenant: Tenant,
    make_tenant: Callable[..., Tenant],
    make_destination: Callable[..., TriggerDestination],
) -> None:
    stranger = make_tenant()
    destination = make_destination(stranger.connector, stranger.project, "production", "/x")
    event, (delivery,) = event_with_deliveries(
        stranger.connector, [destination], DeliveryStatus.FAILED
    )
    for what in (f"triggers/{event.public_id}", f"trigger-destinations/{destination.public_id}"):
        response = replay(client, tenant, what)
        assert response.status_code == 404, what
        assert error_code(response) == "not_found"
    # Their connector by id, with our credential: not ours to see.
    response = client.post(
        f"/v1/connect/connectors/{stranger.connector.public_id}/triggers/{event.public_id}/replay",
        headers={"Authorization": f"Bearer {tenant.token}"},
    )
    assert response.status_code == 404
    assert_untouched(delivery)
    assert not AuditEvent.objects.filter(type__endswith=".replayed").exists()


def test_replay_of_a_sibling_projects_destination_is_404(
    client: Client, tenant: Tenant, make_destination: Callable[..., TriggerDestination]
) -> None:
    theirs = make_destination(tenant.connector, tenant.sibling, "production", "/s")
    _, (delivery,) = event_with_deliveries(tenant.connector, [theirs], DeliveryStatus.FAILED)
    response = replay(client, tenant, f"trigger-destinations/{theirs.public_id}")
    assert response.status_code == 404
    assert_untouched(delivery)
    ok = replay(
        client, tenant, f"trigger-destinations/{theirs.public_id}", token=tenant.sibling_token
    )
    assert ok.json() == {"replayed": 1}


def test_unknown_ids_are_404(client: Client, tenant: Tenant) -> None:
    for what in ("triggers/trq_doesnotexist", "trigger-destinations/dst_doesnotexist"):
        response = replay(client, tenant, what)
        assert response.status_code == 404
        assert error_code(response) == "not_found"


def test_patch_refuses_an_environment_without_a_base_url(client: Client, tenant: Tenant) -> None:
    tenant.project.environments.filter(slug="preview").update(base_url="")
    response = patch(client, tenant, [spec(tenant.project), spec(tenant.project, "preview")])
    assert response.status_code == 400, response.content
    assert error_code(response) == "invalid_request"
    assert "has no base URL" in response.json()["error"]["message"]
    assert not TriggerDestination.objects.filter(connector=tenant.connector).exists()


def test_an_old_destination_without_a_base_url_fails_at_once_with_the_reason(
    tenant: Tenant, make_destination: Callable[..., TriggerDestination]
) -> None:
    """Rows made before the refusal: one clear, final failure, not a ValueError retried for
    days."""
    from connect.models import DeliveryAttempt
    from connect.services.deliveries import delivery_attempt

    destination = make_destination(tenant.connector, tenant.project)
    tenant.project.environments.filter(slug="production").update(base_url="")
    event = InboundEvent.objects.create(connector=tenant.connector, body=b"{}")
    delivery = Delivery.objects.create(event=event, destination=destination)
    Delivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.DELIVERING, lease_until=timezone.now() + timedelta(minutes=1)
    )
    delivery = Delivery.objects.select_related("destination__environment").get(pk=delivery.pk)
    outcome = delivery_attempt(delivery=delivery)
    assert not outcome.retryable
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    attempt = DeliveryAttempt.objects.get(delivery=delivery)
    assert "has no base URL" in attempt.error
    assert "ValueError" not in attempt.error
