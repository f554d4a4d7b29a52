"""Every admin action and view checks the role on every row it touches (issue 8, point 4).

A role counts only in its own team: a member of team A who is a viewer in team B may replay
A's events, not B's. The walk below discovers every action of every model admin registered on
the site, and every custom view, so a new one fails ``test_every_action_is_in_the_table`` until
it is given its required role here. Each is tried by three users against their own team's row,
another team's row (where the user holds a lower role, or none), and both at once:

    user      role in A   role in B
    viewer    viewer      —
    member    member      viewer
    owner     owner       member

An action runs only when the user's role in the team of every selected row allows it; otherwise
nothing at all changes. No response ever carries a secret the system stores, and a viewer never
gets a secret-bearing response at all.
"""

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import User
from django.contrib.messages.storage.cookie import CookieStorage
from django.db import models, transaction
from django.http import HttpRequest
from django.test import Client
from django.urls import reverse

from connect.admin.scoping import TeamScopedAdmin
from connect.models import (
    AuthorizationRequest,
    Connector,
    Delivery,
    Membership,
    Role,
    Team,
)
from connect.models.base import ROLE_RANK, SealedSecrets
from tests.admin.pages import form_data
from tests.admin.test_tenancy import World, make_world, snapshot  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

CONNECT_ADMINS = {
    model: model_admin
    for model, model_admin in admin.site._registry.items()
    if model._meta.app_label == "connect"
}
OTHER_ADMINS = {
    model: model_admin
    for model, model_admin in admin.site._registry.items()
    if model._meta.app_label != "connect"
}


def declared_actions(model_admin: admin.ModelAdmin) -> list[tuple[Any, str]]:  # type: ignore[type-arg]
    """Every action the admin declares, the site-wide ones included, whoever may run them."""
    names = [name for name, _ in model_admin.admin_site.actions] + list(model_admin.actions or [])
    found = []
    for name in dict.fromkeys(names):
        action = model_admin.get_action(name)
        assert action is not None, name
        found.append((action[0], action[1]))
    return found


ACTIONS = [
    (model, name)
    for model, model_admin in CONNECT_ADMINS.items()
    for _, name in declared_actions(model_admin)
]
ACTION_IDS = [f"{model._meta.model_name}.{name}" for model, name in ACTIONS]

# The least role each action needs in the row's team; None: no team role runs it.
REQUIRED: dict[tuple[str, str], Role | None] = {
    ("team", "delete_selected"): None,  # superusers delete teams
    ("project", "delete_selected"): Role.OWNER,
    ("environment", "delete_selected"): Role.OWNER,
    ("connector", "delete_selected"): Role.OWNER,
    ("installation", "delete_selected"): Role.OWNER,
    ("grant", "delete_selected"): Role.OWNER,
    ("deploymentcredential", "delete_selected"): Role.OWNER,
    ("deploymentcredential", "revoke"): Role.MEMBER,
    ("trustedissuer", "delete_selected"): Role.OWNER,
    ("triggerdestination", "delete_selected"): Role.OWNER,
    ("triggerdestination", "replay_failed"): Role.MEMBER,
    ("triggerdestination", "rotate_secret"): Role.MEMBER,
    ("inboundevent", "delete_selected"): None,
    ("inboundevent", "replay"): Role.MEMBER,
    ("lifecycleevent", "delete_selected"): None,
    ("lifecycleevent", "replay"): Role.MEMBER,
    ("delivery", "delete_selected"): None,
    ("deliveryattempt", "delete_selected"): None,
    ("tokenissue", "delete_selected"): None,
    ("auditevent", "delete_selected"): None,
    ("authorizationrequest", "delete_selected"): None,
    ("proxycall", "delete_selected"): None,
    ("teamapitoken", "delete_selected"): None,  # revoked, never deleted
    ("teamapitoken", "revoke"): Role.OWNER,
}

