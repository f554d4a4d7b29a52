"""The admin is team-scoped: a user sees and touches only their teams' objects, by any route.

Every Connect model admin registered on the site is exercised; adding an admin without a row
in ``TEAM_PATH`` (and an object in ``make_world``) fails ``test_every_connect_admin_is_covered``.
"""

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import User
from django.db import models
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from connect.admin.scoping import ReadOnlyTeamScopedAdmin
from connect.models import (
    AuditEvent,
    AuthorizationRequest,
    Connector,
    Delivery,
    DeliveryAttempt,
    DeploymentCredential,
    Environment,
    Grant,
    InboundEvent,
    Installation,
    LifecycleEvent,
    Membership,
    Project,
    ProjectLink,
    ProxyCall,
    Role,
    Team,
    TeamApiToken,
    TokenIssue,
    TriggerDestination,
    TrustedIssuer,
    TrustedIssuerRule,
)
from connect.services.api_tokens import api_token_create
from connect.services.audit import audit_record
from connect.services.credentials import deployment_credential_create
from connect.services.destinations import destination_save
from tests.admin.pages import form_data, select_options

World = dict[type[models.Model], models.Model]

# How each admin's rows reach their team, written out here as the test's own oracle.
TEAM_PATH: dict[type[models.Model], str] = {
    Team: "pk",
    Project: "team",
    Environment: "project__team",
    Connector: "team",
    Installation: "connector__team",
    Grant: "installation__connector__team",
    TokenIssue: "grant__installation__connector__team",
    DeploymentCredential: "project__team",
    TrustedIssuer: "team",
    TriggerDestination: "connector__team",
    InboundEvent: "connector__team",
    LifecycleEvent: "connector__team",
    Delivery: "event__connector__team",
    DeliveryAttempt: "delivery__event__connector__team",
    AuditEvent: "team",
    AuthorizationRequest: "connector__team",
    TeamApiToken: "team",
    ProxyCall: "team",
}
#: Admins only owners see at all (team API tokens).
OWNERS_ONLY = {TeamApiToken}
CONNECT_ADMINS = sorted(
    (model for model in admin.site._registry if model._meta.app_label == "connect"),
    key=lambda model: model._meta.model_name,
)
ADMIN_IDS = [model._meta.model_name for model in CONNECT_ADMINS]
# Every foreign key of every Connect model: each one is an autocomplete source.
FOREIGN_KEYS = [
    (model, field.name)
    for model in apps.get_app_config("connect").get_models()
    for field in model._meta.get_fields()
    if field.many_to_one and field.concrete
]
FK_IDS = [f"{model._meta.model_name}.{name}" for model, name in FOREIGN_KEYS]


def url(model: type[models.Model], view: str, *args: Any) -> str:
    return reverse(f"admin:connect_{model._meta.model_name}_{view}", args=args)


def team_rows(model: type[models.Model], team: Team) -> set[int]:
    path = TEAM_PATH[model]
    return set(model._default_manager.filter(**{path: team.pk}).values_list("pk", flat=True))


