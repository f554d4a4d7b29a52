"""Secrets go in through the admin's write-only inputs and never come back out: not in a page,
not in the database in clear, not in a log line, not in SQL parameters."""

import logging
import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from connect.callers import caller_from_authorization
from connect.models import (
    AuditEvent,
    AuthorizationRequest,
    Connector,
    DeploymentCredential,
    Grant,
    Installation,
    Project,
    Role,
    Team,
    TriggerDestination,
)
from connect.services.destinations import destination_save
from tests.admin.pages import form_data, help_text

# Each value carries a marker that appears nowhere else, so a partial leak is caught too.
SECRETS = {
    "client_secret": "cs-Q7ZKpW2mXv9rLt4N-client",
    "api_key": "ak-H3dFj8sYc1uEo6Ba-apikey",
    "private_key": (
        "-----BEGIN PRIVATE KEY-----\n"
        "MIIBVAIBADANBgkqhkiG9w0BAQEFAASCAT4wggE6-pk-V5nR8tLw2QyZ0aKe\n"
        "AgEAAkEAvX9-pk-J4hM6cT1sGd7UfYb3oPiN\n"
        "-----END PRIVATE KEY-----"
    ),
    "trigger_signing_secret": "whsec_Lm4Tg9Rw2Xc6Vb1Nz8Pq-trigger",
}
SEALED_COLUMNS = {name: f"{name}_sealed" for name in SECRETS}


def fragments(value: str) -> list[str]:
    """The whole value and each line of it (a PEM could leak line by line)."""
    lines = [line for line in value.splitlines() if line and not line.startswith("-----")]
    return [value, *lines]


def assert_no_secret(text: str, secrets: list[str], where: str) -> None:
    for secret in secrets:
        for fragment in fragments(secret):
            assert fragment not in text, f"{fragment!r} found in {where}"


@pytest.fixture
def team(make_team: Callable[..., Team]) -> Team:
    return make_team(slug="acme")


@pytest.fixture
def member(make_member: Callable[..., User], team: Team) -> User:
    return make_member(team, Role.MEMBER, username="acme-member")


@pytest.fixture
def browser(member: User) -> Client:
    client = Client()
    client.force_login(member)
    return client


def add_connector(client: Client, team: Team, secrets: dict[str, str]) -> Connector:
    """Fill in the admin's "Add connector" form and save it."""
    add_url = reverse("admin:connect_connector_add")
    data = form_data(client.get(add_url), "connector_form")
    data.update(
        team=[str(team.pk)],
        type=["github"],
        uid=["github/acme-app"],
        service=["github"],
        name=["Acme GitHub App"],
        client_id=["Iv1.acme"],
    )
    data.update({name: [value] for name, value in secrets.items()})
    response = client.post(add_url, data)
    assert response.status_code == 302, response.context and response.context["errors"]
    return Connector.objects.get(team=team, uid="github/acme-app")


def change_url(connector: Connector) -> str:
    return reverse("admin:connect_connector_change", args=[connector.pk])


def sealed_values(connector: Connector) -> dict[str, str]:
    connector.refresh_from_db()
    return {name: getattr(connector, column) for name, column in SEALED_COLUMNS.items()}


def test_secrets_from_the_form_are_sealed_and_open_again(browser: Client, team: Team) -> None:
    connector = add_connector(browser, team, SECRETS)

    for name, value in SECRETS.items():
        sealed = getattr(connector, SEALED_COLUMNS[name])
        assert sealed.startswith("v1.")
        assert_no_secret(sealed, [value], SEALED_COLUMNS[name])
        assert connector.reveal(name) == value
    # The PEM keeps its newlines: it came through a textarea, not a password input.
    assert connector.reveal("private_key").count("\n") == 3
    assert_no_secret(str(connector), list(SECRETS.values()), "str(connector)")


def test_no_table_holds_a_secret_in_clear(browser: Client, team: Team) -> None:
    add_connector(browser, team, SECRETS)

    # Every column of every table, read with raw SQL: audit rows, admin log, sessions included.
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                text = " ".join(
                    bytes(cell).decode("utf-8", "replace")
                    if isinstance(cell, bytes | memoryview)
                    else str(cell)
                    for cell in row
                )
                assert_no_secret(text, list(SECRETS.values()), f"table {table}")
    assert AuditEvent.objects.get(type="connector.created").fields["secretsChanged"] == sorted(
        SECRETS
    )


