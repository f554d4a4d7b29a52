"""Team API tokens through the API: owners only, the secret once, never above the maker."""

from connect.models import Role
from connect.models.api_tokens import TeamApiToken
from tests.resources.conftest import Api, World

V = "/v1/connect"


def test_create_shows_the_secret_once_and_it_works(api: Api, acme: World) -> None:
    created = api.post(f"{V}/api-tokens", acme.owner, {"name": "terraform", "role": "member"})
    assert created.status == 201, created.body
    secret = created.body["token"]
    assert secret.startswith(f"cat_{created.body['prefix']}_")
    assert api.post(f"{V}/projects", secret, {"name": "Tf", "slug": "tf"}).status == 201
    listed = api.get(f"{V}/api-tokens", acme.owner).body["apiTokens"]
    assert secret not in str(listed)
    mine = next(t for t in listed if t["id"] == created.body["id"])
    assert mine["lastUsedAt"] is not None


def test_a_token_made_by_a_token_answers_to_the_same_person(
    api: Api, acme: World, make_member: object
) -> None:
    from connect.services.api_tokens import api_token_create

    ada = make_member(acme.team, Role.MEMBER, username="ada")  # type: ignore[operator]
    made_by_ada = api_token_create(
        token=TeamApiToken(team=acme.team, name="ada's", role=Role.MEMBER),
        created_by=ada,
        actor="test",
    )
    # A member's token is not an owner's: it manages no tokens at all.
    assert api.post(f"{V}/api-tokens", made_by_ada, {"name": "x", "role": "viewer"}).status == 403


def test_expired_and_invalid_expiries(api: Api, acme: World) -> None:
    past = api.post(
        f"{V}/api-tokens", acme.owner, {"name": "old", "role": "viewer", "expiresAt": 1000}
    )
    assert past.status == 400
    assert past.body["error"]["message"].startswith("expiresAt:")
    wrong = api.post(f"{V}/api-tokens", acme.owner, {"name": "x", "role": "admin"})
    assert wrong.status == 400
    assert wrong.body["error"]["message"].startswith("role:")
