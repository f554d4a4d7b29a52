"""The operator commands: ``demo`` (idempotent) and ``create_team`` (owner invited by email)."""

import re
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.core import mail
from django.core.management import CommandError, call_command
from django.test import Client

from connect.models import AuditEvent, Connector, Membership, Project, ProjectLink, Role, Team

pytestmark = pytest.mark.django_db

LOGIN_LINE = re.compile(r"^Admin login: demo / (\S+)$", re.MULTILINE)


@pytest.fixture
def var_dir(settings: Any, tmp_path: Path) -> Path:
    """The demo password is generated into var/: never the developer's own."""
    settings.VAR_DIR = tmp_path
    return tmp_path


def run_demo() -> str:
    out = StringIO()
    call_command("demo", stdout=out)
    match = LOGIN_LINE.search(out.getvalue())
    assert match, out.getvalue()
    return match.group(1)


def dump() -> dict[str, list[dict[str, Any]]]:
    """Every row of every model, sealed columns and password hashes included."""
    return {
        model._meta.label: [
            {k: bytes(v) if isinstance(v, memoryview) else v for k, v in row.items()}
            for row in model._default_manager.order_by("pk").values()
        ]
        for model in apps.get_models()
        if model._meta.app_label != "sessions"
    }


def test_demo_creates_the_demo_team(var_dir: Path, client: Client) -> None:
    password = run_demo()

    team = Team.objects.get(slug="demo")
    owner = User.objects.get(username="demo")
    assert Membership.objects.get(team=team, user=owner).role == Role.OWNER
    project = Project.objects.get(team=team, slug="demo-app")
    assert sorted(project.environments.values_list("slug", flat=True)) == [
        "development",
        "preview",
        "production",
    ]
    connector = Connector.objects.get(team=team, uid="api-key/demo")
    assert connector.type == Connector.Type.API_KEY
    assert connector.reveal("api_key") == "demo-secret-key"
    assert "demo-secret-key" not in connector.api_key_sealed
    link = ProjectLink.objects.get(connector=connector)
    assert link.project == project
    assert sorted(link.environments) == ["development", "production"]
    assert connector.installations.get().is_default

    assert (var_dir / "demo_password").read_text().strip() == password
    assert (var_dir / "demo_password").stat().st_mode & 0o077 == 0
    assert client.login(username="demo", password=password)
    assert client.get("/admin/").status_code == 200


def test_demo_twice_leaves_the_same_data_and_prints_the_same_login(
    var_dir: Path, client: Client
) -> None:
    first_password = run_demo()
    before = dump()
    assert before["connect.Connector"], "the dump must cover connect's rows"

    second_password = run_demo()

    assert second_password == first_password
    assert dump() == before
    assert client.login(username="demo", password=second_password)


def test_demo_puts_back_what_was_changed(var_dir: Path) -> None:
    password = run_demo()
    owner = User.objects.get(username="demo")
    owner.set_password("something else")
    owner.save()
    connector = Connector.objects.get(uid="api-key/demo")
    connector.seal("api_key", "changed")
    connector.save()
    ProjectLink.objects.filter(connector=connector).update(environments=["preview"])
    Membership.objects.filter(user=owner).update(role=Role.VIEWER)

    assert run_demo() == password

    owner.refresh_from_db()
    assert owner.check_password(password)
    connector.refresh_from_db()
    assert connector.reveal("api_key") == "demo-secret-key"
    assert sorted(ProjectLink.objects.get(connector=connector).environments) == [
        "development",
        "production",
    ]
    assert Membership.objects.get(user=owner).role == Role.OWNER


def test_demo_never_logs_its_key(var_dir: Path) -> None:
    out = StringIO()
    call_command("demo", stdout=out)

    assert "demo-secret-key" not in out.getvalue()
    for event in AuditEvent.objects.all():
        assert "demo-secret-key" not in str(event.fields)


def invite_path(message: mail.EmailMessage) -> str:
    links = re.findall(r"https?://\S+", message.body)
    resets = [link for link in links if "/accounts/password/reset/key/" in link]
    assert len(resets) == 1, message.body
    return urlsplit(resets[0]).path


