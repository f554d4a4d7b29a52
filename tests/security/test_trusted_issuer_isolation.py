"""Teams cannot touch each other through trusted issuers (issue 8, point 6).

Two teams trust the same external issuer (think GitHub Actions: one issuer signs for everyone).
Each team is told its own audience, ``{PUBLIC_URL}/teams/{team id}``, and an (issuer, audience)
pair belongs to one team, so a token's own ``iss`` and ``aud`` pick the one team whose JWKS is
fetched and whose rules are read. Another team's rules, or its slow or broken JWKS URL, never
change the outcome or the latency of your callers' requests.
"""

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.test import Client

from connect import oidc
from connect.models import (
    Connector,
    Project,
    Role,
    Team,
    TokenIssue,
    TrustedIssuer,
    TrustedIssuerRule,
)
from tests.admin.pages import form_data, help_text
from tests.api.test_oidc import ISSUER, rs256
from tests.api.wire import assert_error
from tests.fakes.workload_issuer import WorkloadIssuerFake

pytestmark = pytest.mark.django_db

REPOSITORY = "acme/app"


def faulty(mode: str) -> WorkloadIssuerFake:
    """A JWKS URL that answers 500 (``broken``), or holds each request until its gate opens
    (``slow``)."""
    fake = WorkloadIssuerFake()
    fake.fail_status = 500
    if mode == "slow":
        fake.gate = threading.Event()
    return fake


@pytest.fixture(params=["slow", "broken"])
def faulty_jwks(request: pytest.FixtureRequest) -> Iterator[WorkloadIssuerFake]:
    with faulty(request.param) as fake:
        yield fake


@pytest.fixture(autouse=True)
def _short_provider_timeout(settings: Any) -> None:
    # A slow JWKS would hold a request this long (were it ever fetched on it).
    settings.CONNECT_PROVIDER_TIMEOUT_SECONDS = 3.0


@dataclass
class Tenant:
    team: Team
    project: Project
    connector: Connector

    def token_request(self, bearer: str) -> Any:
        return Client().post(
            f"/v1/connect/token/{self.connector.uid}",
            data={"subject": {"type": "app"}},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {bearer}",
        )

    def trust(
        self,
        jwks_url: str,
        *,
        claims: dict[str, str] | None = None,
        project: Project | None = None,
        audience: str | None = None,
    ) -> TrustedIssuer:
        issuer, _ = TrustedIssuer.objects.get_or_create(
            team=self.team,
            issuer=ISSUER,
            audience=audience or self.team.workload_audience,
            defaults={"jwks_url": jwks_url},
        )
        issuer.full_clean()
        project = project or self.project
        rule = TrustedIssuerRule(
            trusted_issuer=issuer,
            required_claims=claims or {"repository": REPOSITORY},
            project=project,
            environment=project.environments.get(),
        )
        rule.full_clean()
        rule.save()
        return issuer


@pytest.fixture
def make_tenant(
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
) -> Callable[[str], Tenant]:
    def make(name: str) -> Tenant:
        team = make_team(slug=f"team-{name}")
        project = make_project(team, slug=f"{name}-app")
        connector = make_connector(
            team, uid="api-key/key", secrets={"api_key": f"key-of-{name}"}, default_scopes={}
        )
        make_link(connector, project, ["production"])
        return Tenant(team=team, project=project, connector=connector)

    return make


def ci_token(server: WorkloadIssuerFake, audience: str | list[str], **claims: Any) -> str:
    now = int(time.time())
    return rs256(
        server,
        {
            "iss": ISSUER,
            "aud": audience,
            "sub": f"repo:{REPOSITORY}:ref:refs/heads/main",
            "repository": REPOSITORY,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            **claims,
        },
    )


def assert_issued_to(response: Any, tenant: Tenant) -> None:
    assert response.status_code == 200, response.content
    assert response.json()["token"] == f"key-of-{tenant.team.slug.removeprefix('team-')}"
    issue = TokenIssue.objects.get(public_id=response.json()["tokenId"])
    assert issue.project_id == tenant.project.pk


def test_another_teams_slow_or_broken_jwks_never_touches_your_callers(
    make_tenant: Callable[[str], Tenant],
    jwks_server: WorkloadIssuerFake,
    faulty_jwks: WorkloadIssuerFake,
) -> None:
    a, b = make_tenant("a"), make_tenant("b")
    a.trust(jwks_server.jwks_url)
    # Team B trusts the same issuer, for the same repository claim, with a JWKS URL that fails.
    b.trust(faulty_jwks.jwks_url)

    for _ in range(3):
        started = time.monotonic()
        response = a.token_request(ci_token(jwks_server, a.team.workload_audience))
        elapsed = time.monotonic() - started
        assert_issued_to(response, a)
        assert elapsed < 1.5, f"A's request took {elapsed:.2f}s"
    assert faulty_jwks.hits == 0, "team B's JWKS was fetched on team A's request"
    assert jwks_server.hits == 1

    # B's own callers do meet B's JWKS, once: the failure is remembered for a while.
    if faulty_jwks.gate is not None:
        faulty_jwks.gate.set()
    for _ in range(3):
        assert_error(
            b.token_request(ci_token(jwks_server, b.team.workload_audience)), 401, "unauthorized"
        )
    assert faulty_jwks.hits == 1
    # And A is still served, still without B's JWKS.
    assert_issued_to(a.token_request(ci_token(jwks_server, a.team.workload_audience)), a)
    assert faulty_jwks.hits == 1


