"""Grants: listed by subject, revoked one by one, imported (app grants too) by a team token."""

from connect.models import AuditEvent, Grant
from connect.models.installations import GrantStatus
from tests.resources.conftest import Api, World

V = "/v1/connect"


def test_list_by_subject(api: Api, acme: World, make_grant: object) -> None:
    make_grant(acme.installation, Grant.SubjectType.USER, subject_id="u_2")  # type: ignore[operator]
    page = api.get(f"{V}/grants?subjectType=user&subjectId=u_1", acme.viewer).body
    assert [g["id"] for g in page["grants"]] == [acme.grant.public_id]
    grant = page["grants"][0]
    assert grant["subject"] == {"type": "user", "id": "u_1", "issuer": acme.project.public_id}
    assert grant["connectorId"] == acme.connector.public_id
    assert "accessToken" not in grant
    assert "at-1" not in str(page)
    assert len(api.get(f"{V}/grants?subjectType=user", acme.viewer).body["grants"]) == 2
    assert api.get(f"{V}/grants?connector={acme.connector.uid}", acme.viewer).body["grants"]


def test_revoke_clears_the_tokens_and_is_audited_with_the_token(api: Api, acme: World) -> None:
    assert api.delete(f"{V}/grants/{acme.grant.public_id}", acme.member).status == 204
    acme.grant.refresh_from_db()
    assert acme.grant.status == GrantStatus.REVOKED
    assert acme.grant.reveal("access_token") == ""
    audit = AuditEvent.objects.get(team=acme.team, type="grant.revoked")
    assert audit.actor.startswith("token:tok_")
    assert api.get(f"{V}/grants/{acme.grant.public_id}", acme.viewer).body["status"] == "revoked"


def test_a_team_token_imports_app_grants_which_a_deployment_cannot(
    api: Api, acme: World, make_credential: object
) -> None:
    item = {
        "subject": {"type": "app"},
        "installationId": acme.installation.public_id,
        "accessToken": "sk_live_imported",
    }
    body = {"connector": acme.connector.public_id, "tokens": [item]}
    imported = api.post(f"{V}/grants/import", acme.member, body)
    assert imported.status == 200, imported.body
    assert imported.body["imported"] == 1, imported.body
    assert "sk_live_imported" not in str(imported.body)
    grant = Grant.objects.get(installation=acme.installation, subject_type="app")
    assert grant.reveal("access_token") == "sk_live_imported"

    deployment = make_credential(acme.project)  # type: ignore[operator]
    runtime = api.post(
        f"/v1/connect/token/{acme.connector.public_id}/import", deployment, {"tokens": [item]}
    )
    assert runtime.status == 200
    assert runtime.body["imported"] == 0
    assert "team member" in runtime.body["tokens"][0]["error"]


def test_import_for_a_project_defaults_user_issuers_to_it(api: Api, acme: World) -> None:
    body = {
        "connector": acme.connector.uid,
        "projectId": "web",
        "tokens": [{"subject": {"type": "user", "id": "u_9"}, "accessToken": "sk_u9"}],
    }
    answer = api.post(f"{V}/grants/import", acme.member, body)
    assert answer.body["imported"] == 1, answer.body
    grant = Grant.objects.get(subject_id="u_9")
    assert grant.issuer == acme.project.public_id


def test_import_validation(api: Api, acme: World, globex: World) -> None:
    empty = api.post(
        f"{V}/grants/import", acme.member, {"connector": acme.connector.uid, "tokens": []}
    )
    assert empty.status == 400
    assert empty.body["error"]["message"].startswith("tokens:")
    foreign = api.post(
        f"{V}/grants/import",
        acme.member,
        {"connector": globex.connector.uid, "tokens": [{"subject": {"type": "app"}}]},
    )
    assert foreign.status == 404
