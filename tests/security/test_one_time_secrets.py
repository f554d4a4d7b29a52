"""One-time secrets never travel in cookies, and a reload makes none (issue 8, point 11).

A new deployment credential and a destination's signing secret (rotated, or the first one of a
destination added on its connector's page) exist in clear exactly once. The request that makes
one answers with a redirect to a page of its own (Post/Redirect/Get: reloading that page does
not post the form again); meanwhile the secret waits on the server, sealed and bound to the
user, for one visit. It is never in ``messages`` (its cookie is signed, not encrypted), the
session, the URL, or a cache; the next visit, another user, or any other page shows it no more.
"""

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.messages.storage.cookie import CookieStorage
from django.contrib.sessions.models import Session
from django.core.cache import caches
from django.http import HttpRequest
from django.test import Client
from django.urls import reverse

from connect.admin import one_time
from connect.callers import caller_from_authorization
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
ONE_TIME_PAGE = re.compile(r"/one-time/[A-Za-z0-9_-]{43}/$")


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


def assert_shown_once_and_nowhere_else(posted: Any, response: Any, secret: str) -> None:
    """``posted`` made the secret and redirected to ``response``, the page that shows it."""
    for answer in (posted, response):
        assert secret not in cookie_contents(answer), "a secret in a cookie"
    assert secret not in session_contents(), "a secret in the session"
    assert posted.status_code == 302, "the POST redirects: a reload must not post again"
    assert secret not in posted["Location"] + posted.content.decode()
    assert response.status_code == 200
    assert response.content.decode().count(secret) == 1
    assert "no-store" in response["Cache-Control"]


def shown_after(browser: Client, posted: Any) -> Any:
    """The page the POST redirected to: where the new secret is shown."""
    assert posted.status_code == 302, (posted.status_code, posted.content[:500])
    assert ONE_TIME_PAGE.search(posted["Location"]), posted["Location"]
    return browser.get(posted["Location"])


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

    posted = browser.post(add, data)
    response = shown_after(browser, posted)

    found = TOKEN.search(response.content.decode())
    assert found, "the new credential is on the page"
    token = found.group(0)
    assert_shown_once_and_nowhere_else(posted, response, token)
    credential = DeploymentCredential.objects.get(name="ci")
    caller = caller_from_authorization(f"Bearer {token}")
    assert caller.label == f"credential:{credential.public_id}"
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

    posted = browser.post(
        changelist,
        {"action": "rotate_secret", "_selected_action": [destination.pk], "index": 0},
    )
    response = shown_after(browser, posted)

    destination.refresh_from_db()
    secret = destination.reveal("signing_secret")
    assert secret != previous
    assert SIGNING_SECRET.fullmatch(secret)
    assert_shown_once_and_nowhere_else(posted, response, secret)
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

    posted = browser.post(change, data)
    response = shown_after(browser, posted)

    destination = TriggerDestination.objects.get(connector=connector, path="/hooks/linear")
    secret = destination.reveal("signing_secret")
    assert SIGNING_SECRET.fullmatch(secret)
    assert_shown_once_and_nowhere_else(posted, response, secret)
    assert str(destination) in response.content.decode(), "labelled with its destination"
    # The save's "changed successfully" waits for the next page: this one has no form below.
    assert "changed successfully" not in response.content.decode()
    again = browser.get(change)
    assert "changed successfully" in again.content.decode()
    assert secret not in again.content.decode()
    assert secret not in cookie_contents(again)
    # Saving the page again makes no new secret and shows none.
    resaved = browser.post(change, form_data(again, "connector_form"))
    assert resaved.status_code == 302
    assert not SIGNING_SECRET.search(resaved.content.decode() + cookie_contents(resaved))
    destination.refresh_from_db()
    assert destination.reveal("signing_secret") == secret


# Post/Redirect/Get: a reload asks for the page again, and the page shows its secret once ------


def add_credential(browser: Client, project: Project, name: str = "ci") -> Any:
    add = reverse("admin:connect_deploymentcredential_add")
    data = form_data(browser.get(add), "deploymentcredential_form")
    data.update(
        project=[str(project.pk)], environment=[str(project.environments.get().pk)], name=[name]
    )
    return browser.post(add, data)


def stashed(posted: Any) -> str:
    """What the cache holds for the page ``posted`` redirected to, as stored."""
    reference = posted["Location"].rstrip("/").rsplit("/", 1)[1]
    return str(caches[one_time.CACHE_ALIAS].get(one_time._cache_key(reference)) or "")