def test_two_teams_trusting_the_same_workload_each_get_their_own_callers(
    make_tenant: Callable[[str], Tenant], jwks_server: WorkloadIssuerFake
) -> None:
    """The same repository claim in both teams' rules: the audience decides, not a collision."""
    a, b = make_tenant("a"), make_tenant("b")
    a.trust(jwks_server.jwks_url)
    b.trust(jwks_server.jwks_url)

    assert_issued_to(a.token_request(ci_token(jwks_server, a.team.workload_audience)), a)
    assert_issued_to(b.token_request(ci_token(jwks_server, b.team.workload_audience)), b)
    # A token addressed to both teams is for neither.
    both = ci_token(jwks_server, [a.team.workload_audience, b.team.workload_audience])
    assert_error(a.token_request(both), 401, "unauthorized")
    assert_error(b.token_request(both), 401, "unauthorized")
    # A few audiences besides one's own are fine; a flood of them is refused unread.
    assert_issued_to(
        a.token_request(ci_token(jwks_server, [a.team.workload_audience, "https://x.test"])), a
    )
    flood = [a.team.workload_audience, *(f"https://x.test/{n}" for n in range(50))]
    assert_error(a.token_request(ci_token(jwks_server, flood)), 401, "unauthorized")


def test_an_issuer_and_audience_belong_to_one_team(
    make_tenant: Callable[[str], Tenant], jwks_server: WorkloadIssuerFake
) -> None:
    a, b = make_tenant("a"), make_tenant("b")
    a.trust(jwks_server.jwks_url, audience="https://github.com/acme")
    token = ci_token(jwks_server, "https://github.com/acme")
    assert_issued_to(a.token_request(token), a)

    with pytest.raises(ValidationError) as refused:
        TrustedIssuer(
            team=b.team,
            issuer=ISSUER,
            jwks_url=jwks_server.jwks_url,
            audience="https://github.com/acme",
        ).full_clean()
    assert "audience" in str(refused.value)
    with pytest.raises(IntegrityError), transaction.atomic():
        TrustedIssuer.objects.create(
            team=b.team,
            issuer=ISSUER,
            jwks_url="http://10.0.0.1/",
            audience="https://github.com/acme",
        )
    assert_issued_to(a.token_request(token), a)


def test_a_team_cannot_take_another_teams_own_audience_first(
    make_tenant: Callable[[str], Tenant], jwks_server: WorkloadIssuerFake
) -> None:
    """Team A has trusted nothing yet; its audience is still not B's to claim."""
    a, b = make_tenant("a"), make_tenant("b")

    with pytest.raises(ValidationError) as refused:
        TrustedIssuer(
            team=b.team,
            issuer=ISSUER,
            jwks_url=jwks_server.jwks_url,
            audience=a.team.workload_audience,
        ).full_clean()

    assert b.team.workload_audience in refused.value.message_dict["audience"][0]
    assert a.team.workload_audience == f"{django_settings.PUBLIC_URL}/teams/{a.team.public_id}"


def test_rules_naming_two_projects_of_the_team_are_refused(
    make_tenant: Callable[[str], Tenant],
    make_project: Callable[..., Project],
    jwks_server: WorkloadIssuerFake,
) -> None:
    a = make_tenant("a")
    a.trust(jwks_server.jwks_url)
    token = ci_token(jwks_server, a.team.workload_audience)
    assert_issued_to(a.token_request(token), a)

    a.trust(jwks_server.jwks_url, project=make_project(a.team, slug="a-other"))

    assert_error(a.token_request(token), 401, "unauthorized")


def test_the_jwks_is_fetched_once_per_request_and_failures_are_cached_briefly(
    make_tenant: Callable[[str], Tenant],
    make_project: Callable[..., Project],
    jwks_server: WorkloadIssuerFake,
) -> None:
    broken = faulty("broken").start()
    try:
        a = make_tenant("a")
        for n in range(3):
            a.trust(broken.jwks_url, claims={"repository": f"acme/app-{n}"})
        token = ci_token(jwks_server, a.team.workload_audience, repository="acme/app-2")

        assert_error(a.token_request(token), 401, "unauthorized")
        assert broken.hits == 1, "one fetch per request, however many rules"
        for _ in range(3):
            assert_error(a.token_request(token), 401, "unauthorized")
        assert broken.hits == 1, "a failed fetch is not retried at once"

        # Once the failure has lapsed (15 s; the test drops it), the JWKS is fetched again.
        cache.delete(f"jwks:{hashlib.sha256(broken.jwks_url.encode()).hexdigest()}:failed")
        assert_error(a.token_request(token), 401, "unauthorized")
        assert broken.hits == 2
    finally:
        broken.stop()
    assert oidc.JWKS_FAILURE_SECONDS <= 60


def test_the_admin_fills_in_the_teams_own_audience(
    make_tenant: Callable[[str], Tenant], make_member: Callable[..., User]
) -> None:
    a = make_tenant("a")
    client = Client()
    client.force_login(make_member(a.team, Role.MEMBER))
    page = client.get("/admin/connect/trustedissuer/add/")
    assert a.team.workload_audience in help_text(page, "audience")
    data = form_data(page, "trustedissuer_form")
    data.update(
        team=[str(a.team.pk)],
        issuer=[ISSUER],
        jwks_url=["https://token.ci.example.test/jwks"],
        audience=[""],
    )
    data["rules-0-required_claims"] = ['{"repository": "acme/app"}']
    data["rules-0-project"] = [str(a.project.pk)]
    data["rules-0-environment"] = [str(a.project.environments.get().pk)]

    response = client.post("/admin/connect/trustedissuer/add/", data)

    assert response.status_code == 302, response.context and response.context["errors"]
    issuer = TrustedIssuer.objects.get(team=a.team)
    assert issuer.audience == a.team.workload_audience
    assert issuer.rules.get().project == a.project
    change = client.get(f"/admin/connect/trustedissuer/{issuer.pk}/change/")
    assert a.team.workload_audience in change.content.decode()
