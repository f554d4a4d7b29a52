"""Every configuration change made in the admin is audited (SPEC §10, "configuration changed").

The walk below discovers every add, change and delete that each Connect model admin, and each
of its inlines, lets a team user (or a superuser) make, so a new page or inline that writes
fails ``test_every_write_in_the_admin_is_walked`` until it is given its event type here. Each
is made through the real pages by the least role that may make it, and must leave exactly one
audit event: of the right type, by that user, naming the row by its public id, in the row's
team, and holding no secret.
"""

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import User
from django.db import models
from django.http import HttpRequest
from django.test import Client, RequestFactory
from django.urls import reverse

from connect.models import (
    AuditEvent,
    Connector,
    DeploymentCredential,
    Environment,
    Grant,
    Installation,
    LifecycleDestination,
    Membership,
    Project,
    ProjectLink,
    Role,
    Team,
    TeamApiToken,
    TriggerDestination,
    TrustedIssuer,
    TrustedIssuerRule,
)
from connect.services.audit import actor_label
from connect.services.destinations import destination_save
from tests.admin.pages import form_data
from tests.admin.test_tenancy import World, make_world  # noqa: F401 (a fixture)
from tests.security.test_admin_action_roles import stored_secrets

pytestmark = pytest.mark.django_db

CONNECT_ADMINS = {
    model: model_admin
    for model, model_admin in admin.site._registry.items()
    if model._meta.app_label == "connect"
}

# (admin, inline or "", operation) → the event it records. Written out: the test's own oracle.
WALK: dict[tuple[str, str, str], str] = {
    ("team", "", "add"): "team.created",
    ("team", "", "change"): "team.updated",
    ("team", "membership", "add"): "member.added",
    ("team", "membership", "change"): "member.role_changed",
    ("team", "membership", "delete"): "member.removed",
    ("project", "", "add"): "project.created",
    ("project", "", "change"): "project.updated",
    ("project", "", "delete"): "project.deleted",
    ("project", "environment", "add"): "environment.created",
    ("project", "environment", "change"): "environment.updated",
    ("project", "environment", "delete"): "environment.deleted",
    ("environment", "", "add"): "environment.created",
    ("environment", "", "change"): "environment.updated",
    ("environment", "", "delete"): "environment.deleted",
    ("connector", "", "add"): "connector.created",
    ("connector", "", "change"): "connector.updated",
    ("connector", "", "delete"): "connector.deleted",
    ("connector", "projectlink", "add"): "link.created",
    ("connector", "projectlink", "change"): "link.updated",
    ("connector", "projectlink", "delete"): "link.deleted",
    ("connector", "triggerdestination", "add"): "destination.saved",
    ("connector", "triggerdestination", "change"): "destination.saved",
    ("connector", "triggerdestination", "delete"): "destination.deleted",
    ("connector", "lifecycledestination", "add"): "destination.saved",
    ("connector", "lifecycledestination", "change"): "destination.saved",
    ("connector", "lifecycledestination", "delete"): "destination.deleted",
    ("installation", "", "change"): "installation.updated",
    ("installation", "", "delete"): "installation.removed",
    ("installation", "grant", "delete"): "grant.deleted",
    # The one change the grant page allows, its status; to revoked, it ends the grant.
    ("grant", "", "change"): "grant.revoked",
    ("grant", "", "delete"): "grant.deleted",
    ("deploymentcredential", "", "add"): "credential.created",
    ("deploymentcredential", "", "change"): "credential.updated",
    ("deploymentcredential", "", "delete"): "credential.deleted",
    ("trustedissuer", "", "add"): "trusted_issuer.created",
    ("trustedissuer", "", "change"): "trusted_issuer.updated",
    ("trustedissuer", "", "delete"): "trusted_issuer.deleted",
    ("trustedissuer", "trustedissuerrule", "add"): "trusted_issuer_rule.created",
    ("trustedissuer", "trustedissuerrule", "change"): "trusted_issuer_rule.updated",
    ("trustedissuer", "trustedissuerrule", "delete"): "trusted_issuer_rule.deleted",
    ("triggerdestination", "", "change"): "destination.saved",
    ("teamapitoken", "", "add"): "api_token.created",
    ("teamapitoken", "", "change"): "api_token.updated",
    ("triggerdestination", "", "delete"): "destination.deleted",
}
# Writes that record nothing, and why.
UNRECORDED = {
    ("team", "", "delete"): "a team's audit log is deleted with it (superusers only)",
}
# How each event names its row.
TARGETS: dict[type[models.Model], Callable[[Any], dict[str, str]]] = {
    Team: lambda o: {"teamId": o.public_id},
    Membership: lambda o: {"userId": str(o.user_id)},
    Project: lambda o: {"projectId": o.public_id},
    Environment: lambda o: {"projectId": o.project.public_id, "environment": o.slug},
    Connector: lambda o: {"connectorId": o.public_id},
    ProjectLink: lambda o: {"connectorId": o.connector.public_id, "projectId": o.project.public_id},
    TriggerDestination: lambda o: {
        "connectorId": o.connector.public_id,
        "destinationId": o.public_id,
    },
    LifecycleDestination: lambda o: {
        "connectorId": o.connector.public_id,
        "destinationId": o.public_id,
    },
    Installation: lambda o: {"connectorId": o.connector.public_id, "installationId": o.public_id},
    Grant: lambda o: {
        "connectorId": o.installation.connector.public_id,
        "installationId": o.installation.public_id,
        "grantId": o.public_id,
    },
    DeploymentCredential: lambda o: {"credentialId": o.public_id, "projectId": o.project.public_id},
    TrustedIssuer: lambda o: {"trustedIssuerId": o.public_id},
    TrustedIssuerRule: lambda o: {
        "trustedIssuerId": o.trusted_issuer.public_id,
        "ruleId": o.public_id,
    },
    TeamApiToken: lambda o: {"apiTokenId": o.public_id},
}
Walked = tuple[str, str, str]


