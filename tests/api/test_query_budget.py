"""The hot path's SQL budget (SPEC section 12): a cached valid grant costs at most three queries
with a deployment credential (credential; connector + link + installation + grant; the ``stk_``
insert) and two with an OIDC token of the app's own issuer (keys and project ids kept in process).
"""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from connect.models import Connector, DeploymentCredential, Grant, TokenIssue
from connect.oidc import oidc_token_mint
from tests.api.conftest import Tenant
from tests.api.wire import APP, post_json

pytestmark = pytest.mark.django_db

UID = "api-key%2Fkey"


def statements(captured: Any) -> list[str]:
    return [query["sql"].lstrip().split()[0].upper() for query in captured.captured_queries]


def inserts_one_token_issue(captured: Any) -> bool:
    inserts = [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].lstrip().upper().startswith("INSERT")
    ]
    return len(inserts) == 1 and TokenIssue._meta.db_table in inserts[0]


def last_used(tenant: Tenant) -> Any:
    return DeploymentCredential.objects.get(project=tenant.project).last_used_at


def test_api_key_token_with_a_credential(
    client: Client,
    make_tenant: Callable[..., Tenant],
    django_assert_max_num_queries: Callable[..., Any],
) -> None:
    tenant = make_tenant(api_key="the-key")
    started = timezone.now()
    assert post_json(client, f"/v1/connect/token/{UID}", APP, **tenant.auth).status_code == 200
    first_use = last_used(tenant)
    assert first_use is not None
    assert first_use >= started

    with django_assert_max_num_queries(3) as captured:
        response = post_json(client, f"/v1/connect/token/{UID}", APP, **tenant.auth)
    assert response.status_code == 200
    assert response.json()["token"] == "the-key"
    assert statements(captured) == ["SELECT", "SELECT", "INSERT"]
    assert inserts_one_token_issue(captured)
    # Within the minute the last use is not written again.
    assert last_used(tenant) == first_use

    # A minute later it is, once.
    a_while_ago = first_use - timedelta(seconds=61)
    DeploymentCredential.objects.filter(project=tenant.project).update(last_used_at=a_while_ago)
    moment = timezone.now()
    with django_assert_max_num_queries(4) as captured:
        assert post_json(client, f"/v1/connect/token/{UID}", APP, **tenant.auth).status_code == 200
    assert statements(captured).count("UPDATE") == 1
    assert last_used(tenant) >= moment
    assert TokenIssue.objects.filter(project=tenant.project).count() == 3


def test_the_scl_id_costs_the_same(
    client: Client,
    make_tenant: Callable[..., Tenant],
    django_assert_max_num_queries: Callable[..., Any],
) -> None:
    tenant = make_tenant()
    path = f"/v1/connect/token/{tenant.connector.public_id}"
    assert post_json(client, path, APP, **tenant.auth).status_code == 200
    with django_assert_max_num_queries(3):
        assert post_json(client, path, APP, **tenant.auth).status_code == 200


@pytest.mark.parametrize("subject", ["app", "user"])
def test_oauth_cached_grant_with_a_credential(
    client: Client,
    make_tenant: Callable[..., Tenant],
    make_oauth_connector: Callable[..., Connector],
    make_grant: Callable[..., Grant],
    django_assert_max_num_queries: Callable[..., Any],
    subject: str,
) -> None:
    """A valid cached token is handed out as is: no provider call (its token endpoint does not
    even resolve), no write to the grant."""
    tenant = make_tenant()
    connector = make_oauth_connector(tenant)
    grant = make_grant(
        connector.installations.get(),
        subject_type=subject,
        subject_id="42" if subject == "user" else "",
        issuer=tenant.project.public_id if subject == "user" else "",
        secrets={"access_token": f"cached-{subject}-token"},
        access_expires_at=timezone.now() + timedelta(hours=1),
        scopes=["api"] if subject == "app" else ["read"],
    )
    body = {"subject": {"type": subject, "id": "42"} if subject == "user" else {"type": "app"}}
    path = "/v1/connect/token/oauth%2Facme"
    assert post_json(client, path, body, **tenant.auth).status_code == 200

    with django_assert_max_num_queries(3) as captured:
        response = post_json(client, path, body, **tenant.auth)
    assert response.status_code == 200, response.content
    assert response.json()["token"] == f"cached-{subject}-token"
    assert response.json()["expiresAt"] == int(grant.access_expires_at.timestamp() * 1000)
    assert statements(captured) == ["SELECT", "SELECT", "INSERT"]
    assert inserts_one_token_issue(captured)
    version = grant.version
    grant.refresh_from_db()
    assert grant.version == version
    assert grant.reveal("access_token") == f"cached-{subject}-token"


def test_oidc_caller_of_our_own_issuer(
    client: Client,
    make_tenant: Callable[..., Tenant],
    django_assert_max_num_queries: Callable[..., Any],
) -> None:
    tenant = make_tenant(api_key="the-key")
    auth = {
        "HTTP_AUTHORIZATION": "Bearer "
        + oidc_token_mint(project=tenant.project, environment="production")
    }
    assert post_json(client, f"/v1/connect/token/{UID}", APP, **auth).status_code == 200

    with django_assert_max_num_queries(2) as captured:
        response = post_json(client, f"/v1/connect/token/{UID}", APP, **auth)
    assert response.status_code == 200
    assert response.json()["token"] == "the-key"
    assert statements(captured) == ["SELECT", "INSERT"]
    assert inserts_one_token_issue(captured)

    # Another token of the same project and key: still nothing to look up.
    other = oidc_token_mint(
        project=tenant.project, environment="production", ttl=timedelta(minutes=30)
    )
    with django_assert_max_num_queries(2):
        response = post_json(
            client, f"/v1/connect/token/{UID}", APP, HTTP_AUTHORIZATION=f"Bearer {other}"
        )
    assert response.status_code == 200
