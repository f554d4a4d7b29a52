"""Vercel's Connect management endpoints for team API tokens (issue 10, point 2): exact
statuses and shapes as ``@vercel/sdk`` 1.28.35 reads them, pagination, validation in the
envelope, the role matrix, and another team's objects as 404."""

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from connect.models import (
    AuditEvent,
    Connector,
    Environment,
    Installation,
    Project,
    ProjectLink,
    Role,
    Team,
    TriggerDestination,
)
from tests.api.conftest import bearer

pytestmark = pytest.mark.django_db

OAUTH_DATA = {
    "clientId": "client-1",
    "clientSecret": "s3cret-value-1",
    "serverConfig": {
        "issuer": "https://auth.example.com",
        "authorization_endpoint": "https://auth.example.com/authorize",
        "token_endpoint": "https://auth.example.com/token",
    },
}
PRODUCTION = {"environments": ["production"]}
CLOSED_TYPES = {
    "api-key", "aws-alpha", "custom", "discord", "github", "linear", "linq", "microsoft-entra",
    "microsoft-teams", "oauth", "photon", "salesforce", "sendblue", "slack", "snowflake",
    "snowflake-wif",
}  # fmt: skip


class Api:
    """A client holding a team API token, speaking JSON."""

    def __init__(self, client: Client, token: str) -> None:
        self.client, self.auth = client, bearer(token)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        kwargs: dict[str, Any] = dict(self.auth)
        if body is not None:
            kwargs.update(data=json.dumps(body), content_type="application/json")
        return getattr(self.client, method)(path, **kwargs)


@pytest.fixture
def team(make_team: Callable[..., Team]) -> Team:
    return make_team()


@pytest.fixture
def project(team: Team, make_project: Callable[..., Project]) -> Project:
    project = make_project(team, slug="shop", environments=("production", "preview"))
    Environment.objects.create(project=project, slug="qa", base_url="https://qa.example.com")
    return project


@pytest.fixture
def api_as(client: Client, team: Team, make_api_token: Callable[..., str]) -> Callable[..., Api]:
    return lambda role="owner", for_team=None: Api(client, make_api_token(for_team or team, role))


def error(response: Any) -> tuple[int, str, str]:
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    return response.status_code, body["error"]["code"], body["error"]["message"]


def create_oauth(api: Api, **extra: Any) -> Any:
    return api.call(
        "post",
        "/v1/connect/connectors",
        {"type": "oauth", "name": "Acme", "uid": "oauth/acme", "data": OAUTH_DATA, **extra},
    )


def assert_connector_shape(body: dict[str, Any]) -> None:
    assert body["id"].startswith("scl_")
    assert body["type"] in CLOSED_TYPES
    assert isinstance(body["supportedSubjectTypes"], list)
    assert body["supportsIcon"] in ("true", "false", "maybe")
    for key in ("uid", "name", "displayName", "typeName", "service"):
        assert isinstance(body[key], str), key
    for key in ("createdAt", "updatedAt"):
        assert isinstance(body[key], int), key
    for key in ("supportsInstallation", "supportsRevocation", "supportsTriggers"):
        assert isinstance(body[key], bool), key
    assert body.get("clientUrl") is None


def assert_connection_shape(body: dict[str, Any], connector: str, project: Project) -> None:
    assert body["connectorId"] == connector
    assert body["project"]["id"] == project.public_id
    assert body["project"]["name"] == project.name
    assert isinstance(body["enabledEnvironments"], list)
    assert isinstance(body["createdAt"], int)
    assert isinstance(body["updatedAt"], int)


# Connectors -----------------------------------------------------------------------------------


def test_create_is_201_with_the_connector_and_secrets_sealed(
    api_as: Callable[..., Api], team: Team, project: Project
) -> None:
    api = api_as("member")
    response = create_oauth(api, projectId=project.public_id, environments=["production"])

    assert response.status_code == 201, response.content
    body = response.json()
    assert_connector_shape(body)
    assert body["uid"] == "oauth/acme"
    assert body["data"]["clientId"] == "client-1"
    assert body["data"]["serverConfig"]["tokenEndpoint"] == "https://auth.example.com/token"
    assert "s3cret-value-1" not in response.content.decode()
    connector = Connector.objects.get(public_id=body["id"])
    assert connector.team == team
    assert connector.reveal("client_secret") == "s3cret-value-1"
    assert connector.config["tokenEndpoint"] == "https://auth.example.com/token"
    link = ProjectLink.objects.get(connector=connector)
    assert link.environments == ["production"]
    event = AuditEvent.objects.get(team=team, type="connector.created")
    assert event.actor.startswith("token:tok_")