@pytest.fixture
def world(make_world: Callable[[Team, str], World], make_team: Callable[..., Team]) -> World:  # noqa: F811
    world = make_world(make_team(slug="alpha-team", name="Alpha"), "alpha")
    # Removing an installation revokes its grants upstream: at a closed loopback port, at once.
    Connector.objects.filter(pk=world[Connector].pk).update(
        config={"baseUrl": "http://127.0.0.1:9"}
    )
    # A second project of the team, for a new link to name.
    second = Project.objects.create(team=world[Team], name="Second", slug="alpha-second")
    second.environments.create(slug="production", base_url="https://second.example.com")
    # The connector's lifecycle destination, for the inline's change and delete.
    destination_save(
        destination=LifecycleDestination(
            connector=world[Connector],
            project=world[Project],
            environment=world[Environment],
            path="/alpha-lifecycle",
        ),
        actor="test",
    )
    return world


@pytest.fixture
def users(world: World, make_user: Callable[..., User]) -> dict[str, User]:
    """The least role first: each write is made by the first of these allowed to make it."""
    made = {}
    for role in (Role.MEMBER, Role.OWNER):
        user = make_user(username=f"alpha-{role}")
        Membership.objects.create(team=world[Team], user=user, role=role)
        made[str(role)] = user
    made["superuser"] = make_user(username="root", is_superuser=True, is_staff=True)
    return made


def as_user(user: User) -> HttpRequest:
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def inlines_of(model_admin: Any, request: HttpRequest, obj: models.Model) -> list[Any]:
    return list(model_admin.get_inline_instances(request, obj))


def allowed(model_admin: Any, inline: Any, operation: str, user: User, obj: models.Model) -> bool:
    request = as_user(user)
    if inline is None:
        if operation == "add":
            return bool(model_admin.has_add_permission(request))
        return bool(getattr(model_admin, f"has_{operation}_permission")(request, obj))
    if not model_admin.has_change_permission(request, obj):
        return False  # the parent's page cannot be saved at all
    if operation == "delete":
        return bool(inline.can_delete and inline.has_delete_permission(request, obj))
    return bool(getattr(inline, f"has_{operation}_permission")(request, obj))


