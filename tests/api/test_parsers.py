"""A JSON body that spells a lone surrogate is refused as invalid, not a 500 deep inside."""

from typing import Any

from django.test import Client


def test_a_lone_surrogate_is_a_bad_request(make_tenant: Any) -> None:
    tenant = make_tenant()
    body = b'{"subject": {"type": "user", "id": "\\ud9b4x"}}'
    response = Client().post(
        f"/v1/connect/token/{tenant.connector.public_id}",
        data=body,
        content_type="application/json",
        **tenant.auth,
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


def test_a_surrogate_pair_is_fine(make_tenant: Any) -> None:
    tenant = make_tenant()
    body = b'{"subject": {"type": "user", "id": "\\ud83d\\ude00"}}'  # an emoji, escaped
    response = Client().post(
        f"/v1/connect/token/{tenant.connector.public_id}",
        data=body,
        content_type="application/json",
        **tenant.auth,
    )
    assert response.status_code != 500
    assert "not valid JSON" not in str(response.json()), response.json()


def test_a_nul_is_a_bad_request_not_a_database_error(make_tenant: Any) -> None:
    tenant = make_tenant()
    body = b'{"subject": {"type": "app"}, "authorizationDetails": [{"type": "a\\u0000b"}]}'
    response = Client().post(
        f"/v1/connect/token/{tenant.connector.public_id}",
        data=body,
        content_type="application/json",
        **tenant.auth,
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
