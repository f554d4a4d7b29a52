"""A connector's ``events`` pick which inbound events are forwarded: the rest are recorded as
received and skipped, and never reach a destination."""

from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.test import Client

from connect.models import (
    Connector,
    ConnectorType,
    Delivery,
    Environment,
    InboundEvent,
    Role,
    TriggerDestination,
)
from connect.models.connectors import event_selected
from connect.services.deliveries import deliveries_send
from tests.admin.pages import form_data as page_form_data
from tests.fixtures import webhook_body
from tests.triggers.conftest import Triggers, github_headers, post_raw
from tests.triggers.receiver import Receiver

pytestmark = pytest.mark.django_db

SECRET = "github-signing-secret"


@pytest.mark.parametrize(
    ("selection", "event_type", "passes"),
    [
        ([], "issues.opened", True),
        ([], "", True),
        (["issues"], "issues", True),
        (["issues"], "issues.opened", True),
        (["issues"], "issues.opened.again", True),
        (["issues"], "issue_comment.created", False),
        (["issues"], "issues_x", False),
        (["issues"], "issuesopened", False),
        (["issues"], "", False),
        (["issues.opened"], "issues.closed", False),
        (["issues.opened"], "issues", False),
        (["Issue"], "Issue.create", True),
        (["Issue"], "issue.create", False),  # as the provider spells it
        (["push", "issues"], "push", True),
        (["message.im"], "message.im", True),
        (["message"], "message.channels", True),
    ],
)
def test_a_type_selects_itself_and_the_types_under_it(
    selection: list[str], event_type: str, passes: bool
) -> None:
    assert event_selected(selection, event_type) is passes


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


@pytest.fixture
def github(triggers: Triggers, receiver: Receiver) -> tuple[Connector, TriggerDestination]:
    connector = triggers.make(ConnectorType.GITHUB, secret=SECRET)
    destination = triggers.destination(connector, path="/github")
    Environment.objects.filter(project=triggers.project).update(base_url=receiver.url)
    return connector, destination


def post_github(client: Client, connector: Connector, event: str, delivery: str) -> str:
    body = webhook_body("github", "issues.opened", {"issue.title": delivery})
    response = post_raw(client, connector, body, github_headers(SECRET, body, delivery, event))
    assert response.status_code == 200, response.content
    return str(response.json()["id"])


def test_a_filtered_event_is_recorded_and_not_delivered(
    client: Client, github: tuple[Connector, TriggerDestination], receiver: Receiver
) -> None:
    connector, _ = github
    Connector.objects.filter(pk=connector.pk).update(events=["issues"])

    selected = post_github(client, connector, "issues", "d-1")
    filtered = post_github(client, connector, "pull_request", "d-2")

    kept = InboundEvent.objects.get(public_id=selected)
    skipped = InboundEvent.objects.get(public_id=filtered)
    assert (kept.event_type, kept.skipped) == ("issues.opened", False)
    assert (skipped.event_type, skipped.skipped, skipped.verified) == (
        "pull_request.opened",
        True,
        True,
    )
    assert skipped.body == webhook_body("github", "issues.opened", {"issue.title": "d-2"})
    assert list(Delivery.objects.values_list("event__public_id", flat=True)) == [selected]

    assert deliveries_send(budget_seconds=5) == 1
    [got] = receiver.received()
    assert got.path == "/github"
    assert got.headers["x-connect-trigger-id"] == selected
    assert deliveries_send(budget_seconds=5) == 0


def test_an_empty_selection_forwards_everything(
    client: Client, github: tuple[Connector, TriggerDestination]
) -> None:
    connector, _ = github
    ids = [post_github(client, connector, e, f"d-{e}") for e in ("issues", "push", "release")]
    assert not InboundEvent.objects.filter(skipped=True).exists()
    assert sorted(Delivery.objects.values_list("event__public_id", flat=True)) == sorted(ids)


def test_a_skipped_event_has_nothing_to_replay(
    client: Client, github: tuple[Connector, TriggerDestination], receiver: Receiver
) -> None:
    from connect.services.deliveries import event_replay

    connector, _ = github
    Connector.objects.filter(pk=connector.pk).update(events=["release"])
    skipped = InboundEvent.objects.get(public_id=post_github(client, connector, "issues", "d-9"))
    assert event_replay(event=skipped, actor=None) == 0
    assert deliveries_send(budget_seconds=5) == 0
    assert receiver.received() == []


