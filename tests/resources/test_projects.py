"""Projects and environments through the management API."""

from connect.models import AuditEvent, Project, ProjectLink
from connect.models.api_tokens import TeamApiToken
from tests.resources.conftest import Api, World

V = "/v1/connect"


def _token_label(world: World, role: str) -> str:
    return f"token:{TeamApiToken.objects.get(team=world.team, role=role).public_id}"


def test_create_read_and_delete_a_project(api: Api, acme: World) -> None:
    created = api.post(
        f"{V}/projects", acme.member, {"name": "Docs", "slug": "docs", "environments": ["qa"]}
    )
    assert created.status == 201, created.body
    assert created.body["slug"] == "docs"
    assert [e["slug"] for e in created.body["environments"]] == ["qa"]
    assert created.body["environments"][0]["id"].startswith("env_")
    project_id = created.body["id"]
    assert api.get(f"{V}/projects/{project_id}", acme.viewer).body == created.body
    assert api.get(f"{V}/projects/docs", acme.viewer).body["id"] == project_id

    audit = AuditEvent.objects.filter(team=acme.team, type="project.created").get()
    assert audit.actor == _token_label(acme, "member")
    assert audit.targets == {"projectId": project_id}

    assert api.delete(f"{V}/projects/{project_id}", acme.owner).status == 204
    assert not Project.objects.filter(public_id=project_id).exists()
    assert api.get(f"{V}/projects/{project_id}", acme.viewer).status == 404


def test_default_environments_are_the_standard_three(api: Api, acme: World) -> None:
    created = api.post(f"{V}/projects", acme.member, {"name": "Api", "slug": "api"})
    assert [e["slug"] for e in created.body["environments"]] == [
        "development",
        "preview",
        "production",
    ]


def test_a_taken_slug_is_a_conflict(api: Api, acme: World) -> None:
    answer = api.post(f"{V}/projects", acme.member, {"name": "Web again", "slug": "web"})
    assert answer.status == 409
    assert answer.error_code == "conflict"


def test_validation_errors_name_the_field_in_the_envelope(api: Api, acme: World) -> None:
    answer = api.post(f"{V}/projects", acme.member, {"name": "X", "slug": "not a slug"})
    assert answer.status == 400
    assert answer.error_code == "invalid_request"
    assert answer.body["error"]["message"].startswith("slug:")
    assert api.post(f"{V}/projects", acme.member, ["a list"]).status == 400


def test_an_environment_base_url_is_checked_as_the_admin_checks_it(api: Api, acme: World) -> None:
    for url in ("ftp://acme.test", "javascript:alert(1)", "https://user:pw@acme.test"):
        answer = api.post(
            f"{V}/projects/web/environments", acme.member, {"slug": "qa", "baseUrl": url}
        )
        assert answer.status == 400, (url, answer.body)
        assert answer.body["error"]["message"].startswith("base_url:")
    ok = api.post(
        f"{V}/projects/web/environments",
        acme.member,
        {"slug": "qa", "baseUrl": "https://qa.acme.test"},
    )
    assert ok.status == 201
    assert ok.body["baseUrl"] == "https://qa.acme.test"
    again = api.post(f"{V}/projects/web/environments", acme.member, {"slug": "qa"})
    assert again.status == 409


def test_deleting_an_environment_strips_it_from_links(api: Api, acme: World) -> None:
    link = ProjectLink.objects.get(project=acme.project)
    link.environments = ["production", "preview"]
    link.save()
    assert api.delete(f"{V}/projects/web/environments/preview", acme.member).status == 204
    link.refresh_from_db()
    assert link.environments == ["production"]
    environments = api.get(f"{V}/projects/web/environments", acme.viewer).body["environments"]
    assert [e["slug"] for e in environments] == ["production"]
    env_id = environments[0]["id"]
    assert api.delete(f"{V}/projects/web/environments/{env_id}", acme.member).status == 204
    assert not ProjectLink.objects.filter(pk=link.pk).exists()