def test_create_validates_through_the_registry_in_the_envelope(
    api_as: Callable[..., Api],
) -> None:
    api = api_as("member")
    no_client = {**OAUTH_DATA}
    del no_client["clientId"]
    cases = [
        ({"type": "oauth", "name": "x", "data": no_client}, "data.clientId"),
        ({"type": "oauth", "name": "x"}, "data"),
        ({"type": "nope", "name": "x", "data": {}}, "type"),
        ({"type": "oauth", "data": OAUTH_DATA}, "name"),
        ({"type": "oauth", "name": "x", "data": OAUTH_DATA, "uid": "scl_x/y"}, "uid"),
        ({"type": "oauth", "name": "x", "data": OAUTH_DATA, "backgroundColor": "red"}, "backg"),
        (
            {
                "type": "oauth",
                "name": "x",
                "data": {**OAUTH_DATA, "serverUrl": "file:///etc/passwd"},
            },
            "data.serverUrl",
        ),
        ({"type": "oauth", "name": "x", "data": {**OAUTH_DATA, "bogus": 1}}, "data.bogus"),
        # Fail-closed triggers: no webhook secret, no triggers.
        ({"type": "oauth", "name": "x", "data": OAUTH_DATA, "triggers": True}, "triggers"),
    ]
    for body, field in cases:
        response = api.call("post", "/v1/connect/connectors", body)
        assert response.status_code == 400, (field, response.content)
        status, code, message = error(response)
        assert (status, code) == (400, "invalid_request"), (body, message)
        assert message.startswith(field), (field, message)
    assert not Connector.objects.exists()


def test_a_taken_uid_is_409_conflict(api_as: Callable[..., Api]) -> None:
    api = api_as("member")
    assert create_oauth(api).status_code == 201
    assert error(create_oauth(api))[:2] == (409, "conflict")
    other = create_oauth(api, uid="oauth/other")
    assert other.status_code == 201
    renamed = api.call("patch", "/v2/connect/connectors/oauth%2Fother", {"uid": "oauth/acme"})
    assert error(renamed)[:2] == (409, "conflict")


def test_get_shows_the_management_view_by_id_and_by_encoded_uid(
    api_as: Callable[..., Api],
) -> None:
    api = api_as("viewer")
    created = create_oauth(api_as("member")).json()
    for ref in (created["id"], "oauth%2Facme", "oauth%252Facme"):
        response = api.call("get", f"/v1/connect/connectors/{ref}")
        assert response.status_code == 200, (ref, response.content)
        assert response.json()["id"] == created["id"]
        assert_connector_shape(response.json())


def test_patch_answers_the_connector_wrapper(api_as: Callable[..., Api]) -> None:
    api = api_as("member")
    created = create_oauth(api).json()
    response = api.call(
        "patch",
        f"/v2/connect/connectors/{created['id']}",
        {
            "name": "Acme 2",
            "accentColor": "#123456",
            "data": {"clientId": "client-2"},
            "events": ["user.created", "user.created"],
            "uid": "oauth/acme-2",
        },
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) >= {"connector"}
    assert_connector_shape(body["connector"])
    assert body["connector"]["name"] == "Acme 2"
    assert body["connector"]["uid"] == "oauth/acme-2"
    assert body["connector"]["data"]["clientId"] == "client-2"
    assert body["connector"]["events"] == ["user.created"]
    connector = Connector.objects.get(public_id=created["id"])
    assert connector.reveal("client_secret") == "s3cret-value-1"  # a patch keeps the rest
    assert error(api.call("patch", f"/v2/connect/connectors/{created['id']}", {}))[:2] == (
        400,
        "invalid_request",
    )


def test_trigger_secrets_come_before_triggers(api_as: Callable[..., Api]) -> None:
    api = api_as("member")
    created = create_oauth(api).json()
    path = f"/v2/connect/connectors/{created['id']}"
    assert error(api.call("patch", path, {"triggers": True}))[:2] == (400, "invalid_request")
    response = api.call(
        "patch",
        path,
        {"triggers": True, "triggerVerificationInput": {"webhookSecret": "whsec_abc"}},
    )
    assert response.status_code == 200, response.content
    assert response.json()["connector"]["triggers"] == {"enabled": True}
    connector = Connector.objects.get(public_id=created["id"])
    assert connector.reveal("trigger_signing_secret") == "whsec_abc"