@pytest.mark.parametrize(
    "events",
    [
        "issues",
        {"issues": True},
        [""],
        ["issues."],
        ["has space"],
        [42],
        ["x" * 121],
        ["issues", "issues"],
        ["e"] * 201,
    ],
)
def test_a_selection_must_be_a_list_of_event_types(
    github: tuple[Connector, TriggerDestination], events: object
) -> None:
    connector, _ = github
    connector.events = events
    with pytest.raises(ValidationError) as caught:
        connector.full_clean()
    assert "events" in caught.value.message_dict


# --- Admin ---------------------------------------------------------------------------------------


@pytest.fixture
def member_client(client: Client, triggers: Triggers, make_member: Callable[..., User]) -> Client:
    client.force_login(make_member(triggers.team, Role.MEMBER))
    return client


def change_url(connector: Connector) -> str:
    return f"/admin/connect/connector/{connector.pk}/change/"


def form_data(client: Client, connector: Connector) -> dict[str, list[str]]:
    """The change form as the browser would post it back, untouched."""
    return page_form_data(client.get(change_url(connector)), "connector_form")


def test_the_admin_offers_the_types_known_events_and_free_entries(
    member_client: Client, github: tuple[Connector, TriggerDestination]
) -> None:
    connector, _ = github
    page = member_client.get(change_url(connector)).content.decode()
    for known in ("issues", "pull_request", "workflow_run", "release"):
        assert f'type="checkbox" name="events_known" value="{known}"' in page
    assert 'name="events_other"' in page


def test_a_member_selects_events_in_the_admin(
    member_client: Client, github: tuple[Connector, TriggerDestination]
) -> None:
    connector, _ = github
    data = form_data(member_client, connector)
    data.update({"events_known": ["issues", "push"], "events_other": ["deployment_status, ping "]})
    response = member_client.post(change_url(connector), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    connector.refresh_from_db()
    assert connector.events == ["issues", "push", "deployment_status", "ping"]

    # Shown back as it was chosen; untouched, a save keeps it.
    data = form_data(member_client, connector)
    assert sorted(data["events_known"]) == ["issues", "push"]
    assert data["events_other"] == ["deployment_status, ping"]
    data["name"] = ["Renamed"]
    assert member_client.post(change_url(connector), data).status_code == 302
    connector.refresh_from_db()
    assert sorted(connector.events) == ["deployment_status", "issues", "ping", "push"]

    # Nothing ticked: everything again.
    data = form_data(member_client, connector)
    data.pop("events_known", None)
    data["events_other"] = [""]
    assert member_client.post(change_url(connector), data).status_code == 302
    connector.refresh_from_db()
    assert connector.events == []


def test_a_bad_free_entry_is_refused_on_the_form(
    member_client: Client, github: tuple[Connector, TriggerDestination]
) -> None:
    connector, _ = github
    data = form_data(member_client, connector)
    data.update({"events_known": ["issues"], "events_other": ["has space"]})
    response = member_client.post(change_url(connector), data)
    assert response.status_code == 200
    assert "is not an event type" in response.content.decode()
    connector.refresh_from_db()
    assert connector.events == []


def test_a_viewer_cannot_change_the_selection(
    client: Client,
    triggers: Triggers,
    make_member: Callable[..., User],
    github: tuple[Connector, TriggerDestination],
) -> None:
    connector, _ = github
    client.force_login(make_member(triggers.team, Role.MEMBER))
    data = form_data(client, connector)
    client.force_login(make_member(triggers.team, Role.VIEWER))
    data["events_known"] = ["issues"]
    assert client.post(change_url(connector), data).status_code == 403
    connector.refresh_from_db()
    assert connector.events == []


def test_another_teams_connector_is_404(
    client: Client,
    make_team: Callable[..., object],
    make_member: Callable[..., User],
    github: tuple[Connector, TriggerDestination],
) -> None:
    connector, _ = github
    client.force_login(make_member(make_team(), Role.OWNER))
    assert client.get(change_url(connector)).status_code == 404
    assert client.post(change_url(connector), {"events_other": "push"}).status_code == 404
    connector.refresh_from_db()
    assert connector.events == []


def test_the_log_shows_a_skipped_event_as_not_forwarded(
    member_client: Client, client: Client, github: tuple[Connector, TriggerDestination]
) -> None:
    connector, _ = github
    Connector.objects.filter(pk=connector.pk).update(events=["release"])
    skipped = post_github(Client(), connector, "issues", "d-log")
    page = member_client.get("/admin/connect/inboundevent/?skipped__exact=1").content.decode()
    assert skipped in page
    event = InboundEvent.objects.get(public_id=skipped)
    detail = member_client.get(f"/admin/connect/inboundevent/{event.pk}/change/").content.decode()
    assert "Skipped" in detail
