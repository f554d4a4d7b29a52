"""Installations: listed, read, uninstalled (revoked, kept for the record)."""

from connect.models import Installation
from connect.models.installations import GrantStatus
from tests.resources.conftest import Api, World

V = "/v1/connect"


def test_list_get_and_uninstall(api: Api, acme: World) -> None:
    page = api.get(f"{V}/installations?connector={acme.connector.uid}", acme.viewer).body
    assert acme.installation.public_id in [i["id"] for i in page["installations"]]
    assert page["pagination"] == {"next": None}
    one = api.get(f"{V}/installations/{acme.installation.public_id}", acme.viewer).body
    assert one["status"] == "active"
    assert one["tenantId"] == acme.installation.tenant_id

    assert api.delete(f"{V}/installations/{acme.installation.public_id}", acme.owner).status == 204
    acme.installation.refresh_from_db()
    assert acme.installation.status == Installation.Status.REVOKED
    acme.grant.refresh_from_db()
    assert acme.grant.status == GrantStatus.REVOKED
    active = api.get(f"{V}/installations?status=active", acme.viewer).body["installations"]
    assert acme.installation.public_id not in [i["id"] for i in active]
    revoked = api.get(f"{V}/installations?status=revoked", acme.viewer).body["installations"]
    assert [i["id"] for i in revoked] == [acme.installation.public_id]
    # Again: nothing left to do, still 204.
    assert api.delete(f"{V}/installations/{acme.installation.public_id}", acme.owner).status == 204
