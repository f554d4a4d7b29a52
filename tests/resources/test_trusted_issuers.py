"""Trusted issuers: URLs and audiences checked as in the admin."""

from connect.models import TrustedIssuer
from tests.resources.conftest import Api, World

V = "/v1/connect"

RULE = {"requiredClaims": {"repository": "acme/web"}, "projectId": "web", "environment": "preview"}


def test_create_defaults_to_the_teams_own_audience(api: Api, acme: World) -> None:
    created = api.post(
        f"{V}/trusted-issuers",
        acme.member,
        {"issuer": "https://ci.acme.test", "jwksUrl": "https://ci.acme.test/jwks", "rules": [RULE]},
    )
    assert created.status == 201, created.body
    assert created.body["audience"] == acme.team.workload_audience
    assert created.body["rules"][0]["environment"] == "preview"
    assert api.get(f"{V}/trusted-issuers/{created.body['id']}", acme.viewer).body == created.body
    assert api.delete(f"{V}/trusted-issuers/{created.body['id']}", acme.owner).status == 204
    assert not TrustedIssuer.objects.filter(public_id=created.body["id"]).exists()


def test_unsafe_urls_foreign_audiences_and_empty_rules_are_refused(
    api: Api, acme: World, globex: World
) -> None:
    base = {"issuer": "https://ci.acme.test", "jwksUrl": "https://ci.acme.test/jwks"}
    cases = [
        ({**base, "jwksUrl": "file:///etc/passwd", "rules": [RULE]}, "jwks_url:"),
        ({**base, "issuer": "gopher://x", "rules": [RULE]}, "issuer:"),
        ({**base, "audience": globex.team.workload_audience, "rules": [RULE]}, "audience:"),
        ({**base, "rules": [{**RULE, "requiredClaims": {}}]}, "required_claims:"),
    ]
    for body, field in cases:
        answer = api.post(f"{V}/trusted-issuers", acme.member, body)
        assert answer.status == 400, (body, answer.body)
        assert answer.body["error"]["message"].startswith(field), answer.body
    assert not TrustedIssuer.objects.filter(issuer="https://ci.acme.test").exists()
