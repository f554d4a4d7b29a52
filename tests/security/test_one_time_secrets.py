"""One-time secrets never travel in cookies (issue 8, point 11).

A new deployment credential and a destination's signing secret (rotated, or the first one of a
destination added on its connector's page) exist in clear exactly once. They are shown in the
page that answers the request that made them: not through ``messages`` (its cookie is signed,
not encrypted), not in the session, not cached; the next page does not show them again.
"""

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.messages.storage.cookie import CookieStorage
from django.contrib.sessions.models import Session
from django.http import HttpRequest
from django.test import Client
from django.urls import reverse

from connect.models import (
    Connector,
    DeploymentCredential,
    Environment,
    Project,
    Role,
    Team,
    TriggerDestination,
)
from tests.admin.pages import form_data

pytestmark = pytest.mark.django_db

TOKEN = re.compile(r"cdc_[A-Za-z0-9]{12}_[A-Za-z0-9]{24}")
SIGNING_SECRET = re.compile(r"whsec_[A-Za-z0-9+/]{20,}={0,2}")


@pytest.fixture
def team(make_team: Callable[..., Team]) -> Team:
    return make_team(slug="acme")


@pytest.fixture
def project(team: Team, make_project: Callable[..., Project]) -> Project:
    return make_project(team, slug="shop")


@pytest.fixture
def connector(team: Team, make_connector: Callable[..., Connector]) -> Connector:
    return make_connector(
        team, uid="linear/acme", type="linear", secrets={"trigger_signing_secret": "lin-wh-1"}
    )


@pytest.fixture
def browser(team: Team, make_member: Callable[..., User]) -> Client:
    client = Client()
    client.force_login(make_member(team, Role.MEMBER))
    return client


def cookie_contents(response: Any) -> str:
    """Every cookie the response sets, raw and, for the messages cookie, decoded."""
    parts = []
    for name, morsel in response.cookies.items():
        parts.append(f"{name}={morsel.value}")
        if name == "messages" and morsel.value:
            decoded = CookieStorage(HttpRequest())._decode(morsel.value)
            assert decoded is not None, "the messages cookie should decode"
            parts.extend(str(message) for message in decoded)
    return "\n".join(parts)


def session_contents() -> str:
    return "\n".join(str(s.get_decoded()) for s in Session.objects.all())


def assert_shown_once_and_nowhere_else(response: Any, secret: str) -> None:
    assert secret not in cookie_contents(response), "a secret in a cookie"
    assert secret not in session_contents(), "a secret in the session"
    assert response.status_code == 200, "shown in the response itself, not after a redirect"
    assert response.content.decode().count(secret) == 1
    assert "no-store" in response["Cache-Control"]


def test_a_new_deployment_credential_is_shown_once_and_never_put_in_a_cookie(
    browser: Client, project: Project
) -> None:
    add = reverse("admin:connect_deploymentcredential_add")
    data = form_data(browser.get(add), "deploymentcredential_form")
    data.update(
        project=[str(project.pk)],
        environment=[str(project.environments.get().pk)],
        name=["ci"],
    )

    response = browser.post(add, data)

    found = TOKEN.search(response.content.decode())
    assert found, "the new credential is on the page"
    token = found.group(0)
    assert_shown_once_and_nowhere_else(response, token)
    credential = DeploymentCredential.objects.get(name="ci")
    assert credential.matches(token)
    stored = DeploymentCredential.objects.filter(pk=credential.pk).values().get()
    assert not any(token in str(value) for value in stored.values()), "stored only as a digest"
    # The page leads on; that page, and a fresh load of the form, show it no more.
    next_url = reverse("admin:connect_deploymentcredential_changelist")
    assert f'href="{next_url}"' in response.content.decode()
    for path in (
        next_url,
        add,
        reverse("admin:connect_deploymentcredential_change", args=[credential.pk]),
    ):
        again = browser.get(path)
        assert again.status_code == 200
        assert token not in again.content.decode()
        assert token not in cookie_contents(again)


def test_a_rotated_signing_secret_is_shown_once_and_never_put_in_a_cookie(
    browser: Client,
    connector: Connector,
    project: Project,
    make_destination: Callable[..., TriggerDestination],
) -> None:
    destination = make_destination(connector, project)
    previous = destination.reveal("signing_secret")
    changelist = reverse("admin:connect_triggerdestination_changelist")

    response = browser.post(
        changelist,
        {"action": "rotate_secret", "_selected_action": [destination.pk], "index": 0},
    )

    destination.refresh_from_db()
    secret = destination.reveal("signing_secret")
    assert secret != previous
    assert SIGNING_SECRET.fullmatch(secret)
    assert_shown_once_and_nowhere_else(response, secret)
    assert previous not in response.content.decode(), "the stored previous secret stays unseen"
    again = browser.get(changelist)
    assert secret not in again.content.decode()
    assert secret not in cookie_contents(again)


def add_destination_row(data: dict[str, list[str]], project: Project, path: str) -> None:
    """What "Add another trigger destination" does, then filling the row."""
    index = int(data["destinations-TOTAL_FORMS"][0])
    data["destinations-TOTAL_FORMS"] = [str(index + 1)]
    environment = Environment.objects.get(project=project, slug="production")
    data[f"destinations-{index}-project"] = [str(project.pk)]
    data[f"destinations-{index}-environment"] = [str(environment.pk)]
    data[f"destinations-{index}-path"] = [path]
    data[f"destinations-{index}-enabled"] = ["on"]


def test_a_destination_added_in_the_admin_shows_its_first_secret_once(
    browser: Client, connector: Connector, project: Project
) -> None:
    change = reverse("admin:connect_connector_change", args=[connector.pk])
    data = form_data(browser.get(change), "connector_form")
    add_destination_row(data, project, "/hooks/linear")

    response = browser.post(change, data)

    destination = TriggerDestination.objects.get(connector=connector, path="/hooks/linear")
    secret = destination.reveal("signing_secret")
    assert SIGNING_SECRET.fullmatch(secret)
    assert_shown_once_and_nowhere_else(response, secret)
    assert str(destination) in response.content.decode(), "labelled with its destination"
    again = browser.get(change)
    assert secret not in again.content.decode()
    assert secret not in cookie_contents(again)
    # Saving the page again makes no new secret and shows none.
    resaved = browser.post(change, form_data(again, "connector_form"))
    assert resaved.status_code == 302
    assert not SIGNING_SECRET.search(resaved.content.decode() + cookie_contents(resaved))
    destination.refresh_from_db()
    assert destination.reveal("signing_secret") == secret