def writer(world: World, users: dict[str, User], walked: Walked) -> User | None:
    """The least-privileged user allowed to make this write, if any."""
    name, inline_name, operation = walked
    model = next(m for m in CONNECT_ADMINS if m._meta.model_name == name)
    model_admin = CONNECT_ADMINS[model]
    obj = world[model]
    for user in users.values():
        inline = None
        if inline_name:
            inline = next(
                (
                    i
                    for i in inlines_of(model_admin, as_user(user), obj)
                    if i.model._meta.model_name == inline_name
                ),
                None,
            )
            if inline is None:
                continue
        if allowed(model_admin, inline, operation, user, obj):
            return user
    return None


def test_every_write_in_the_admin_is_walked(world: World, users: dict[str, User]) -> None:
    found = set()
    for model, model_admin in CONNECT_ADMINS.items():
        name = model._meta.model_name
        for user in users.values():
            request = as_user(user)
            obj = world[model]
            for operation in ("add", "change", "delete"):
                if allowed(model_admin, None, operation, user, obj):
                    found.add((name, "", operation))
                for inline in inlines_of(model_admin, request, obj):
                    if allowed(model_admin, inline, operation, user, obj):
                        found.add((name, inline.model._meta.model_name, operation))
    assert found == set(WALK) | set(UNRECORDED), "a write was added: give it its event here"


# Making each write through the pages ------------------------------------------------------------


def url(model: type[models.Model], view: str, *args: Any) -> str:
    return reverse(f"admin:connect_{model._meta.model_name}_{view}", args=args)


def new_row(model: type[models.Model], world: World) -> dict[str, str]:
    """What a member types into a new row (an add page, or an inline's new line)."""
    team, project = world[Team], world[Project]
    environment = world[Environment]
    second = Project.objects.get(slug="alpha-second")
    rows: dict[type[models.Model], dict[str, str]] = {
        Team: {"name": "Charlie", "slug": "charlie-team"},
        Membership: {"email": "new-member@example.com", "role": "member"},
        Project: {"team": str(team.pk), "name": "Third", "slug": "alpha-third"},
        Environment: {"project": str(project.pk), "slug": "qa", "base_url": "https://qa.test"},
        Connector: {
            "team": str(team.pk),
            "type": "api-key",
            "uid": "api/alpha-new",
            "service": "api",
            "name": "New API",
            "api_key": "key-Yt5Rw2Qp",
        },
        ProjectLink: {"project": str(second.pk), "environments": "production"},
        TriggerDestination: {
            "project": str(project.pk),
            "environment": str(environment.pk),
            "path": "/alpha-new",
            "enabled": "on",
        },
        LifecycleDestination: {
            "project": str(second.pk),
            "environment": str(second.environments.get().pk),
            "path": "/alpha-events",
            "enabled": "on",
        },
        DeploymentCredential: {
            "project": str(project.pk),
            "environment": str(environment.pk),
            "name": "new",
        },
        TrustedIssuer: {
            "team": str(team.pk),
            "issuer": "https://new.issuer.test",
            "jwks_url": "https://new.issuer.test/jwks",
            "audience": "",
        },
        TeamApiToken: {"team": str(team.pk), "name": "ci", "role": "viewer"},
        TrustedIssuerRule: {
            "required_claims": '{"repository": "alpha/new"}',
            "project": str(project.pk),
            "environment": str(environment.pk),
        },
    }
    return rows[model]