def snapshot() -> dict[str, list[dict[str, Any]]]:
    """Every row of every Connect table and of the users: what a refused request must not touch."""
    state = {
        model._meta.label: list(model._default_manager.order_by("pk").values())
        for model in apps.get_app_config("connect").get_models()
    }
    state["auth.User"] = list(User.objects.order_by("pk").values())
    return state


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def make_world(
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., ProjectLink],
    make_installation: Callable[..., Installation],
) -> Callable[[Team, str], World]:
    """One object of every Connect model for a team, each carrying ``tag`` in a visible field."""

    def make(team: Team, tag: str) -> World:
        project = make_project(team, slug=f"{tag}-app", environments=("production", "preview"))
        environment = project.environments.get(slug="production")
        connector = make_connector(
            team,
            uid=f"slack/{tag}-bot",
            type="slack",
            name=f"{tag} bot",
            secrets={"client_secret": f"{tag}-client-secret"},
        )
        link = make_link(connector, project, ["production"])
        installation = make_installation(
            connector, tenant_id=f"T-{tag}", display_name=f"{tag} workspace"
        )
        grant = Grant(installation=installation, subject_type="app", issuer=f"{tag}-issuer")
        grant.seal("access_token", f"xoxb-{tag}-access")
        grant.save()
        destination = destination_save(
            destination=TriggerDestination(
                connector=connector, project=project, environment=environment, path=f"/{tag}"
            ),
            actor="test",
        )
        event = InboundEvent.objects.create(
            connector=connector,
            installation=installation,
            provider_event_id=f"Ev-{tag}",
            event_type=f"{tag}.event",
            headers={},
            body=b"{}",
        )
        delivery = Delivery.objects.create(event=event, destination=destination)
        lifecycle_event = LifecycleEvent.objects.create(
            connector=connector, type="grant.created", body=b'{"type": "grant.created"}'
        )
        attempt = DeliveryAttempt.objects.create(
            delivery=delivery, status_code=500, error=f"{tag} upstream error"
        )
        issue = TokenIssue.objects.create(grant=grant, project=project, environment="production")
        authorization = AuthorizationRequest.objects.create(
            kind="install",
            connector=connector,
            subject_id=f"{tag}-subject",
            verifier_sha256=uuid.uuid4().hex * 2,
            state=uuid.uuid4().hex,
            expires_at=timezone.now() + timedelta(minutes=10),
        )
        credential = DeploymentCredential(project=project, environment=environment, name=tag)
        deployment_credential_create(credential=credential, actor="test")
        issuer = TrustedIssuer.objects.create(
            team=team,
            issuer=f"https://{tag}.issuer.test",
            jwks_url=f"https://{tag}.issuer.test/jwks",
            audience=f"{tag}-audience",
        )
        TrustedIssuerRule.objects.create(
            trusted_issuer=issuer,
            required_claims={"repository": f"{tag}/app"},
            project=project,
            environment=environment,
        )
        audit = audit_record(team=team, type=f"{tag}.happened", actor="test")
        api_token = TeamApiToken(team=team, name=f"{tag} token", role="viewer")
        api_token_create(token=api_token, created_by=None, actor="test")
        proxied = ProxyCall.objects.create(
            team=team,
            connector=connector,
            grant=grant,
            project=project,
            environment="production",
            method="GET",
            path=f"/{tag}/conversations.list",
            outcome="answered",
            status=200,
            latency_ms=12,
        )
        return {
            Team: team,
            Project: project,
            Environment: environment,
            Connector: connector,
            ProjectLink: link,
            Installation: installation,
            Grant: grant,
            TriggerDestination: destination,
            InboundEvent: event,
            LifecycleEvent: lifecycle_event,
            Delivery: delivery,
            DeliveryAttempt: attempt,
            TokenIssue: issue,
            AuthorizationRequest: authorization,
            DeploymentCredential: credential,
            TrustedIssuer: issuer,
            AuditEvent: audit,
            TeamApiToken: api_token,
            ProxyCall: proxied,
        }

    return make


@pytest.fixture
def team_a(make_team: Callable[..., Team]) -> Team:
    return make_team(slug="alpha-team", name="Alpha Team")


@pytest.fixture
def team_b(make_team: Callable[..., Team]) -> Team:
    return make_team(slug="bravo-team", name="Bravo Team")


@pytest.fixture
def world_a(make_world: Callable[[Team, str], World], team_a: Team) -> World:
    return make_world(team_a, "alpha")


@pytest.fixture
def world_b(make_world: Callable[[Team, str], World], team_b: Team) -> World:
    return make_world(team_b, "bravo")


@pytest.fixture
def owner_a(make_member: Callable[..., User], team_a: Team) -> User:
    return make_member(team_a, Role.OWNER, username="alpha-owner")


@pytest.fixture
def member_a(make_member: Callable[..., User], team_a: Team) -> User:
    return make_member(team_a, Role.MEMBER, username="alpha-member")


@pytest.fixture
def viewer_a(make_member: Callable[..., User], team_a: Team) -> User:
    return make_member(team_a, Role.VIEWER, username="alpha-viewer")


def assert_nothing_of_b(response: Any, world_b: World) -> None:
    """No name, id or public id of team B's objects anywhere in the page."""
    html = response.content.decode()
    assert "bravo" not in html.lower()
    for obj in world_b.values():
        public_id = getattr(obj, "public_id", None)
        if public_id:
            assert public_id not in html