def test_list_filters_and_pages_stably_under_inserts(
    api_as: Callable[..., Api], project: Project
) -> None:
    member = api_as("member")
    for n in range(5):
        assert create_oauth(member, uid=f"oauth/c{n}", name=f"C{n}").status_code == 201
    viewer = api_as("viewer")

    first = viewer.call("get", "/v2/connect/connectors?limit=2&sort=name")
    assert first.status_code == 200
    page = first.json()
    assert [c["name"] for c in page["connectors"]] == ["C0", "C1"]
    # Rows inserted before and after the cursor change nothing of the next pages.
    assert create_oauth(member, uid="oauth/a", name="A").status_code == 201
    assert create_oauth(member, uid="oauth/c2b", name="C2b").status_code == 201
    seen = [c["name"] for c in page["connectors"]]
    cursor = page["pagination"]["next"]
    while cursor:
        response = viewer.call("get", f"/v2/connect/connectors?limit=2&sort=name&cursor={cursor}")
        assert response.status_code == 200
        seen += [c["name"] for c in response.json()["connectors"]]
        cursor = response.json()["pagination"]["next"]
    assert seen == ["C0", "C1", "C2", "C2b", "C3", "C4"]
    assert response.json()["pagination"] == {"next": None}

    search = viewer.call("get", "/v2/connect/connectors?search=c3").json()["connectors"]
    assert [c["uid"] for c in search] == ["oauth/c3"]
    typed = viewer.call("get", "/v2/connect/connectors?type=slack%2Coauth&service=oauth").json()
    assert len(typed["connectors"]) == 7
    member.call("post", "/v1/connect/connectors/oauth%2Fc4/projects/shop", {"environments": ["qa"]})
    linked = viewer.call("get", "/v2/connect/connectors?projectId=shop").json()["connectors"]
    assert [c["uid"] for c in linked] == ["oauth/c4"]
    for bad in ("limit=0", "limit=101", "limit=x", "cursor=nonsense", "sort=size"):
        assert error(viewer.call("get", f"/v2/connect/connectors?{bad}"))[:2] == (
            400,
            "invalid_request",
        ), bad


def test_delete_is_204_and_uninstalls_active_installations(
    api_as: Callable[..., Api], make_connector: Callable[..., Connector], team: Team
) -> None:
    connector = make_connector(team, uid="slack/bot", type="slack", client_id="c")
    Installation.objects.create(connector=connector, tenant_id="T1", display_name="one")
    path = f"/v1/connect/connectors/{connector.public_id}"
    assert error(api_as("member").call("delete", path))[:2] == (403, "forbidden")

    response = api_as("owner").call("delete", path)

    assert response.status_code == 204
    assert response.content == b""
    assert response["Connect-Uninstalled-Installations"] == "1"
    assert not Connector.objects.filter(pk=connector.pk).exists()
    types = set(AuditEvent.objects.filter(team=team).values_list("type", flat=True))
    assert {"installation.removed", "connector.deleted"} <= types
    assert error(api_as("owner").call("delete", path))[:2] == (404, "not_found")


# Project connections -------------------------------------------------------------------------


def test_project_connections_upsert_get_list_and_delete(
    api_as: Callable[..., Api], project: Project
) -> None:
    api = api_as("member")
    connector = create_oauth(api).json()["id"]
    qa = project.environments.get(slug="qa")
    path = f"/v1/connect/connectors/oauth%2Facme/projects/{project.public_id}"

    created = api.call("post", path, {"environments": ["production", qa.public_id, "production"]})
    assert created.status_code == 200, created.content  # 200 even when it creates
    assert_connection_shape(created.json(), connector, project)
    assert created.json()["enabledEnvironments"] == ["production", qa.public_id]
    custom = created.json()["project"]["customEnvironments"]
    assert custom == [{"id": qa.public_id, "slug": "qa"}]

    replaced = api.call("post", path, {"environments": ["preview"]})
    assert replaced.status_code == 200
    assert replaced.json()["enabledEnvironments"] == ["preview"]
    assert ProjectLink.objects.get().environments == ["preview"]
    assert replaced.json()["updatedAt"] >= created.json()["updatedAt"]

    got = api.call("get", f"/v1/connect/connectors/{connector}/projects/shop")
    assert got.status_code == 200
    assert got.json() == replaced.json()
    both = [
        api.call("get", "/v2/connect/connectors/oauth%2Facme/projects").json(),
        api.call("get", f"/v2/connect/projects/{project.public_id}/connectors").json(),
    ]
    assert both[0] == {"projects": [replaced.json()], "pagination": {"next": None}}
    assert both[1] == {"connectors": [replaced.json()], "pagination": {"next": None}}

    for bad in ({"environments": []}, {"environments": ["staging"]}, {}):
        assert error(api.call("post", path, bad))[:2] == (400, "invalid_request"), bad

    deleted = api.call("delete", path)
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert error(api.call("get", path))[:2] == (404, "not_found")
    assert error(api.call("delete", path))[:2] == (404, "not_found")