# A change to each row: (field, new value); None unticks a checkbox.
CHANGES: dict[type[models.Model], tuple[str, str | list[str] | None]] = {
    Team: ("name", "Alpha renamed"),
    Membership: ("role", "viewer"),
    Project: ("name", "Renamed"),
    Environment: ("base_url", "https://moved.example.com"),
    Connector: ("name", "Renamed bot"),
    ProjectLink: ("environments", ["production", "preview"]),  # two ticked checkboxes
    TriggerDestination: ("enabled", None),
    LifecycleDestination: ("enabled", None),
    Installation: ("display_name", "Renamed workspace"),
    Grant: ("status", "revoked"),
    DeploymentCredential: ("name", "renamed"),
    TrustedIssuer: ("jwks_url", "https://alpha.issuer.test/keys"),
    TrustedIssuerRule: ("required_claims", '{"repository": "alpha/renamed"}'),
    TeamApiToken: ("name", "renamed"),
}


def set_field(data: dict[str, list[str]], name: str, value: str | list[str] | None) -> None:
    if value is None:
        data.pop(name, None)
    else:
        data[name] = value if isinstance(value, list) else [value]


def inline_row(world: World, users: dict[str, User], inline_model: type[models.Model]) -> Any:
    """The existing row an inline write changes or deletes."""
    rows: dict[type[models.Model], Callable[[], models.Model]] = {
        Membership: lambda: Membership.objects.get(user=users["member"]),
        Environment: lambda: world[Project].environments.get(slug="preview"),
        TrustedIssuerRule: lambda: world[TrustedIssuer].rules.get(),
        ProjectLink: lambda: world[ProjectLink],
        TriggerDestination: lambda: world[TriggerDestination],
        LifecycleDestination: lambda: LifecycleDestination.objects.get(path="/alpha-lifecycle"),
        Grant: lambda: world[Grant],
    }
    return rows[inline_model]()


def make_the_write(
    client: Client,
    world: World,
    users: dict[str, User],
    walked: Walked,
    model_admin: Any,
    user: User,
) -> tuple[Any, Callable[[], models.Model]]:
    """Post the write; return the response and how to find the row it wrote."""
    name, inline_name, operation = walked
    model = model_admin.model
    obj = world[model]
    if not inline_name:
        if operation == "add":
            page = client.get(url(model, "add") + ("?type=api-key" if model is Connector else ""))
            data = form_data(page, f"{name}_form")
            for field, value in new_row(model, world).items():
                set_field(data, field, value)
            response = client.post(url(model, "add"), data)
            return response, lambda: model._default_manager.order_by("-pk").first()
        if operation == "change":
            data = form_data(client.get(url(model, "change", obj.pk)), f"{name}_form")
            set_field(data, *CHANGES[model])
            response = client.post(url(model, "change", obj.pk), data)
            return response, lambda: model._default_manager.get(pk=obj.pk)
        assert operation == "delete"
        return client.post(url(model, "delete", obj.pk), {"post": "yes"}), lambda: obj
    inline = next(
        i
        for i in inlines_of(model_admin, as_user(user), obj)
        if i.model._meta.model_name == inline_name
    )
    inline_model = inline.model
    prefix = inline.get_formset(as_user(user), obj).get_default_prefix()
    data = form_data(client.get(url(model, "change", obj.pk)), f"{name}_form")
    if operation == "add":
        index = int(data[f"{prefix}-TOTAL_FORMS"][0])
        data[f"{prefix}-TOTAL_FORMS"] = [str(index + 1)]
        for field, value in new_row(inline_model, world).items():
            data[f"{prefix}-{index}-{field}"] = [value]
        response = client.post(url(model, "change", obj.pk), data)
        return response, lambda: inline_model._default_manager.order_by("-pk").first()
    row = inline_row(world, users, inline_model)
    total = int(data[f"{prefix}-TOTAL_FORMS"][0])
    index = next(i for i in range(total) if data.get(f"{prefix}-{i}-id") == [str(row.pk)])
    if operation == "change":
        field, value = CHANGES[inline_model]
        set_field(data, f"{prefix}-{index}-{field}", value)
        response = client.post(url(model, "change", obj.pk), data)
        return response, lambda: inline_model._default_manager.get(pk=row.pk)
    data[f"{prefix}-{index}-DELETE"] = ["on"]
    return client.post(url(model, "change", obj.pk), data), lambda: row