# The least role to change and to delete each model's rows through their pages.
READ_ONLY = (None, None)
PAGE_ROLES: dict[str, tuple[Role | None, Role | None]] = {
    "team": (Role.OWNER, None),
    "project": (Role.MEMBER, Role.OWNER),
    "environment": (Role.MEMBER, Role.OWNER),
    "connector": (Role.MEMBER, Role.OWNER),
    "installation": (Role.MEMBER, Role.OWNER),
    "grant": (Role.MEMBER, Role.OWNER),
    "deploymentcredential": (Role.MEMBER, Role.OWNER),
    "trustedissuer": (Role.MEMBER, Role.OWNER),
    "triggerdestination": (Role.MEMBER, Role.OWNER),
    "inboundevent": READ_ONLY,
    "lifecycleevent": READ_ONLY,
    "delivery": READ_ONLY,
    "deliveryattempt": READ_ONLY,
    "tokenissue": READ_ONLY,
    "proxycall": READ_ONLY,
    "auditevent": READ_ONLY,
    "authorizationrequest": READ_ONLY,
    "teamapitoken": (Role.OWNER, None),
}
# The least role to see each model's rows at all, where it is not the viewer's.
VIEW_ROLES: dict[str, Role] = {"teamapitoken": Role.OWNER}
STANDARD_VIEWS = {"changelist", "add", "history", "delete", "change"}
# Custom admin views: (least role, whether the URL names a row).
CUSTOM_VIEWS: dict[str, tuple[Role, bool]] = {
    "connect_connector_install_link": (Role.MEMBER, True),
    "connect_connector_test": (Role.MEMBER, True),  # the dry run (POST only)
    "connect_connector_preset": (Role.MEMBER, False),
    # A reconnect link for an installation or grant that needs re-authorization.
    "connect_installation_reconnect": (Role.MEMBER, True),
    "connect_grant_reconnect": (Role.MEMBER, True),
    # A new secret's page: bound to the member who made it (tests/security/test_one_time_secrets).
    "connect_connector_one_time": (Role.MEMBER, False),
    "connect_deploymentcredential_one_time": (Role.MEMBER, False),
    "connect_triggerdestination_one_time": (Role.MEMBER, False),
    "connect_teamapitoken_one_time": (Role.OWNER, False),
}

USERS = {"viewer": (Role.VIEWER, None), "member": (Role.MEMBER, Role.VIEWER),
         "owner": (Role.OWNER, Role.MEMBER)}  # fmt: skip


def allows(held: Role | None, required: Role | None) -> bool:
    return held is not None and required is not None and ROLE_RANK[held] >= ROLE_RANK[required]


@pytest.fixture
def worlds(
    make_world: Callable[[Team, str], World],  # noqa: F811 (the fixture imported above)
    make_team: Callable[..., Team],
) -> Any:
    a = make_world(make_team(slug="alpha-team"), "alpha")
    b = make_world(make_team(slug="bravo-team"), "bravo")
    for world in (a, b):
        # Revoking at the provider on uninstall meets a closed loopback port, at once.
        Connector.objects.filter(pk=world[Connector].pk).update(
            config={"baseUrl": "http://127.0.0.1:9"}
        )
        Delivery.objects.filter(pk=world[Delivery].pk).update(status=Delivery.Status.FAILED)
    return a, b


@pytest.fixture
def users(worlds: Any, make_user: Callable[..., User]) -> dict[str, tuple[User, Client]]:
    a, b = worlds
    made = {}
    for name, (role_a, role_b) in USERS.items():
        user = make_user(username=f"{name}-user")
        Membership.objects.create(team=a[Team], user=user, role=role_a)
        if role_b is not None:
            Membership.objects.create(team=b[Team], user=user, role=role_b)
        client = Client()
        client.force_login(user)
        made[name] = (user, client)
    return made


def stored_secrets() -> set[str]:
    """Every secret the system holds in a readable form, opened: none may ever be shown."""
    found = set(AuthorizationRequest.objects.values_list("state", flat=True))
    for model in apps.get_app_config("connect").get_models():
        if issubclass(model, SealedSecrets):
            for obj in model._default_manager.all():
                found |= {obj.reveal(name) for name in model.SEALED_FIELDS}
    return {secret for secret in found if secret}


# What the admin says when it does nothing: a row not allowed, no row visible, no such action.
REFUSALS = ("Nothing was done", "No items have been changed", "No action selected")
NEW_SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]{20,}|cdc_[A-Za-z0-9]{12}_[A-Za-z0-9]{24}")


def shown(response: Any) -> str:
    """What the response shows: its body and the messages its cookie carries."""
    text = response.content.decode(errors="replace")
    cookie = response.cookies.get("messages")
    if cookie is not None and cookie.value:
        storage = CookieStorage(HttpRequest())
        decoded = storage._decode(cookie.value) or []
        text += "\n".join(str(message) for message in decoded)
    return text