def test_every_connect_admin_is_covered(world_a: World) -> None:
    assert set(CONNECT_ADMINS) == set(TEAM_PATH), "an admin was added or lost: update TEAM_PATH"
    assert set(TEAM_PATH) <= set(world_a), "make_world must create an object of every admin"


# Listing


@pytest.mark.parametrize("model", CONNECT_ADMINS, ids=ADMIN_IDS)
def test_changelist_shows_only_own_team(
    model: type[models.Model], owner_a: User, world_a: World, world_b: World, team_b: Team
) -> None:
    response = client_for(owner_a).get(url(model, "changelist"))

    assert response.status_code == 200
    listed = {obj.pk for obj in response.context["cl"].result_list}
    assert world_a[model].pk in listed
    assert listed.isdisjoint(team_rows(model, team_b))
    assert url(model, "change", world_b[model].pk) not in response.content.decode()
    assert_nothing_of_b(response, world_b)


def test_index_lists_only_own_connectors(member_a: User, world_a: World, world_b: World) -> None:
    response = client_for(member_a).get("/admin/")

    assert response.status_code == 200
    assert [c.pk for c in response.context["connectors"]] == [world_a[Connector].pk]
    assert_nothing_of_b(response, world_b)


# Another team's object URLs are 404, never Django's "doesn't exist" redirect


@pytest.mark.parametrize("view", ["change", "delete", "history"])
@pytest.mark.parametrize("model", CONNECT_ADMINS, ids=ADMIN_IDS)
def test_other_teams_object_urls_are_404(
    model: type[models.Model], view: str, owner_a: User, world_a: World, world_b: World
) -> None:
    client = client_for(owner_a)

    assert client.get(url(model, view, world_b[model].pk)).status_code == 404
    # Indistinguishable from an id that does not exist at all.
    assert client.get(url(model, view, 987654321)).status_code == 404
    # The same URL for the user's own object answers (deleting a team is for superusers, and
    # logs and records the system writes are deleted by nobody).
    undeletable = isinstance(admin.site._registry[model], ReadOnlyTeamScopedAdmin)
    # Team API tokens are revoked, never deleted: the audit log names them.
    revoked_only = model is TeamApiToken
    own = 403 if view == "delete" and (model is Team or undeletable or revoked_only) else 200
    assert client.get(url(model, view, world_a[model].pk)).status_code == own


@pytest.mark.parametrize("model", CONNECT_ADMINS, ids=ADMIN_IDS)
def test_crafted_posts_cannot_change_or_delete_other_teams_objects(
    model: type[models.Model], owner_a: User, world_a: World, world_b: World
) -> None:
    client = client_for(owner_a)
    # A complete, valid submission of the user's own object's form, aimed at team B's object.
    data = form_data(
        client.get(url(model, "change", world_a[model].pk)), f"{model._meta.model_name}_form"
    )
    before = snapshot()

    assert client.post(url(model, "change", world_b[model].pk), data).status_code == 404
    assert client.post(url(model, "delete", world_b[model].pk), {"post": "yes"}).status_code == 404
    client.post(
        url(model, "changelist"),
        {"action": "delete_selected", "_selected_action": [world_b[model].pk], "post": "yes"},
    )

    assert snapshot() == before


def test_cannot_move_own_connector_to_another_team(
    member_a: User, world_a: World, world_b: World, team_b: Team
) -> None:
    client = client_for(member_a)
    connector = world_a[Connector]
    data = form_data(client.get(url(Connector, "change", connector.pk)), "connector_form")
    data["team"] = [str(team_b.pk)]

    response = client.post(url(Connector, "change", connector.pk), data)

    assert response.status_code == 200
    assert "team" in response.context["adminform"].form.errors
    connector.refresh_from_db()
    assert connector.team_id == world_a[Team].pk


def test_cannot_link_own_connector_to_another_teams_project(
    member_a: User, world_a: World, world_b: World
) -> None:
    client = client_for(member_a)
    connector = world_a[Connector]
    data = form_data(client.get(url(Connector, "change", connector.pk)), "connector_form")
    data["links-0-project"] = [str(world_b[Project].pk)]
    before = snapshot()

    response = client.post(url(Connector, "change", connector.pk), data)

    assert response.status_code == 200
    assert response.context["errors"]
    assert snapshot() == before


