"""GitHub installation tokens down-scoped by ``authorizationDetails``: exactly the repositories
and permissions asked for reach GitHub, and each distinct request is cached until near expiry."""

from typing import Any

import pytest
from django.test import Client

from connect.models import Connector, Installation, TokenIssue
from tests.fakes.github import GitHubFake
from tests.providers.conftest import GITHUB_UID as UID
from tests.providers.conftest import Tenant
from tests.providers.flow import error_code, walk

APP = {"type": "app"}
DETAILS = [
    {
        "type": "github_app_installation",
        "repositories": ["acme/api", "web"],
        "permissions": ["contents:read", "issues:write"],
    }
]


@pytest.fixture
def installed(tenant: Tenant, github_connector: Connector, github: GitHubFake) -> Installation:
    response = walk(Client(), tenant.api.install(UID))
    assert response.status_code == 200, response.content
    return Installation.objects.get(connector=github_connector, tenant_id="42")


def ask(tenant: Tenant, details: list[dict[str, Any]]) -> Any:
    return tenant.api.token(UID, APP, authorizationDetails=details)


def test_the_token_request_carries_exactly_the_asked_repositories_and_permissions(
    tenant: Tenant, installed: Installation, github: GitHubFake
) -> None:
    response = ask(tenant, DETAILS)

    assert response.status_code == 200, response.content
    assert github.token_requests == [
        {"repositories": ["api", "web"], "permissions": {"contents": "read", "issues": "write"}}
    ]
    [call] = github.calls_to("POST", "/api/v3/app/installations/42/access_tokens")
    assert call.headers["Content-Type"] == "application/json"
    [_installer_token, minted] = github.issued
    assert response.json()["token"] == minted["token"]
    assert [r["full_name"] for r in minted["repositories"]] == ["acme/api", "acme/web"]
    issue = TokenIssue.objects.get(public_id=response.json()["tokenId"])
    assert issue.authorization_details == DETAILS


def test_the_same_request_within_the_cache_window_mints_nothing(
    tenant: Tenant, installed: Installation, github: GitHubFake
) -> None:
    first = ask(tenant, DETAILS)
    second = ask(tenant, DETAILS)

    assert second.status_code == 200, second.content
    assert second.json()["token"] == first.json()["token"]
    assert len(github.token_requests) == 1
    # Each hand-out is still recorded.
    assert first.json()["tokenId"] != second.json()["tokenId"]


def test_a_different_request_mints_again(
    tenant: Tenant, installed: Installation, github: GitHubFake
) -> None:
    first = ask(tenant, DETAILS)
    narrower = [{**DETAILS[0], "repositories": ["api"], "permissions": ["contents:read"]}]
    second = ask(tenant, narrower)
    whole = tenant.api.token(UID, APP)

    assert second.status_code == 200, second.content
    assert second.json()["token"] != first.json()["token"]
    assert whole.json()["token"] not in (first.json()["token"], second.json()["token"])
    assert github.token_requests == [
        {"repositories": ["api", "web"], "permissions": {"contents": "read", "issues": "write"}},
        {"repositories": ["api"], "permissions": {"contents": "read"}},
        {},
    ]


def test_a_repository_outside_the_installation_is_github_s_refusal(
    tenant: Tenant, installed: Installation, github: GitHubFake
) -> None:
    response = ask(tenant, [{**DETAILS[0], "repositories": ["acme/secret"]}])

    # A narrower token GitHub refuses is the caller's scope error, not a missing token.
    assert response.status_code == 400, response.content
    assert error_code(response) == "invalid_scope"
    assert github.token_requests == [
        {"repositories": ["secret"], "permissions": {"contents": "read", "issues": "write"}}
    ]
    [_installer_token] = github.issued  # the install's own user token; no installation token


def test_revoking_the_app_subject_revokes_and_forgets_its_down_scoped_tokens(
    tenant: Tenant, installed: Installation, github: GitHubFake
) -> None:
    # A kept down-scoped token outliving a revocation would still be handed out afterwards.
    minted = ask(tenant, DETAILS).json()["token"]
    assert github.access_family(minted) is not None

    revoked = tenant.api.revoke(UID, APP)

    assert revoked.status_code == 200, revoked.content
    assert revoked.json()["providerRevoked"] >= 1
    assert github.access_family(minted) is None  # GitHub no longer honours it
    again = ask(tenant, DETAILS)
    assert again.status_code == 200, again.content
    assert again.json()["token"] != minted
    assert len(github.token_requests) == 2
