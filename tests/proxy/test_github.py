"""The proxy on a GitHub App connector, against the strict GitHub fake: the app subject's call
carries the installation token, minted on demand, and GitHub's paging and rate-limit headers
come back."""

import json

from django.test import Client

from connect.models import Connector, Installation
from tests.fakes.github import GitHubFake
from tests.providers.conftest import GITHUB_UID, Tenant
from tests.providers.flow import walk


def test_an_app_call_carries_the_installation_token(
    tenant: Tenant, github_connector: Connector, github: GitHubFake
) -> None:
    response = walk(Client(), tenant.api.install(GITHUB_UID))
    assert response.status_code == 200, response.content
    installation = Installation.objects.get(tenant_id="42")

    answer = Client().get(
        "/v1/connect/proxy/github%2Facme/installation/repositories?per_page=2",
        HTTP_AUTHORIZATION=f"Bearer {tenant.api.bearer}",
        HTTP_CONNECT_SUBJECT="app",
        HTTP_CONNECT_INSTALLATION=installation.public_id,
        RAW_URI="/v1/connect/proxy/github%2Facme/installation/repositories?per_page=2",
    )

    assert answer.status_code == 200
    body = json.loads(b"".join(answer.streaming_content))
    assert [r["full_name"] for r in body["repositories"]] == ["acme/api", "acme/web"]
    minted = github.issued[-1]["token"]
    assert minted.startswith("ghs_")
    (call,) = github.calls_to("GET", "/api/v3/installation/repositories")
    assert call.headers["Authorization"] == f"Bearer {minted}"
    assert answer["X-RateLimit-Remaining"] == "4987"
    assert answer["X-GitHub-Request-Id"] == "F00D:1234:5678"
    assert 'rel="next"' in answer["Link"]
