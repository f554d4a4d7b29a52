"""Deployment credentials: the secret once, revocation that bites at once."""

from tests.resources.conftest import Api, World

V = "/v1/connect"


def test_create_shows_the_token_once_and_it_works_on_the_runtime_api(api: Api, acme: World) -> None:
    created = api.post(
        f"{V}/credentials",
        acme.member,
        {"projectId": "web", "environment": "production", "name": "ci"},
    )
    assert created.status == 201, created.body
    token = created.body["token"]
    assert token.startswith(f"cdc_{created.body['prefix']}_")
    assert api.get(f"/v1/connect/connectors/{acme.connector.public_id}", token).status == 200

    listed = api.get(f"{V}/credentials", acme.viewer).body["credentials"]
    mine = next(c for c in listed if c["id"] == created.body["id"])
    assert "token" not in mine
    assert token not in str(listed)

    assert api.delete(f"{V}/credentials/{mine['id']}", acme.member).status == 204
    assert api.get(f"/v1/connect/connectors/{acme.connector.public_id}", token).status == 401
    revoked = api.get(f"{V}/credentials?status=revoked", acme.viewer).body["credentials"]
    assert [c["id"] for c in revoked] == [mine["id"]]
    assert api.delete(f"{V}/credentials/{mine['id']}", acme.member).status == 204  # idempotent


def test_an_environment_of_another_project_or_team_is_refused(
    api: Api, acme: World, globex: World
) -> None:
    other = api.post(
        f"{V}/credentials",
        acme.member,
        {"projectId": globex.project.public_id, "environment": "production"},
    )
    assert other.status == 404
    missing = api.post(f"{V}/credentials", acme.member, {"projectId": "web", "environment": "nope"})
    assert missing.status == 404
    assert api.post(f"{V}/credentials", acme.member, {"projectId": "web"}).status == 400