def test_removing_the_last_environment_removes_the_link(
    api_as: Callable[..., Api], project: Project
) -> None:
    api = api_as("member")
    create_oauth(api)
    base = "/v1/connect/connectors/oauth%2Facme/projects/shop"
    api.call("post", base, {"environments": ["production", "qa"]})
    assert api.call("delete", f"{base}/environments/qa").status_code == 204
    assert ProjectLink.objects.get().environments == ["production"]
    assert api.call("delete", f"{base}/environments/qa").status_code == 204  # idempotent
    assert api.call("delete", f"{base}/environments/production").status_code == 204
    assert not ProjectLink.objects.exists()


def test_link_lists_page_stably(
    api_as: Callable[..., Api], team: Team, make_project: Callable[..., Project]
) -> None:
    api = api_as("member")
    create_oauth(api)
    for n in range(3):
        make_project(team, slug=f"p{n}")
        api.call("post", f"/v1/connect/connectors/oauth%2Facme/projects/p{n}", PRODUCTION)
    page = api.call("get", "/v2/connect/connectors/oauth%2Facme/projects?limit=2").json()
    make_project(team, slug="late")
    api.call("post", "/v1/connect/connectors/oauth%2Facme/projects/late", PRODUCTION)
    cursor = page["pagination"]["next"]
    rest = api.call("get", f"/v2/connect/connectors/oauth%2Facme/projects?cursor={cursor}").json()
    names = [c["project"]["name"] for c in page["projects"] + rest["projects"]]
    assert names[:3] == ["P0", "P1", "P2"]


# Trigger destinations --------------------------------------------------------------------------