def test_cannot_add_rows_pointing_at_another_teams_project(
    member_a: User, world_a: World, world_b: World
) -> None:
    client = client_for(member_a)
    model = DeploymentCredential
    data = form_data(client.get(url(model, "add")), "deploymentcredential_form")
    data["name"] = ["stolen"]
    data["project"] = [str(world_b[Project].pk)]
    data["environment"] = [str(world_b[Environment].pk)]
    before = snapshot()

    response = client.post(url(model, "add"), data)

    assert response.status_code == 200
    form_errors = response.context["adminform"].form.errors
    assert {"project", "environment"} <= set(form_errors)
    assert snapshot() == before


def test_cannot_add_trusted_issuer_rules_pointing_at_another_teams_project(
    member_a: User, world_a: World, world_b: World
) -> None:
    client = client_for(member_a)
    data = form_data(client.get(url(TrustedIssuer, "add")), "trustedissuer_form")
    data.update(
        team=[str(world_a[Team].pk)],
        issuer=["https://x.test"],
        jwks_url=["https://x.test/j"],
        audience=["x"],
    )
    data["rules-0-required_claims"] = ['{"repository": "x/y"}']
    data["rules-0-project"] = [str(world_b[Project].pk)]
    data["rules-0-environment"] = [str(world_b[Environment].pk)]
    before = snapshot()

    response = client.post(url(TrustedIssuer, "add"), data)

    assert response.status_code == 200
    (rules,) = response.context["inline_admin_formsets"]
    assert {"project", "environment"} <= set(rules.formset.errors[0])
    assert snapshot() == before


# Autocomplete


@pytest.mark.parametrize(("source", "field_name"), FOREIGN_KEYS, ids=FK_IDS)
def test_autocomplete_offers_only_own_team(
    source: type[models.Model],
    field_name: str,
    member_a: User,
    world_a: World,
    world_b: World,
    team_b: Team,
) -> None:
    remote = source._meta.get_field(field_name).related_model
    query = {
        "app_label": "connect",
        "model_name": source._meta.model_name,
        "field_name": field_name,
        "term": "",
    }

    response = client_for(member_a).get("/admin/autocomplete/", query)

    if remote not in TEAM_PATH:
        # Users, or models without an admin: nothing to pick from for a team member.
        assert response.status_code == 403
        return
    if not admin.site._registry[remote].get_search_fields(response.wsgi_request):
        # Django offers no autocomplete for an admin without search fields.
        assert response.status_code == 404
        return
    assert response.status_code == 200
    offered = {int(result["id"]) for result in response.json()["results"]}
    assert world_a[remote].pk in offered
    assert offered.isdisjoint(team_rows(remote, team_b))
    assert "bravo" not in response.content.decode().lower()


def test_autocomplete_search_for_another_teams_object_finds_nothing(
    member_a: User, world_a: World, world_b: World
) -> None:
    client = client_for(member_a)
    for term in ["bravo", world_b[Connector].public_id]:
        response = client.get(
            "/admin/autocomplete/",
            {
                "app_label": "connect",
                "model_name": "projectlink",
                "field_name": "connector",
                "term": term,
            },
        )
        assert response.status_code == 200
        assert response.json()["results"] == []


# Choices in forms


@pytest.mark.parametrize(
    ("path", "selects"),
    [
        (
            "connector/add/",
            {
                "team": Team,
                "links-__prefix__-project": Project,
                "destinations-__prefix__-project": Project,
                "destinations-__prefix__-environment": Environment,
            },
        ),
        ("project/add/", {"team": Team}),
        ("environment/add/", {"project": Project}),
        ("deploymentcredential/add/", {"project": Project, "environment": Environment}),
        (
            "trustedissuer/add/",
            {
                "team": Team,
                "rules-0-project": Project,
                "rules-0-environment": Environment,
            },
        ),
    ],
)
def test_form_choices_list_only_own_team(
    path: str,
    selects: dict[str, type[models.Model]],
    member_a: User,
    team_a: Team,
    world_a: World,
    world_b: World,
) -> None:
    response = client_for(member_a).get(f"/admin/connect/{path}")

    assert response.status_code == 200
    for name, model in selects.items():
        offered = {int(value) for value, _ in select_options(response, name)}
        assert offered == team_rows(model, team_a), name
    assert_nothing_of_b(response, world_b)