@pytest.mark.django_db(transaction=True)  # the invitation is sent on commit
def test_create_team_creates_the_team_and_invites_its_owner(
    client: Client, mailoutbox: list[mail.EmailMessage]
) -> None:
    out = StringIO()
    call_command(
        "create_team",
        "--slug",
        "acme",
        "--name",
        "Acme Inc",
        "--owner-email",
        "ada@acme.example",
        stdout=out,
    )

    team = Team.objects.get(slug="acme")
    assert team.name == "Acme Inc"
    assert team.public_id in out.getvalue()
    owner = User.objects.get(email="ada@acme.example")
    assert not owner.has_usable_password()
    assert not owner.is_staff
    assert not owner.is_superuser
    assert list(Membership.objects.filter(team=team).values_list("user", "role")) == [
        (owner.pk, Role.OWNER)
    ]
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["ada@acme.example"]

    # The owner follows the link and chooses a password with allauth's form.
    response = client.get(invite_path(mailoutbox[0]))
    assert response.status_code == 302
    form_url = response["Location"]
    assert form_url.endswith("-set-password/")
    response = client.get(form_url)
    assert response.status_code == 200
    assert not response.context.get("token_fail")
    response = client.post(
        form_url, {"password1": "Tr0ub4dor&3-horse", "password2": "Tr0ub4dor&3-horse"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/accounts/password/reset/key/done/"
    owner.refresh_from_db()
    assert owner.check_password("Tr0ub4dor&3-horse")

    # Then signs in with the email address and reaches the team's admin.
    client.logout()
    response = client.post(
        "/accounts/login/", {"login": "ada@acme.example", "password": "Tr0ub4dor&3-horse"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert client.session["_auth_user_id"] == str(owner.pk)
    assert client.get("/admin/").status_code == 200

    # The link was single use.
    response = client.get(invite_path(mailoutbox[0]))
    assert response.status_code == 200
    assert response.context["token_fail"]


@pytest.mark.django_db(transaction=True)
def test_create_team_with_a_taken_slug_is_a_command_error(
    mailoutbox: list[mail.EmailMessage],
) -> None:
    call_command(
        "create_team",
        "--slug",
        "acme",
        "--name",
        "Acme",
        "--owner-email",
        "a@acme.example",
        stdout=StringIO(),
    )
    users = User.objects.count()

    with pytest.raises(CommandError, match=r"(?i)slug already exists"):
        call_command(
            "create_team",
            "--slug",
            "acme",
            "--name",
            "Other",
            "--owner-email",
            "b@b.example",
            stdout=StringIO(),
        )

    assert Team.objects.filter(slug="acme").get().name == "Acme"
    assert User.objects.count() == users
    assert not User.objects.filter(email="b@b.example").exists()
    assert len(mailoutbox) == 1


@pytest.mark.django_db(transaction=True)
def test_create_team_makes_an_existing_user_the_owner(
    make_user: Any, mailoutbox: list[mail.EmailMessage]
) -> None:
    existing = make_user("grace", email="grace@acme.example")

    call_command(
        "create_team",
        "--slug",
        "acme",
        "--name",
        "Acme",
        "--owner-email",
        "Grace@Acme.example",
        stdout=StringIO(),
    )

    assert User.objects.filter(email__iexact="grace@acme.example").count() == 1
    membership = Membership.objects.get(team__slug="acme")
    assert (membership.user, membership.role) == (existing, Role.OWNER)
    existing.refresh_from_db()
    assert existing.check_password("correct horse battery")


@pytest.mark.parametrize("slug", ["Not A Slug", ""])
def test_create_team_refuses_a_bad_slug(slug: str) -> None:
    with pytest.raises(CommandError):
        call_command(
            "create_team",
            "--slug",
            slug,
            "--name",
            "Acme",
            "--owner-email",
            "a@acme.example",
            stdout=StringIO(),
        )
    assert not Team.objects.exists()
    assert not User.objects.exists()


@pytest.mark.parametrize("email", ["notanemail", "ada@", ""])
def test_create_team_refuses_an_owner_email_that_cannot_receive_the_link(
    email: str, mailoutbox: list[mail.EmailMessage]
) -> None:
    with pytest.raises(CommandError, match="valid email"):
        call_command(
            "create_team",
            "--slug",
            "acme",
            "--name",
            "Acme",
            "--owner-email",
            email,
            stdout=StringIO(),
        )

    assert not Team.objects.exists()
    assert not User.objects.exists()
    assert mailoutbox == []
