"""The runtime API names each connector type as Vercel's closed enum does."""

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from connect.models import Connector
from connect.providers import PROVIDERS
from tests.api.conftest import Tenant

WIRE = {
    "slack": "slack",
    "github": "github",
    "linear": "linear",
    "microsoft": "microsoft-entra",
    "salesforce": "salesforce",
    "discord": "discord",
    "oauth": "oauth",
    "api-key": "api-key",
}
SINGLE_ACCOUNT = {"salesforce", "discord", "oauth", "api-key"}


@pytest.mark.parametrize("kind", sorted(PROVIDERS))
def test_connector_metadata_names_the_type_on_the_wire(
    client: Client,
    make_tenant: Callable[..., Tenant],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
    kind: str,
) -> None:
    tenant = make_tenant()
    connector = make_connector(tenant.team, uid=f"{kind}/wire", type=kind, client_id="cid")
    make_link(connector, tenant.project, ["production"])

    response = client.get(f"/v1/connect/connectors/{kind}%2Fwire", **tenant.auth)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["type"] == WIRE[kind]
    assert body["supportsInstallation"] is (kind not in SINGLE_ACCOUNT)
    assert body["supportedSubjectTypes"] == (["app"] if kind == "api-key" else ["app", "user"])
