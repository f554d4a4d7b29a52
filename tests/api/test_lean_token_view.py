"""The lean token view answers exactly as DRF's ``TokenView`` does: status, body, headers."""

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client, RequestFactory

from connect.api import views
from connect.models import Role
from tests.api.conftest import Tenant

pytestmark = pytest.mark.django_db


def answer(view: Callable[..., Any], body: str, **extra: str) -> tuple[int, Any, dict[str, str]]:
    request = RequestFactory().post(
        "/v1/connect/token/api-key%2Fkey", body, content_type="application/json", **extra
    )
    response = view(request, connector="api-key/key")
    if hasattr(response, "render"):
        response.render()
    payload = json.loads(response.content)
    payload.pop("tokenId", None)  # a new one each time
    payload.pop("expiresAt", None)
    return response.status_code, payload, dict(response.headers)


@pytest.mark.parametrize(
    ("body", "auth"),
    [
        ('{"subject": {"type": "app"}}', True),
        ('{"subject": {"type": "app"}, "scopes": ["x"]}', True),
        ('{"subject": {"type": "nope"}}', True),
        ('{"subject": {"type": "user", "id": "alice"}}', True),
        ('{"nothing": 1}', True),
        ("[1, 2]", True),
        ('{"subject": {"type": "app"}, "installationId": "sci_none"}', True),
        ('{"subject": {"type": "app"}}', False),
        ("{", True),
        ('{"subject": NaN}', True),
    ],
)
def test_answers_as_drf_does(make_tenant: Callable[..., Tenant], body: str, auth: bool) -> None:
    tenant = make_tenant()
    extra = {"HTTP_AUTHORIZATION": f"Bearer {tenant.token}"} if auth else {}
    lean = answer(views.token, body, **extra)
    drf = answer(views.TokenView.as_view(), body, **extra)
    assert lean == drf


def test_a_wrong_credential_answers_as_drf_does(make_tenant: Callable[..., Tenant]) -> None:
    make_tenant()
    extra = {"HTTP_AUTHORIZATION": "Bearer cdc_nope_nope"}
    body = '{"subject": {"type": "app"}}'
    lean = answer(views.token, body, **extra)
    assert lean == answer(views.TokenView.as_view(), body, **extra)
    assert lean[0] == 401
    assert lean[2]["WWW-Authenticate"] == 'Bearer realm="connect"'


def test_a_signed_in_session_without_a_bearer_gets_no_token(
    make_tenant: Callable[..., Tenant], make_member: Callable[..., Any]
) -> None:
    """The view is exempt from CSRF because it never reads a cookie: a page that makes an
    owner's browser post here (a forged cross-site request) carries a session, no bearer."""
    tenant = make_tenant()
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(make_member(tenant.team, Role.OWNER))
    response = browser.post(
        "/v1/connect/token/api-key%2Fkey",
        '{"subject": {"type": "app"}}',
        content_type="application/json",
    )
    assert response.status_code == 401
    assert "token" not in response.json()