def errors_in(response: Any) -> list[str]:
    return re.findall(r'class="errorlist[^"]*"[^>]*>(.*?)</ul>', response.content.decode(), re.S)


def assert_one_event(
    walked: Walked, user: User, world: World, row: models.Model, before: int
) -> AuditEvent:
    events = list(AuditEvent.objects.filter(pk__gt=before))
    expected = WALK[walked]
    assert [e.type for e in events] == [expected], walked
    [event] = events
    assert event.targets == TARGETS[type(row)](row), (walked, event.targets)
    assert event.actor == actor_label(user)
    # In the row's team: a new team's own log, else the world's team.
    assert event.team_id == (row.pk if isinstance(row, Team) else world[Team].pk)
    return event


@pytest.mark.parametrize("walked", list(WALK), ids=["/".join(w).replace("//", "/") for w in WALK])
def test_a_write_in_the_admin_records_one_event_naming_its_row(
    walked: Walked, world: World, users: dict[str, User]
) -> None:
    model = next(m for m in CONNECT_ADMINS if m._meta.model_name == walked[0])
    user = writer(world, users, walked)
    assert user is not None, f"nobody may make {walked}"
    client = Client()
    client.force_login(user)
    secrets = stored_secrets()
    before = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0

    response, written = make_the_write(client, world, users, walked, CONNECT_ADMINS[model], user)

    assert response.status_code == 302, (walked, errors_in(response))
    row = written()
    event = assert_one_event(walked, user, world, row, before)
    recorded = json.dumps([event.targets, event.fields, event.correlation])
    for secret in secrets | {"key-Yt5Rw2Qp"}:
        assert secret not in recorded, walked


@pytest.mark.parametrize("walked", [w for w in WALK if w[1:] == ("", "delete")], ids=lambda w: w[0])
def test_deleting_from_the_list_records_one_event_per_row(
    walked: Walked, world: World, users: dict[str, User]
) -> None:
    model = next(m for m in CONNECT_ADMINS if m._meta.model_name == walked[0])
    user = writer(world, users, walked)
    assert user is not None
    client = Client()
    client.force_login(user)
    row = world[model]
    before = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0

    response = client.post(
        url(model, "changelist"),
        {"action": "delete_selected", ACTION_CHECKBOX_NAME: [row.pk], "post": "yes"},
    )

    assert response.status_code == 302
    assert not model._default_manager.filter(pk=row.pk).exists()
    assert_one_event(walked, user, world, row, before)


def test_an_environments_base_url_is_recorded_before_and_after(
    world: World, users: dict[str, User]
) -> None:
    """Where a team's triggers are forwarded is the change an audit most needs to show."""
    environment = world[Environment]
    old = environment.base_url
    client = Client()
    client.force_login(users["member"])
    data = form_data(client.get(url(Environment, "change", environment.pk)), "environment_form")
    data["base_url"] = ["https://elsewhere.example.com"]

    assert client.post(url(Environment, "change", environment.pk), data).status_code == 302

    event = AuditEvent.objects.get(type="environment.updated")
    assert event.fields == {
        "changed": ["base_url"],
        "before": {"base_url": old},
        "after": {"base_url": "https://elsewhere.example.com"},
    }


def test_saving_a_page_that_changed_nothing_records_nothing(
    world: World, users: dict[str, User]
) -> None:
    client = Client()
    client.force_login(users["member"])
    before = AuditEvent.objects.count()
    for model in (Project, Environment, TrustedIssuer, DeploymentCredential, Installation, Grant):
        obj = world[model]
        name = model._meta.model_name
        data = form_data(client.get(url(model, "change", obj.pk)), f"{name}_form")
        assert client.post(url(model, "change", obj.pk), data).status_code == 302, name

    assert AuditEvent.objects.count() == before