def test_connector_page_inline_choices_list_only_own_team(
    member_a: User, team_a: Team, world_a: World, world_b: World
) -> None:
    response = client_for(member_a).get(url(Connector, "change", world_a[Connector].pk))

    assert response.status_code == 200
    for name, model in [
        ("team", Team),
        ("links-0-project", Project),
        ("links-__prefix__-project", Project),
        ("destinations-0-project", Project),
        ("destinations-0-environment", Environment),
    ]:
        offered = {int(value) for value, _ in select_options(response, name)}
        assert offered == team_rows(model, team_a), name
    assert_nothing_of_b(response, world_b)


def test_teams_the_user_only_views_are_not_offered_for_writing(
    member_a: User, team_a: Team, world_a: World, world_b: World, team_b: Team
) -> None:
    Membership.objects.create(team=team_b, user=member_a, role=Role.VIEWER)
    client = client_for(member_a)

    response = client.get(url(Connector, "add"))
    assert {int(v) for v, _ in select_options(response, "team")} == {team_a.pk}
    assert {int(v) for v, _ in select_options(response, "links-__prefix__-project")} == {
        world_a[Project].pk
    }

    # Team B's connector can be read but not changed.
    page = client.get(url(Connector, "change", world_b[Connector].pk))
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    data = form_data(client.get(url(Connector, "change", world_a[Connector].pk)), "connector_form")
    data["team"] = [str(team_b.pk)]
    data["uid"] = ["slack/moved"]
    before = snapshot()
    assert client.post(url(Connector, "change", world_a[Connector].pk), data).status_code == 200
    assert client.post(url(Connector, "change", world_b[Connector].pk), data).status_code == 403
    assert snapshot() == before


def test_a_link_to_a_project_of_another_of_the_users_teams_is_refused(
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    member_a: User,
    world_a: World,
) -> None:
    # The user may write in both teams, but a connector of one never serves the other's project.
    team_c = make_team(slug="charlie-team")
    Membership.objects.create(team=team_c, user=member_a, role=Role.MEMBER)
    project_c = make_project(team_c, slug="charlie-app")
    client = client_for(member_a)
    connector = world_a[Connector]
    data = form_data(client.get(url(Connector, "change", connector.pk)), "connector_form")
    data["links-0-project"] = [str(project_c.pk)]
    before = snapshot()

    response = client.post(url(Connector, "change", connector.pk), data)

    assert response.status_code == 200
    assert response.context["errors"]
    assert snapshot() == before


@pytest.mark.parametrize(
    ("inline", "kind"),
    [
        ("links", "api-key"),
        # Trigger destinations are offered to types that receive webhooks only.
        ("destinations", "slack"),
        ("lifecycle_destinations", "api-key"),
    ],
)
def test_a_new_connectors_link_to_a_project_of_another_of_the_users_teams_is_refused(
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    member_a: User,
    world_a: World,
    inline: str,
    kind: str,
) -> None:
    # On the add page the connector has no id yet: the team check must not wait for one.
    team_c = make_team(slug="charlie-team")
    Membership.objects.create(team=team_c, user=member_a, role=Role.MEMBER)
    project_c = make_project(team_c, slug="charlie-app")
    client = client_for(member_a)
    data = form_data(client.get(url(Connector, "add") + f"?type={kind}"), "connector_form")
    data.update(
        {
            "team": [str(world_a[Project].team_id)],
            "type": [kind],
            "uid": [f"{kind}/crossed"],
            "service": [kind],
            "name": ["Crossed"],
        }
    )
    if kind == "api-key":
        data["api_key"] = ["k-123"]
    else:
        data.update(client_id=["1111.2222"], client_secret=["slack-cs-1"])
    prefix = inline
    assert f"{prefix}-TOTAL_FORMS" in data, sorted(k for k in data if k.endswith("TOTAL_FORMS"))
    data[f"{prefix}-TOTAL_FORMS"] = ["1"]
    data[f"{prefix}-0-project"] = [str(project_c.pk)]
    if inline == "links":
        data[f"{prefix}-0-environments"] = ["production"]
    else:
        data[f"{prefix}-0-environment"] = [str(project_c.environments.get().pk)]
        data[f"{prefix}-0-path"] = ["/hook"]
        data[f"{prefix}-0-enabled"] = ["on"]
    before = snapshot()

    response = client.post(url(Connector, "add"), data)

    assert response.status_code == 200
    assert response.context["errors"]
    # Refused for the crossed project, not for anything else on the form.
    assert not response.context["adminform"].form.errors, response.context["adminform"].form.errors
    (formset,) = [
        f.formset for f in response.context["inline_admin_formsets"] if f.formset.prefix == prefix
    ]
    assert any(formset.errors) or formset.non_form_errors()
    assert snapshot() == before