def test_inputs_say_whether_a_value_is_set(browser: Client, team: Team) -> None:
    connector = add_connector(
        browser,
        team,
        {"client_secret": SECRETS["client_secret"], "private_key": SECRETS["private_key"]},
    )

    page = browser.get(change_url(connector))

    assert page.status_code == 200
    assert help_text(page, "client_secret") == "A value is set; type a new one to replace it."
    assert help_text(page, "private_key") == "A value is set; type a new one to replace it."
    assert help_text(page, "trigger_signing_secret") == "Not set."
    html = page.content.decode()
    assert re.search(
        r'<input type="password" name="client_secret"[^>]*placeholder="[^"]*set — leave blank', html
    )
    assert re.search(
        r'<input type="password" name="trigger_signing_secret"[^>]*placeholder="not set"', html
    )
    # A GitHub App has no API key: its page offers only the secrets the type uses.
    assert 'name="api_key"' not in html
    # Write-only: the inputs are rendered empty.
    data = form_data(page, "connector_form")
    for name in ("client_secret", "private_key", "trigger_signing_secret"):
        assert data[name] == [""], name
    assert not re.search(r'name="(client_secret|trigger_signing_secret)"[^>]*value=', html)


def test_a_blank_input_keeps_the_stored_value(browser: Client, team: Team) -> None:
    connector = add_connector(browser, team, SECRETS)
    before = sealed_values(connector)

    # Save the page as it comes: every secret input is blank.
    data = form_data(browser.get(change_url(connector)), "connector_form")
    data["name"] = ["Renamed app"]
    assert browser.post(change_url(connector), data).status_code == 302

    assert sealed_values(connector) == before
    assert connector.name == "Renamed app"
    for name, value in SECRETS.items():
        assert connector.reveal(name) == value

    # Typing into one input replaces that secret only.
    data = form_data(browser.get(change_url(connector)), "connector_form")
    data["api_key"] = ["ak-replacement-Zr5Ye2"]
    assert browser.post(change_url(connector), data).status_code == 302

    after = sealed_values(connector)
    assert connector.reveal("api_key") == "ak-replacement-Zr5Ye2"
    assert after["api_key"] != before["api_key"]
    assert {k: v for k, v in after.items() if k != "api_key"} == {
        k: v for k, v in before.items() if k != "api_key"
    }
    latest = AuditEvent.objects.filter(type="connector.updated").latest("created_at")
    assert latest.fields["secretsChanged"] == ["api_key"]


@pytest.fixture
def everything_with_secrets(
    browser: Client,
    team: Team,
    make_project: Callable[..., Project],
    make_installation: Callable[..., Installation],
) -> tuple[Connector, list[str], list[str]]:
    """A connector set through the form, plus the secrets the system stores around it.

    Returns the connector, every plaintext, and every ciphertext.
    """
    connector = add_connector(browser, team, SECRETS)
    project = make_project(team, slug="web")
    environment = project.environments.get(slug="production")
    installation = make_installation(connector, tenant_id="4242", display_name="acme-org")
    grant = Grant(installation=installation, subject_type="user", subject_id="42", issuer="prj_x")
    grant.seal("access_token", "ghu_AccessToken-Mw3Ks8Jd")
    grant.seal("refresh_token", "ghr_RefreshToken-Pq7Xn2Lc")
    grant.access_expires_at = timezone.now() + timedelta(hours=1)
    grant.save()
    destination = destination_save(
        destination=TriggerDestination(
            connector=connector, project=project, environment=environment, path="/hooks"
        ),
        actor="test",
    )
    authorization = AuthorizationRequest(
        kind="consent",
        connector=connector,
        subject_type="user",
        subject_id="42",
        verifier_sha256=uuid.uuid4().hex * 2,
        state="state-Vn8Rt3Wq6Yz1",
        expires_at=timezone.now() + timedelta(minutes=10),
    )
    authorization.seal("pkce_verifier", "pkce-Hb5Gf2Kd9Ls4")
    authorization.save()

    # A deployment credential made in the admin is shown once, on the page after saving.
    add_url = reverse("admin:connect_deploymentcredential_add")
    data = form_data(browser.get(add_url), "deploymentcredential_form")
    data.update(project=[str(project.pk)], environment=[str(environment.pk)], name=["ci"])
    shown_once = browser.post(add_url, data, follow=True)
    # The whole token: the page also names the credential by its (public) prefix.
    token = re.search(r"cdc_[A-Za-z0-9]{12}_[A-Za-z0-9]{24}", shown_once.content.decode())
    assert token, "the new credential is shown once"
    credential = DeploymentCredential.objects.get(name="ci")
    caller = caller_from_authorization(f"Bearer {token.group(0)}")
    assert caller.label == f"credential:{credential.public_id}"

    plaintexts = [
        *SECRETS.values(),
        "ghu_AccessToken-Mw3Ks8Jd",
        "ghr_RefreshToken-Pq7Xn2Lc",
        destination.reveal("signing_secret"),
        "state-Vn8Rt3Wq6Yz1",
        "pkce-Hb5Gf2Kd9Ls4",
        token.group(0),
    ]
    ciphertexts = [
        *sealed_values(connector).values(),
        grant.access_token_sealed,
        grant.refresh_token_sealed,
        destination.signing_secret_sealed,
        authorization.pkce_verifier_sealed,
    ]
    return connector, plaintexts, ciphertexts


