"""Cursor pages: newest first, stable while rows are inserted, limits checked."""

from connect.models import AuditEvent
from tests.resources.conftest import Api, World

V = "/v1/connect"


def _audit(world: World, n: int) -> None:
    AuditEvent.objects.bulk_create(
        [AuditEvent(team=world.team, type=f"test.{i}", actor="test") for i in range(n)]
    )


def test_pages_neither_repeat_nor_skip_while_rows_are_inserted(api: Api, acme: World) -> None:
    _audit(acme, 25)
    before = set(AuditEvent.objects.filter(team=acme.team).values_list("pk", flat=True))
    seen: list[int] = []
    path = f"{V}/audit-events?limit=10"
    while True:
        page = api.get(path, acme.viewer).body
        seen += [e["id"] for e in page["auditEvents"]]
        _audit(acme, 3)  # inserted between pages: newer than the cursor, so never in them
        if page["pagination"]["next"] is None:
            break
        path = f"{V}/audit-events?limit=10&cursor={page['pagination']['next']}"
    assert len(seen) == len(set(seen))
    assert set(seen) == before
    assert seen == sorted(seen, reverse=True)


def test_limits_and_cursors_are_checked(api: Api, acme: World) -> None:
    for limit in ("0", "101", "-1", "ten"):
        answer = api.get(f"{V}/projects?limit={limit}", acme.viewer)
        assert answer.status == 400, limit
        assert answer.body["error"]["message"].startswith("limit:")
    bad = api.get(f"{V}/projects?cursor=!!!", acme.viewer)
    assert bad.status == 400
    assert bad.body["error"]["message"].startswith("cursor:")
    last = api.get(f"{V}/projects?limit=100", acme.viewer).body
    assert last["pagination"] == {"next": None}


def test_a_cursor_belongs_to_its_list(api: Api, acme: World) -> None:
    _audit(acme, 3)
    cursor = api.get(f"{V}/audit-events?limit=1", acme.viewer).body["pagination"]["next"]
    assert cursor
    assert api.get(f"{V}/audit-events?cursor={cursor}", acme.viewer).status == 200
    elsewhere = api.get(f"{V}/projects?cursor={cursor}", acme.viewer)
    assert elsewhere.status == 400
    assert elsewhere.body["error"]["code"] == "invalid_request"
    assert elsewhere.body["error"]["message"].startswith("cursor: Not a cursor of this list")


def test_another_teams_rows_never_appear_in_a_list(api: Api, acme: World, globex: World) -> None:
    for key in (
        "projects",
        "installations",
        "grants",
        "destinations",
        "credentials",
        "trusted-issuers",
        "events",
        "deliveries",
        "audit-events",
    ):
        body = api.get(f"{V}/{key}", acme.owner).body
        assert globex.team.slug not in str(body), key
        for ref in (globex.project.public_id, globex.connector.public_id):
            assert ref not in str(body), key