def assert_shows_no_secret(
    response: Any, secrets: set[str], *, may_show_new: bool, case: str
) -> None:
    text = shown(response)
    for secret in secrets:
        assert secret not in text, f"{case}: a stored secret is in the response"
    if not may_show_new:
        assert not NEW_SECRET.search(text), f"{case}: a secret in a response it must not carry"


@contextmanager
def rolled_back() -> Iterator[None]:
    """Each case starts from the same rows: the test's transaction, rewound."""
    savepoint = transaction.savepoint()
    try:
        yield
    finally:
        transaction.savepoint_rollback(savepoint)


def cases(worlds: Any, model: type[models.Model]) -> list[tuple[str, list[int], int]]:
    """(label, selected pks, index into a user's (role in A, role in B) that decide)."""
    a, b = worlds
    return [
        ("own team", [a[model].pk], 0),
        ("other team", [b[model].pk], 1),
        ("both teams", [a[model].pk, b[model].pk], 2),
    ]


def expected(roles: tuple[Role, Role | None], which: int, required: Role | None) -> bool:
    if which == 2:
        return allows(roles[0], required) and allows(roles[1], required)
    return allows(roles[which], required)


# The tables cover everything ------------------------------------------------------------------


def test_every_action_is_in_the_table() -> None:
    found = {(model._meta.model_name, name) for model, name in ACTIONS}
    assert found == set(REQUIRED), "an admin action was added or lost: give it its role here"


def test_every_action_declares_its_permissions() -> None:
    for model, model_admin in CONNECT_ADMINS.items():
        assert isinstance(model_admin, TeamScopedAdmin), model
        for func, name in declared_actions(model_admin):
            permissions = getattr(func, "allowed_permissions", ())
            assert permissions, f"{model._meta.model_name}.{name} declares no permission"
            for permission in permissions:
                check = getattr(model_admin, f"has_{permission}_permission")
                # Row-aware: the permission is asked with the row.
                assert "obj" in check.__code__.co_varnames, (name, permission)


def test_every_custom_view_is_in_the_table() -> None:
    assert set(PAGE_ROLES) == {model._meta.model_name for model in CONNECT_ADMINS}
    custom = set()
    for model, model_admin in CONNECT_ADMINS.items():
        for pattern in model_admin.get_urls():
            name = pattern.name or ""
            prefix = f"connect_{model._meta.model_name}_"
            if name and name.removeprefix(prefix) not in STANDARD_VIEWS:
                custom.add(name)
    assert custom == set(CUSTOM_VIEWS), "a custom admin view was added: give it its role here"


# Actions ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "action"), ACTIONS, ids=ACTION_IDS)
def test_an_action_runs_only_where_the_role_in_each_rows_team_allows_it(
    model: type[models.Model],
    action: str,
    worlds: Any,
    users: dict[str, tuple[User, Client]],
) -> None:
    required = REQUIRED[(model._meta.model_name, action)]
    changelist = reverse(f"admin:connect_{model._meta.model_name}_changelist")
    secrets = stored_secrets()  # every case starts from these same rows
    for name, (_, client) in users.items():
        roles = USERS[name]
        for label, selected, which in cases(worlds, model):
            case = f"{name} user, {action} on {label}"
            allowed = expected(roles, which, required)
            with rolled_back():
                before = snapshot()
                response = client.post(
                    changelist,
                    {"action": action, "_selected_action": selected, "index": 0, "post": "yes"},
                )
                changed = snapshot() != before
                assert response.status_code in (200, 302, 403), case
                assert changed == allowed, f"{case}: expected {'success' if allowed else 'refusal'}"
                assert_shows_no_secret(
                    response, secrets, may_show_new=allowed and name != "viewer", case=case
                )
                if not allowed and response.status_code == 302:
                    said = shown(response)
                    assert any(text in said for text in REFUSALS), f"{case}: refused silently"


def test_a_member_who_views_another_team_cannot_replay_its_events(
    worlds: Any, users: dict[str, tuple[User, Client]]
) -> None:
    """The example of the issue, spelled out: replay was allowed to a member of *any* team."""
    _, b = worlds
    _, member = users["member"]
    before = snapshot()

    response = member.post(
        reverse("admin:connect_inboundevent_changelist"),
        {"action": "replay", "_selected_action": [b[Delivery].event_id], "index": 0},
    )

    assert response.status_code == 302
    assert "Nothing was done" in shown(response)
    assert snapshot() == before