def test_no_secret_in_any_admin_page(
    browser: Client, everything_with_secrets: tuple[Connector, list[str], list[str]]
) -> None:
    connector, plaintexts, ciphertexts = everything_with_secrets
    installation = connector.installations.get()
    grant = Grant.objects.get()
    pages = [
        "/admin/",
        reverse("admin:connect_connector_changelist"),
        change_url(connector),
        reverse("admin:connect_connector_history", args=[connector.pk]),
        reverse("admin:connect_installation_changelist"),
        reverse("admin:connect_installation_change", args=[installation.pk]),
        reverse("admin:connect_grant_changelist"),
        reverse("admin:connect_grant_change", args=[grant.pk]),
        reverse("admin:connect_grant_history", args=[grant.pk]),
        reverse("admin:connect_authorizationrequest_changelist"),
        reverse(
            "admin:connect_authorizationrequest_change",
            args=[AuthorizationRequest.objects.get().pk],
        ),
        reverse("admin:connect_deploymentcredential_changelist"),
        reverse(
            "admin:connect_deploymentcredential_change",
            args=[DeploymentCredential.objects.get().pk],
        ),
        reverse("admin:connect_auditevent_changelist"),
        *[
            reverse("admin:connect_auditevent_change", args=[pk])
            for pk in AuditEvent.objects.values_list("pk", flat=True)
        ],
    ]
    for path in pages:
        response = browser.get(path)
        assert response.status_code == 200, path
        html = response.content.decode()
        assert_no_secret(html, plaintexts, path)
        for sealed in ciphertexts:
            assert sealed[3:] not in html, f"ciphertext in {path}"

    # The grant page says a refresh token exists without showing it.
    grant_page = browser.get(reverse("admin:connect_grant_change", args=[grant.pk]))
    assert re.search(r"Refresh token:.*?icon-yes\.svg", grant_page.content.decode(), re.S)


def test_a_form_with_errors_does_not_echo_the_secret(browser: Client, team: Team) -> None:
    connector = add_connector(browser, team, SECRETS)
    data = form_data(browser.get(change_url(connector)), "connector_form")
    data["uid"] = ["Not A Valid UID"]
    data["client_secret"] = ["cs-typed-but-rejected-Jk4Lm"]

    response = browser.post(change_url(connector), data)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert_no_secret(
        response.content.decode(),
        [*SECRETS.values(), "cs-typed-but-rejected-Jk4Lm"],
        "the re-rendered form",
    )
    assert connector.reveal("client_secret") == SECRETS["client_secret"]


def test_no_secret_in_the_logs_or_sql_of_the_requests_that_set_it(
    browser: Client, team: Team, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # SQL is logged (with its parameters) only under DEBUG.
    settings.DEBUG = True
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django.db.backends")

    connector = add_connector(browser, team, SECRETS)
    data = form_data(browser.get(change_url(connector)), "connector_form")
    replacements = {
        "client_secret": "cs-second-Tq2Wv7Hn",
        "api_key": "ak-second-Bz6Rx1Cj",
        "trigger_signing_secret": "whsec_second-Gm3Py8Ds",
    }
    data.update({name: [value] for name, value in replacements.items()})
    assert browser.post(change_url(connector), data).status_code == 302

    sql = [r for r in caplog.records if r.name == "django.db.backends"]
    # The logging really was on: the statements that stored the secrets are there.
    assert any('INSERT INTO "connect_connector"' in r.getMessage() for r in sql)
    assert any('UPDATE "connect_connector"' in r.getMessage() for r in sql)
    assert any(
        SEALED_COLUMNS["client_secret"] in r.getMessage() and "v1." in r.getMessage() for r in sql
    )
    for record in caplog.records:
        text = f"{record.getMessage()} {record.args!r} {vars(record)!r}"
        assert_no_secret(
            text, [*SECRETS.values(), *replacements.values()], f"log record {record.name}"
        )
    connector.refresh_from_db()
    assert connector.reveal("api_key") == "ak-second-Bz6Rx1Cj"
