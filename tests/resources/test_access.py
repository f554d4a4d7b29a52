"""Every resource endpoint, three ways an attacker tries it: with a role too low, with another
team's object, and without a team token (none, a bad one, a deployment credential)."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from connect.models import Role
from tests.resources.conftest import Api, World

V = "/v1/connect"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: Callable[[World], str]
    least: Role
    body: Callable[[World], Any] | None = None
    #: Names a row of the team in its path (so another team's row must be 404).
    names_a_row: bool = True
    #: The success status (the package's: 201 create, 204 delete, 200 otherwise).
    ok: int = 200


def ep(
    method: str, template: str, least: Role, body: Any = None, row: bool = True, ok: int = 0
) -> Any:
    def path(w: World) -> str:
        return template.format(
            p=w.project.public_id,
            i=w.installation.public_id,
            g=w.grant.public_id,
            d=w.destination.public_id,
            c=w.credential.public_id,
            t=w.issuer.public_id,
            e=w.event.public_id,
            m=w.delivery.webhook_id,
        )

    path.__doc__ = template
    return pytest.param(
        Endpoint(
            method, path, least, body, row, ok or {"POST": 201, "DELETE": 204}.get(method, 200)
        ),
        id=f"{method} {template.removeprefix(V)}",
    )


ENDPOINTS = [
    ep("GET", f"{V}/projects", Role.VIEWER, row=False),
    ep("POST", f"{V}/projects", Role.MEMBER, lambda w: {"name": "Api", "slug": "api"}, row=False),
    ep("GET", f"{V}/projects/{{p}}", Role.VIEWER),
    ep("DELETE", f"{V}/projects/{{p}}", Role.OWNER),
    ep("GET", f"{V}/projects/{{p}}/environments", Role.VIEWER),
    ep("POST", f"{V}/projects/{{p}}/environments", Role.MEMBER, lambda w: {"slug": "qa"}),
    ep("DELETE", f"{V}/projects/{{p}}/environments/preview", Role.MEMBER),
    ep("GET", f"{V}/installations", Role.VIEWER, row=False),
    ep("GET", f"{V}/installations/{{i}}", Role.VIEWER),
    ep("DELETE", f"{V}/installations/{{i}}", Role.OWNER),
    ep("GET", f"{V}/grants", Role.VIEWER, row=False),
    ep("GET", f"{V}/grants/{{g}}", Role.VIEWER),
    ep("DELETE", f"{V}/grants/{{g}}", Role.MEMBER),
    ep(
        "POST",
        f"{V}/grants/import",
        Role.MEMBER,
        lambda w: {
            "connector": w.connector.uid,
            "tokens": [{"subject": {"type": "app"}, "accessToken": "sk_live_1"}],
        },
        row=False,
        ok=200,
    ),
    ep("GET", f"{V}/destinations", Role.VIEWER, row=False),
    ep(
        "POST",
        f"{V}/destinations",
        Role.MEMBER,
        lambda w: {
            "connector": w.connector.public_id,
            "projectId": w.project.public_id,
            "environment": "production",
            "path": "/hooks/new",
        },
        row=False,
    ),
    ep("GET", f"{V}/destinations/{{d}}", Role.VIEWER),
    ep("POST", f"{V}/destinations/{{d}}/rotate-secret", Role.MEMBER, ok=200),
    ep("POST", f"{V}/destinations/{{d}}/test", Role.MEMBER),
    ep("GET", f"{V}/credentials", Role.VIEWER, row=False),
    ep(
        "POST",
        f"{V}/credentials",
        Role.MEMBER,
        lambda w: {"projectId": "web", "environment": "production"},
        row=False,
    ),
    ep("DELETE", f"{V}/credentials/{{c}}", Role.MEMBER),
    ep("GET", f"{V}/trusted-issuers", Role.VIEWER, row=False),
    ep(
        "POST",
        f"{V}/trusted-issuers",
        Role.MEMBER,
        lambda w: {
            "issuer": "https://issuer.acme.test",
            "jwksUrl": "https://issuer.acme.test/jwks",
            "rules": [
                {
                    "requiredClaims": {"repository": "acme/web"},
                    "projectId": "web",
                    "environment": "production",
                }
            ],
        },
        row=False,
    ),
    ep("GET", f"{V}/trusted-issuers/{{t}}", Role.VIEWER),
    ep("DELETE", f"{V}/trusted-issuers/{{t}}", Role.OWNER),
    ep("GET", f"{V}/events", Role.VIEWER, row=False),
    ep("GET", f"{V}/events/{{e}}", Role.VIEWER),
    ep("POST", f"{V}/events/{{e}}/replay", Role.MEMBER, ok=200),
    ep("GET", f"{V}/deliveries", Role.VIEWER, row=False),
    ep("GET", f"{V}/deliveries/{{m}}", Role.VIEWER),
    ep("GET", f"{V}/audit-events", Role.VIEWER, row=False),
    ep("GET", f"{V}/api-tokens", Role.OWNER, row=False),
    ep(
        "POST", f"{V}/api-tokens", Role.OWNER, lambda w: {"name": "ci", "role": "viewer"}, row=False
    ),
]

BELOW = {Role.MEMBER: Role.VIEWER, Role.OWNER: Role.MEMBER}


def _call(api: Api, endpoint: Endpoint, world: World, token: str | None, path: str = "") -> Any:
    body = endpoint.body(world) if endpoint.body else None
    return api.call(endpoint.method, path or endpoint.path(world), token, body)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_the_least_role_succeeds_and_the_one_below_is_forbidden(
    api: Api, acme: World, endpoint: Endpoint
) -> None:
    if endpoint.least in BELOW:
        refused = _call(api, endpoint, acme, acme.tokens[BELOW[endpoint.least]])
        assert refused.status == 403, refused.body
        assert refused.error_code == "forbidden"
        assert endpoint.least in refused.body["error"]["message"]
    answer = _call(api, endpoint, acme, acme.tokens[endpoint.least])
    assert answer.status == endpoint.ok, answer.body


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e.values[0].names_a_row])
def test_another_teams_row_is_not_found(
    api: Api, acme: World, globex: World, endpoint: Endpoint
) -> None:
    answer = _call(api, endpoint, acme, acme.owner, path=endpoint.path(globex))
    assert answer.status == 404, answer.body
    assert answer.error_code == "not_found"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_only_a_team_token_gets_in(
    api: Api, acme: World, endpoint: Endpoint, make_credential: Callable[..., str]
) -> None:
    for token in (None, "cat_nope_nope", "garbage"):
        answer = _call(api, endpoint, acme, token)
        assert answer.status == 401, (token, answer.body)
        assert answer.error_code == "unauthorized"
        assert answer.headers["WWW-Authenticate"] == 'Bearer realm="connect"'
    deployment = _call(api, endpoint, acme, make_credential(acme.project))
    assert deployment.status == 403, deployment.body


def test_a_revoked_token_stops_at_once(api: Api, acme: World) -> None:
    own = api.get(f"{V}/api-tokens", acme.owner).body["apiTokens"]
    viewer = next(t for t in own if t["role"] == "viewer")
    assert api.get(f"{V}/projects", acme.viewer).status == 200
    assert api.delete(f"{V}/api-tokens/{viewer['id']}", acme.owner).status == 204
    assert api.get(f"{V}/projects", acme.viewer).status == 401


def test_team_scope_parameters_must_name_the_tokens_team(
    api: Api, acme: World, globex: World
) -> None:
    assert api.get(f"{V}/projects?slug=acme", acme.viewer).status == 200
    assert api.get(f"{V}/projects?teamId={acme.team.public_id}", acme.viewer).status == 200
    assert api.get(f"{V}/projects?slug=globex", acme.viewer).status == 403
    assert api.get(f"{V}/projects?teamId={globex.team.public_id}", acme.viewer).status == 403
