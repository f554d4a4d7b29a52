"""The audit log: every write through the API names the token that made it."""

from tests.resources.conftest import Api, World

V = "/v1/connect"


def test_writes_are_listed_with_the_token_as_actor(api: Api, acme: World) -> None:
    api.post(f"{V}/projects", acme.member, {"name": "Docs", "slug": "docs"})
    api.post(f"{V}/credentials", acme.member, {"projectId": "docs", "environment": "preview"})
    page = api.get(f"{V}/audit-events?type=credential.", acme.viewer).body
    created = page["auditEvents"][0]  # newest first
    assert created["type"] == "credential.created"
    assert created["actor"].startswith("token:tok_")
    assert all(e["type"].startswith("credential.") for e in page["auditEvents"])
    by_actor = api.get(f"{V}/audit-events?actor={created['actor']}", acme.viewer).body
    assert {e["type"] for e in by_actor["auditEvents"]} >= {"project.created", "credential.created"}