def test_team_tokens_replace_destinations_with_vercels_body_and_ours(
    api_as: Callable[..., Api], project: Project
) -> None:
    api = api_as("member")
    create_oauth(
        api, data={**OAUTH_DATA, "webhookSecret": "whsec_abc"}, triggers=True, projectId="shop"
    )
    qa = project.environments.get(slug="qa")
    response = api.call(
        "patch",
        "/v1/connect/connectors/oauth%2Facme/trigger-destinations",
        {
            "destinations": [
                {"projectId": project.public_id, "path": "/hooks"},
                {"projectId": "shop", "customEnvironmentId": qa.public_id},
                {"projectId": "shop", "environment": "preview", "path": "/p"},
            ]
        },
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert_connector_shape(body)
    assert body["triggerDestinations"] == [
        {"projectId": project.public_id, "path": "/hooks"},
        {"projectId": project.public_id, "customEnvironmentId": qa.public_id, "path": "/"},
        {"projectId": project.public_id, "path": "/p"},
    ]
    rows = TriggerDestination.objects.order_by("pk")
    assert [d.environment.slug for d in rows] == ["production", "qa", "preview"]
    branch = {"destinations": [{"projectId": "shop", "branch": "main"}]}
    path = "/v1/connect/connectors/oauth%2Facme/trigger-destinations"
    assert error(api.call("patch", path, branch))[:2] == (400, "invalid_request")
    cleared = api.call("patch", path, {"destinations": []})
    assert cleared.json()["triggerDestinations"] == []


# Roles and teams -------------------------------------------------------------------------------


def test_viewers_read_members_write_owners_delete(
    api_as: Callable[..., Api], project: Project
) -> None:
    viewer, member = api_as("viewer"), api_as("member")
    assert error(create_oauth(viewer))[:2] == (403, "forbidden")
    assert create_oauth(member).status_code == 201
    link = "/v1/connect/connectors/oauth%2Facme/projects/shop"
    writes = [
        ("patch", "/v2/connect/connectors/oauth%2Facme", {"name": "x"}),
        ("post", link, {"environments": ["production"]}),
        ("patch", "/v1/connect/connectors/oauth%2Facme/trigger-destinations", {"destinations": []}),
        ("delete", "/v1/connect/connectors/oauth%2Facme", None),
    ]
    for method, path, body in writes:
        assert error(viewer.call(method, path, body))[:2] == (403, "forbidden"), path
    reads = ["/v2/connect/connectors", "/v1/connect/connectors/oauth%2Facme"]
    for path in reads:
        assert viewer.call("get", path).status_code == 200


def test_another_teams_objects_are_404(
    api_as: Callable[..., Api],
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    project: Project,
) -> None:
    ours = api_as("owner")
    create_oauth(ours)
    other_team = make_team()
    make_project(other_team, slug="theirs")
    theirs = api_as("owner", for_team=other_team)
    create_oauth(theirs, uid="oauth/theirs")
    their_id = Connector.objects.get(uid="oauth/theirs").public_id
    for method, path, body in [
        ("get", f"/v1/connect/connectors/{their_id}", None),
        ("get", "/v1/connect/connectors/oauth%2Ftheirs", None),
        ("patch", f"/v2/connect/connectors/{their_id}", {"name": "mine"}),
        ("delete", f"/v1/connect/connectors/{their_id}", None),
        ("get", f"/v2/connect/connectors/{their_id}/projects", None),
        (
            "post",
            "/v1/connect/connectors/oauth%2Facme/projects/theirs",
            {"environments": ["production"]},
        ),
        ("get", "/v2/connect/projects/theirs/connectors", None),
    ]:
        assert error(ours.call(method, path, body))[:2] == (404, "not_found"), path
    assert Connector.objects.get(public_id=their_id).name == "Acme"
    listed = ours.call("get", "/v2/connect/connectors").json()["connectors"]
    assert [c["uid"] for c in listed] == ["oauth/acme"]


def test_deployments_keep_the_runtime_view_and_cannot_manage(
    client: Client, make_tenant: Callable[..., Any]
) -> None:
    tenant = make_tenant()
    metadata = client.get("/v1/connect/connectors/api-key%2Fkey", **tenant.auth)
    assert metadata.status_code == 200
    assert "defaultScopes" in metadata.json()  # today's runtime shape
    for method, path in [
        ("delete", "/v1/connect/connectors/api-key%2Fkey"),
        ("get", "/v2/connect/connectors"),
        ("post", "/v1/connect/connectors"),
    ]:
        response = getattr(client, method)(path, **tenant.auth)
        assert error(response)[:2] == (403, "forbidden"), path
    assert Connector.objects.filter(pk=tenant.connector.pk).exists()


def test_member_role_matrix_uses_the_creators_current_role(
    client: Client,
    team: Team,
    project: Project,
    make_member: Callable[..., Any],
    make_api_token: Callable[..., str],
) -> None:
    from connect.models import Membership

    owner = make_member(team, Role.OWNER)
    api = Api(client, make_api_token(team, "owner", creator=owner))
    assert create_oauth(api).status_code == 201
    Membership.objects.filter(user=owner).update(role=Role.VIEWER)
    assert error(api.call("patch", "/v2/connect/connectors/oauth%2Facme", {"name": "x"}))[:2] == (
        403,
        "forbidden",
    )


def test_a_page_of_connectors_costs_the_same_queries_whatever_its_size(
    api_as: Callable[..., Api], django_assert_max_num_queries: Any
) -> None:
    api = api_as("viewer")
    member = api_as("member")
    create_oauth(member, uid="oauth/one")
    with django_assert_max_num_queries(100) as one:
        assert api.call("get", "/v2/connect/connectors").status_code == 200
    for n in range(6):
        create_oauth(member, uid=f"oauth/more{n}")
    with django_assert_max_num_queries(100) as seven:
        assert len(api.call("get", "/v2/connect/connectors").json()["connectors"]) == 7
    assert len(seven.captured_queries) == len(one.captured_queries)


def test_team_scope_of_another_team_is_refused_on_every_path(
    api_as: Callable[..., Api], make_team: Callable[..., Team], project: Project
) -> None:
    api = api_as("owner")
    create_oauth(api)
    other = make_team()
    for method, path in [
        ("get", "/v1/connect/connectors/oauth%2Facme"),
        ("delete", "/v1/connect/connectors/oauth%2Facme"),
        ("get", "/v2/connect/connectors"),
        ("patch", "/v2/connect/connectors/oauth%2Facme"),
    ]:
        body = {"name": "x"} if method == "patch" else None
        response = api.call(method, f"{path}?teamId={other.public_id}", body)
        assert error(response)[:2] == (403, "forbidden"), path
    assert Connector.objects.get(uid="oauth/acme").name == "Acme"


def test_no_answer_carries_a_secret(api_as: Callable[..., Api], project: Project) -> None:
    api = api_as("owner")
    secret_data = {**OAUTH_DATA, "webhookSecret": "whsec_never_shown"}
    answers = [create_oauth(api, data=secret_data, projectId="shop")]
    answers += [
        api.call("get", "/v1/connect/connectors/oauth%2Facme"),
        api.call("get", "/v2/connect/connectors"),
        api.call("patch", "/v2/connect/connectors/oauth%2Facme", {"name": "B"}),
        api.call("get", "/v2/connect/connectors/oauth%2Facme/projects"),
    ]
    for answer in answers:
        assert answer.status_code in (200, 201)
        text = answer.content.decode()
        assert "s3cret-value-1" not in text
        assert "whsec_never_shown" not in text


def test_create_without_uid_or_name_takes_them_from_the_project(
    api_as: Callable[..., Api], project: Project
) -> None:
    api = api_as("member")
    body = {"type": "oauth", "projectId": "shop", "data": OAUTH_DATA}
    first = api.call("post", "/v1/connect/connectors", body)
    second = api.call("post", "/v1/connect/connectors", body)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["name"] == project.name
    assert [first.json()["uid"], second.json()["uid"]] == ["oauth/shop", "oauth/shop-2"]
    link = ProjectLink.objects.get(connector__public_id=first.json()["id"])
    assert link.environments == ["production", "preview"]  # the built-ins the project has


def test_events_are_checked_by_the_models_rule(api_as: Callable[..., Api]) -> None:
    api = api_as("member")
    create_oauth(api)
    path = "/v2/connect/connectors/oauth%2Facme"
    status, code, message = error(api.call("patch", path, {"events": ["not an event."]}))
    assert (status, code) == (400, "invalid_request")
    assert message.startswith("events:")
    assert api.call("patch", path, {"events": ["issues"]}).json()["connector"]["events"] == [
        "issues"
    ]
    assert Connector.objects.get(uid="oauth/acme").event_selected("issues.opened")
    assert not Connector.objects.get(uid="oauth/acme").event_selected("push")


def test_return_origins_are_set_on_create_and_patch_with_the_admins_rules(
    api_as: Callable[..., Api], settings: Any
) -> None:
    """Allowed return origins were admin-only, so a scripted setup could not use returnUrl."""
    api = api_as("member")
    created = create_oauth(api, returnOrigins=["https://app.example.com"])
    assert created.status_code == 201, created.content
    assert created.json()["returnOrigins"] == ["https://app.example.com"]
    connector = Connector.objects.get(public_id=created.json()["id"])
    assert connector.allowed_return_origins == ["https://app.example.com"]
    path = f"/v2/connect/connectors/{created.json()['id']}"
    response = api.call("patch", path, {"returnOrigins": ["https://a.example", "http://b.test:3000"]})
    assert response.status_code == 200, response.content
    assert response.json()["connector"]["returnOrigins"] == ["https://a.example", "http://b.test:3000"]
    # Same validation as the admin's field: an origin, not a URL with a path; https in production.
    bad = api.call("patch", path, {"returnOrigins": ["https://a.example/done"]})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_request"
    assert bad.json()["error"]["message"].startswith("returnOrigins: ")
    settings.PRODUCTION = True
    insecure = api.call("patch", path, {"returnOrigins": ["http://b.test"]})
    assert insecure.status_code == 400, insecure.content
    assert "https://" in insecure.json()["error"]["message"]
    connector.refresh_from_db()
    assert connector.allowed_return_origins == ["https://a.example", "http://b.test:3000"]
    cleared = api.call("patch", path, {"returnOrigins": []})
    assert cleared.json()["connector"]["returnOrigins"] == []


def test_a_viewer_cannot_set_return_origins(api_as: Callable[..., Api]) -> None:
    created = create_oauth(api_as("member")).json()
    response = api_as("viewer").call(
        "patch", f"/v2/connect/connectors/{created['id']}", {"returnOrigins": ["https://evil.test"]}
    )
    assert response.status_code == 403
    assert Connector.objects.get(public_id=created["id"]).allowed_return_origins == []