@pytest.mark.parametrize(("model", "model_admin"), list(OTHER_ADMINS.items()), ids=str)
def test_team_users_run_no_action_of_the_sites_other_admins(
    model: type[models.Model], model_admin: Any, users: dict[str, tuple[User, Client]]
) -> None:
    changelist = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    for name, (user, client) in users.items():
        for _, action in declared_actions(model_admin):
            before = snapshot()
            response = client.post(
                changelist,
                {"action": action, "_selected_action": [user.pk], "index": 0, "post": "yes"},
            )
            assert response.status_code == 403, (name, action)
            assert snapshot() == before


# Pages -------------------------------------------------------------------------------------------


def page_requests(
    model: type[models.Model], pk: int, form: dict[str, list[str]]
) -> list[tuple[str, str, dict[str, Any], int]]:
    """(method, URL, data, index into PAGE_ROLES' (view, change, delete)) of every page."""
    name = model._meta.model_name
    view = f"admin:connect_{name}"
    return [
        ("get", reverse(f"{view}_change", args=[pk]), {}, 0),
        ("get", reverse(f"{view}_history", args=[pk]), {}, 0),
        ("post", reverse(f"{view}_change", args=[pk]), form, 1),
        ("get", reverse(f"{view}_delete", args=[pk]), {}, 2),
        ("post", reverse(f"{view}_delete", args=[pk]), {"post": "yes"}, 2),
    ]


@pytest.mark.parametrize("model", list(CONNECT_ADMINS), ids=lambda m: m._meta.model_name)
def test_change_and_delete_pages_check_the_role_in_the_rows_team(
    model: type[models.Model],
    worlds: Any,
    users: dict[str, tuple[User, Client]],
    admin_client: Client,
) -> None:
    change_role, delete_role = PAGE_ROLES[model._meta.model_name]
    view_role = VIEW_ROLES.get(model._meta.model_name, Role.VIEWER)
    required = (view_role, change_role, delete_role)
    secrets = stored_secrets()
    for world_index, world in enumerate(worlds):
        obj = world[model]
        form = form_data(
            admin_client.get(
                reverse(f"admin:connect_{model._meta.model_name}_change", args=[obj.pk])
            ),
            f"{model._meta.model_name}_form",
        )
        for name, (_, client) in users.items():
            held = USERS[name][world_index]
            for method, path, data, which in page_requests(model, obj.pk, form):
                case = f"{name} user, {method.upper()} {path}"
                allowed = allows(held, required[which])
                with rolled_back():
                    # Only a refused POST needs proving that nothing changed.
                    before = snapshot() if method == "post" and not allowed else None
                    response = getattr(client, method)(path, data)
                    if allowed:
                        assert response.status_code == (200 if method == "get" else 302), case
                    else:
                        assert response.status_code in (403, 404), case
                        assert before is None or snapshot() == before, case
                    assert_shows_no_secret(response, secrets, may_show_new=False, case=case)


def test_the_install_link_needs_a_member_of_the_connectors_team(
    worlds: Any, users: dict[str, tuple[User, Client]]
) -> None:
    for world_index, world in enumerate(worlds):
        path = reverse("admin:connect_connector_install_link", args=[world[Connector].pk])
        for name, (_, client) in users.items():
            allowed = allows(USERS[name][world_index], Role.MEMBER)
            with rolled_back():
                before = AuthorizationRequest.objects.count()
                page, made = client.get(path), client.post(path, {"tenant": ""})
                if allowed:
                    assert (page.status_code, made.status_code) == (200, 200), name
                    assert "/connect/install/" in made.content.decode()
                    assert AuthorizationRequest.objects.count() == before + 1
                else:
                    assert page.status_code in (403, 404), name
                    assert made.status_code in (403, 404), name
                    assert AuthorizationRequest.objects.count() == before


def test_the_preset_page_needs_a_member_somewhere(
    users: dict[str, tuple[User, Client]],
) -> None:
    path = reverse("admin:connect_connector_preset")
    for name, (_, client) in users.items():
        allowed = allows(USERS[name][0], Role.MEMBER)
        assert client.get(path).status_code == (200 if allowed else 403), name