# Roles: viewer < member < owner


@pytest.mark.parametrize("model", CONNECT_ADMINS, ids=ADMIN_IDS)
def test_viewer_reads_but_every_write_is_refused(
    model: type[models.Model], viewer_a: User, owner_a: User, world_a: World
) -> None:
    viewer = client_for(viewer_a)
    obj = world_a[model]
    name = model._meta.model_name
    if model in OWNERS_ONLY:
        assert viewer.get(url(model, "changelist")).status_code == 403
        assert viewer.get(url(model, "add")).status_code == 403
        assert viewer.get(url(model, "change", obj.pk)).status_code == 404  # not in their list
        return

    assert viewer.get(url(model, "changelist")).status_code == 200
    page = viewer.get(url(model, "change", obj.pk))
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert viewer.get(url(model, "history", obj.pk)).status_code == 200

    # What the owner's browser would submit, sent from the viewer's session.
    change_data = form_data(client_for(owner_a).get(url(model, "change", obj.pk)), f"{name}_form")
    before = snapshot()
    assert viewer.post(url(model, "change", obj.pk), change_data).status_code == 403
    assert viewer.get(url(model, "add")).status_code == 403
    assert viewer.post(url(model, "add"), change_data).status_code == 403
    assert viewer.get(url(model, "delete", obj.pk)).status_code == 403
    assert viewer.post(url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    viewer.post(
        url(model, "changelist"),
        {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"},
    )
    assert snapshot() == before


def test_viewer_sees_members_but_cannot_add_any(
    viewer_a: User, owner_a: User, team_a: Team, mailoutbox: list[Any]
) -> None:
    viewer = client_for(viewer_a)
    page = viewer.get(url(Team, "change", team_a.pk))
    assert page.status_code == 200
    assert "alpha-owner" in page.content.decode()

    data = form_data(client_for(owner_a).get(url(Team, "change", team_a.pk)), "team_form")
    add_member_row(data, "intruder@example.com", Role.OWNER)
    before = snapshot()
    assert viewer.post(url(Team, "change", team_a.pk), data).status_code == 403
    assert snapshot() == before
    assert mailoutbox == []


def test_member_adds_a_connector_through_the_form(member_a: User, team_a: Team) -> None:
    client = client_for(member_a)
    data = form_data(client.get(url(Connector, "add")), "connector_form")
    data.update(
        team=[str(team_a.pk)],
        type=["api-key"],
        uid=["api-key/weather"],
        service=["weather"],
        name=["Weather API"],
        api_key=["wx-key-123"],
    )

    response = client.post(url(Connector, "add"), data)

    assert response.status_code == 302, response.context and response.context["errors"]
    assert response["Location"] == url(Connector, "changelist")
    connector = Connector.objects.get(uid="api-key/weather")
    assert connector.team == team_a
    assert connector.reveal("api_key") == "wx-key-123"
    # A single-account type gets its one implicit installation.
    assert list(connector.installations.values_list("tenant_id", flat=True)) == [
        connector.public_id
    ]
    assert AuditEvent.objects.filter(
        team=team_a, type="connector.created", actor__endswith="alpha-member"
    ).exists()


def test_member_cannot_delete_or_administer_the_team(
    member_a: User, owner_a: User, team_a: Team, world_a: World
) -> None:
    client = client_for(member_a)
    connector = world_a[Connector]
    team_data = form_data(client_for(owner_a).get(url(Team, "change", team_a.pk)), "team_form")
    team_data["name"] = ["Renamed"]
    before = snapshot()

    assert client.get(url(Connector, "delete", connector.pk)).status_code == 403
    assert client.post(url(Connector, "delete", connector.pk), {"post": "yes"}).status_code == 403
    assert client.post(url(Team, "change", team_a.pk), team_data).status_code == 403
    assert client.get(url(Team, "add")).status_code == 403
    assert snapshot() == before


# Owners manage members on the team page, and never get the User admin


def add_member_row(data: dict[str, list[str]], email: str, role: Role) -> None:
    """Do what the "Add another membership" link does, then fill the new row."""
    index = int(data["memberships-TOTAL_FORMS"][0])
    data["memberships-TOTAL_FORMS"] = [str(index + 1)]
    data[f"memberships-{index}-email"] = [email]
    data[f"memberships-{index}-role"] = [role.value]
    data[f"memberships-{index}-team"] = data["memberships-0-team"]


def test_owner_adds_a_member_who_is_invited_and_can_sign_in(
    owner_a: User,
    team_a: Team,
    mailoutbox: list[Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    client = client_for(owner_a)
    data = form_data(client.get(url(Team, "change", team_a.pk)), "team_form")
    add_member_row(data, "new.person@example.com", Role.MEMBER)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url(Team, "change", team_a.pk), data)

    assert response.status_code == 302, response.context and response.context["errors"]
    new_user = User.objects.get(email="new.person@example.com")
    assert Membership.objects.get(team=team_a, user=new_user).role == Role.MEMBER
    assert not new_user.has_usable_password()
    assert not new_user.is_staff
    assert not new_user.is_superuser
    assert [m.to for m in mailoutbox] == [["new.person@example.com"]]

    # The invitation's link lets them choose a password, then sign in and see the team.
    link = next(word for word in mailoutbox[0].body.split() if "/accounts/password/reset/" in word)
    assert link.startswith(f"{settings.PUBLIC_URL}/accounts/password/reset/key/")
    invitee = Client()
    form_page = invitee.get(urlsplit(link).path, follow=True)
    assert form_page.status_code == 200
    assert 'name="password1"' in form_page.content.decode()
    set_password = invitee.post(
        form_page.redirect_chain[-1][0],
        {"password1": "a fresh passphrase 42", "password2": "a fresh passphrase 42"},
    )
    assert set_password.status_code == 302
    signed_in = Client()
    response = signed_in.post(
        "/accounts/login/?next=/admin/",
        {"login": "new.person@example.com", "password": "a fresh passphrase 42"},
    )
    assert response.status_code == 302
    assert signed_in.get("/admin/").status_code == 200


def test_owner_adds_an_existing_user_without_a_new_invitation(
    owner_a: User,
    team_a: Team,
    make_user: Callable[..., User],
    mailoutbox: list[Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    existing = make_user(username="known", email="known@example.com")
    client = client_for(owner_a)
    data = form_data(client.get(url(Team, "change", team_a.pk)), "team_form")
    add_member_row(data, "KNOWN@example.com", Role.VIEWER)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url(Team, "change", team_a.pk), data)

    assert response.status_code == 302
    assert Membership.objects.get(team=team_a, user=existing).role == Role.VIEWER
    assert User.objects.filter(email__iexact="known@example.com").count() == 1
    assert mailoutbox == []


def test_owner_removes_a_member(owner_a: User, member_a: User, team_a: Team) -> None:
    client = client_for(owner_a)
    data = form_data(client.get(url(Team, "change", team_a.pk)), "team_form")
    membership = Membership.objects.get(team=team_a, user=member_a)
    row = next(
        key.removesuffix("-id")
        for key, value in data.items()
        if key.startswith("memberships-") and key.endswith("-id") and value == [str(membership.pk)]
    )
    data[f"{row}-DELETE"] = ["on"]

    response = client.post(url(Team, "change", team_a.pk), data)

    assert response.status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert User.objects.filter(pk=member_a.pk).exists()
    assert AuditEvent.objects.filter(team=team_a, type="member.removed").exists()
    assert client_for(member_a).get("/admin/").status_code == 302


def test_owner_cannot_touch_another_teams_memberships(
    owner_a: User, team_a: Team, team_b: Team, make_member: Callable[..., User]
) -> None:
    make_member(team_b, Role.VIEWER, username="bravo-viewer")
    foreign = Membership.objects.get(team=team_b)
    client = client_for(owner_a)
    data = form_data(client.get(url(Team, "change", team_a.pk)), "team_form")
    # Point the owner's own row at team B's membership and promote it.
    data["memberships-0-id"] = [str(foreign.pk)]
    data["memberships-0-role"] = [Role.OWNER.value]
    before = snapshot()

    response = client.post(url(Team, "change", team_a.pk), data)

    assert response.status_code == 200
    assert snapshot() == before


def test_owner_never_gets_the_user_admin(owner_a: User, member_a: User) -> None:
    client = client_for(owner_a)
    before = snapshot()

    for path in [
        "/admin/auth/user/",
        "/admin/auth/user/add/",
        f"/admin/auth/user/{owner_a.pk}/change/",
        f"/admin/auth/user/{owner_a.pk}/password/",
        "/admin/auth/group/",
        "/admin/account/emailaddress/",
        "/admin/socialaccount/socialtoken/",
    ]:
        assert client.get(path).status_code == 403, path
    promote = {"username": "alpha-owner", "is_superuser": "on", "is_staff": "on", "_save": "Save"}
    assert client.post(f"/admin/auth/user/{owner_a.pk}/change/", promote).status_code == 403
    new_user = {"username": "sneaky", "password1": "x-Long-pass-1", "password2": "x-Long-pass-1"}
    assert client.post("/admin/auth/user/add/", new_user).status_code == 403
    assert snapshot() == before

    index = client.get("/admin/")
    assert index.status_code == 200
    # Grouped by task (Connectors, Projects & credentials, …): every entry is Connect's, its
    # models' pages and the Activity page (/admin/activity/).
    assert {
        model["admin_url"].split("/")[2]
        for app in index.context["app_list"]
        for model in app["models"]
    } == {"connect", "activity"}
    html = index.content.decode()
    for prefix in ["/admin/auth/", "/admin/account/", "/admin/socialaccount/"]:
        assert prefix not in html


# Who may enter


def test_a_user_without_membership_is_refused(
    make_user: Callable[..., User], world_a: World
) -> None:
    client = client_for(make_user(username="drifter"))

    paths = [
        "/admin/",
        url(Connector, "changelist"),
        url(Connector, "change", world_a[Connector].pk),
    ]
    for path in paths:
        response = client.get(path, follow=True)
        # Refused outright: not bounced between the admin and the sign-in page.
        assert response.status_code == 403, path
        assert [hop for hop, _ in response.redirect_chain] == [f"/admin/login/?next={path}"]
        assert "not a member of any team" in response.content.decode()
        assert "alpha" not in response.content.decode().lower()
    query = {"app_label": "connect", "model_name": "installation", "field_name": "connector"}
    response = client.get("/admin/autocomplete/", query, follow=True)
    assert response.status_code == 403
    assert "results" not in response.content.decode()


def test_admin_login_url_hands_over_to_the_sign_in_page(client: Client) -> None:
    response = client.get("/admin/login/?next=/admin/connect/connector/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=%2Fadmin%2Fconnect%2Fconnector%2F"
    # An off-site next is replaced by the admin index.
    response = client.get("/admin/login/?next=https://evil.test/")
    assert response["Location"] == "/accounts/login/?next=%2Fadmin%2F"


# Superusers see and create everything


@pytest.mark.parametrize("model", CONNECT_ADMINS, ids=ADMIN_IDS)
def test_superuser_sees_every_team(
    model: type[models.Model], admin_client: Client, world_a: World, world_b: World
) -> None:
    response = admin_client.get(url(model, "changelist"))

    assert response.status_code == 200
    listed = {obj.pk for obj in response.context["cl"].result_list}
    assert {world_a[model].pk, world_b[model].pk} <= listed
    assert admin_client.get(url(model, "change", world_b[model].pk)).status_code == 200


def test_superuser_creates_a_team(admin_client: Client) -> None:
    data = form_data(admin_client.get(url(Team, "add")), "team_form")
    data.update(name=["Gamma"], slug=["gamma"])

    response = admin_client.post(url(Team, "add"), data)

    assert response.status_code == 302, response.context and response.context["errors"]
    team = Team.objects.get(slug="gamma")
    assert team.name == "Gamma"
    assert team.public_id.startswith("team_")
    assert admin_client.get("/admin/auth/user/").status_code == 200


def test_only_superusers_create_teams(owner_a: User) -> None:
    client = client_for(owner_a)
    assert client.get(url(Team, "add")).status_code == 403
    assert client.post(url(Team, "add"), {"name": "Rogue", "slug": "rogue"}).status_code == 403
    assert not Team.objects.filter(slug="rogue").exists()