def assert_shows_nothing(response: Any, *secrets: str) -> None:
    text = response.content.decode()
    assert response.status_code == 404
    assert "Nothing to show here" in text
    assert not TOKEN.search(text)
    assert not SIGNING_SECRET.search(text)
    for secret in secrets:
        assert secret not in text + cookie_contents(response)
    assert "no-store" in response["Cache-Control"]


def test_reloading_a_new_credentials_page_makes_no_second_credential_and_shows_nothing(
    browser: Client, project: Project
) -> None:
    posted = add_credential(browser, project)
    waiting = stashed(posted)
    first = shown_after(browser, posted)
    token = TOKEN.search(first.content.decode())
    assert token, "shown on the first visit"
    assert waiting.startswith("v1."), "it waited sealed"
    assert token.group(0) not in waiting
    assert stashed(posted) == "", "and waits no more"

    reloaded = browser.get(posted["Location"])

    assert_shows_nothing(reloaded, token.group(0))
    assert DeploymentCredential.objects.count() == 1, "the reload posted nothing"
    credential = DeploymentCredential.objects.get()
    caller = caller_from_authorization(f"Bearer {token.group(0)}")
    assert caller.label == f"credential:{credential.public_id}"


def test_reloading_a_rotated_secrets_page_rotates_nothing_and_shows_nothing(
    browser: Client,
    connector: Connector,
    project: Project,
    make_destination: Callable[..., TriggerDestination],
) -> None:
    destination = make_destination(connector, project)
    posted = browser.post(
        reverse("admin:connect_triggerdestination_changelist"),
        {"action": "rotate_secret", "_selected_action": [destination.pk], "index": 0},
    )
    shown_after(browser, posted)
    destination.refresh_from_db()
    secret, previous = (
        destination.reveal("signing_secret"),
        destination.reveal("previous_signing_secret"),
    )

    reloaded = browser.get(posted["Location"])

    assert_shows_nothing(reloaded, secret, previous)
    destination.refresh_from_db()
    assert destination.reveal("signing_secret") == secret, "rotated once, not on the reload"
    assert destination.reveal("previous_signing_secret") == previous


def test_another_user_of_the_same_team_cannot_open_a_new_secrets_page(
    browser: Client, team: Team, project: Project, make_member: Callable[..., User]
) -> None:
    colleague, viewer = Client(), Client()
    colleague.force_login(make_member(team, Role.MEMBER))
    viewer.force_login(make_member(team, Role.VIEWER))
    posted = add_credential(browser, project)

    by_colleague = colleague.get(posted["Location"])
    by_viewer = viewer.get(posted["Location"])
    by_stranger = Client().get(posted["Location"])

    assert_shows_nothing(by_colleague)
    assert by_viewer.status_code == 403
    assert by_stranger.status_code == 302, "to the sign-in page"
    for response in (by_viewer, by_stranger):
        assert not TOKEN.search(response.content.decode())
    # Their visits did not use it up: it is still there for the member who made it.
    mine = browser.get(posted["Location"])
    assert mine.status_code == 200
    token = TOKEN.search(mine.content.decode())
    assert token
    credential = DeploymentCredential.objects.get()
    caller = caller_from_authorization(f"Bearer {token.group(0)}")
    assert caller.label == f"credential:{credential.public_id}"


def test_the_reference_of_a_new_secrets_page_cannot_be_guessed(
    browser: Client, project: Project
) -> None:
    references = []
    for n in range(8):
        posted = add_credential(browser, project, name=f"ci-{n}")
        found = ONE_TIME_PAGE.search(posted["Location"])
        assert found, posted["Location"]
        references.append(found.group(0).split("/")[2])
    credentials = DeploymentCredential.objects.all()

    # 43 URL-safe characters: 256 random bits, none derived from the credential or the user.
    assert len(set(references)) == len(references)
    for reference in references:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", reference)
        for credential in credentials:
            assert credential.public_id not in reference
            assert credential.prefix not in reference
    # A near miss opens nothing, and does not use up the real one.
    reference = references[0]
    near = reference[:-1] + ("A" if reference[-1] != "A" else "B")
    page = reverse("admin:connect_deploymentcredential_one_time", args=[reference])
    assert_shows_nothing(browser.get(page.replace(reference, near)))
    assert TOKEN.search(browser.get(page).content.decode())
