"""Shared fixtures: service gates and small factories for the data model.

Service-backed tests skip when their service is missing, unless ``CONNECT_REQUIRE_SERVICES=1``
(set by ``.ci/run``), in which case they fail: CI never silently skips them.
"""

import os
import secrets as random_secrets
import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from connect.models import (
    AuthorizationRequest,
    Connector,
    ConnectorType,
    DeploymentCredential,
    Environment,
    Grant,
    Installation,
    Membership,
    Project,
    ProjectLink,
    Role,
    Team,
    TriggerDestination,
)
from connect.models.authorizations import verifier_digest
from connect.services import activity
from connect.services.connectors import connector_save
from connect.services.credentials import deployment_credential_create
from connect.services.destinations import destination_save
from tests.clock import CLOCKS, ManualClock
from tests.fakes.oauth import OAuthFake
from tests.fakes.workload_issuer import WorkloadIssuerFake

REQUIRE_SERVICES = os.environ.get("CONNECT_REQUIRE_SERVICES") == "1"
CHROMIUM = os.environ.get("CONNECT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def missing_service(reason: str) -> None:
    """Skip on a laptop without the service; fail in CI, where it must be there."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (CONNECT_REQUIRE_SERVICES=1, so this is a failure)")
    pytest.skip(reason)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("redis") and not os.environ.get("REDIS_URL"):
        missing_service("needs Redis: set REDIS_URL")
    if item.get_closest_marker("browser") and not os.path.exists(CHROMIUM):
        missing_service(f"needs headless Chromium at {CHROMIUM}")


@pytest.fixture
def require_postgres(db: None) -> None:
    if connection.vendor != "postgresql":
        missing_service("needs PostgreSQL: set DATABASE_URL=postgres://…")


@pytest.fixture(autouse=True)
def _isolated_cache_prefix(settings: Any) -> None:
    """Tests share a Redis with each other and with benchmarks: never the same keys. CACHES is
    assigned, not edited in place, so Django really rebuilds its cache handlers; flow polls and
    minted tokens are cached under row ids, which a rolled-back database hands out again."""
    settings.CACHES = {
        name: {**conf, "KEY_PREFIX": f"test-{uuid.uuid4().hex[:8]}"}
        for name, conf in settings.CACHES.items()
    }
    settings.CONNECT_RATE_LIMIT_PREFIX = f"test-rl-{uuid.uuid4().hex[:8]}"


@pytest.fixture(autouse=True)
def _token_path_uncached(settings: Any) -> None:
    """In this process, tests change rows inside transactions that never commit: no generation
    change is ever published, so the token path's local caches are off and issue records are
    written on the request. Tests of the caches and the writer turn them on (tests/perf)."""
    settings.CONNECT_LOCAL_CACHES = False
    settings.CONNECT_ISSUE_WRITER = "sync"
    settings.CONNECT_DOORBELL = "sync"


@pytest.fixture
def cache_clock(settings: Any) -> Iterator[ManualClock]:
    """The default cache counts its timeouts on this clock, not the wall clock: a test moves
    it on instead of sleeping until a cached entry lapses."""
    name = f"clocked-{uuid.uuid4().hex[:8]}"
    clock = CLOCKS[name] = ManualClock()
    settings.CACHES = {
        **settings.CACHES,
        "default": {"BACKEND": "tests.clock.ClockedLocMemCache", "LOCATION": name},
    }
    yield clock
    del CLOCKS[name]


@pytest.fixture(autouse=True)
def _activity_by_hand(settings: Any) -> Iterator[None]:
    """Activity counters are written when a test flushes them (``activity.activity_flush``),
    never by a background thread writing beside the test's transaction."""
    settings.CONNECT_ACTIVITY_FLUSH_SECONDS = 0
    activity.activity_discard()
    yield
    activity.activity_discard()


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings: Any) -> None:
    # The production hasher is slow on purpose; tests make many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    def make(
        username: str | None = None, password: str = "correct horse battery", **kw: Any
    ) -> User:
        username = username or f"user-{uuid.uuid4().hex[:8]}"
        kw.setdefault("email", f"{username}@example.com")
        return User.objects.create_user(username=username, password=password, **kw)

    return make


@pytest.fixture
def make_team(db: None) -> Callable[..., Team]:
    def make(slug: str | None = None, **kw: Any) -> Team:
        slug = slug or f"team-{uuid.uuid4().hex[:8]}"
        return Team.objects.create(slug=slug, name=kw.pop("name", slug.title()), **kw)

    return make


@pytest.fixture
def make_member(make_user: Callable[..., User]) -> Callable[..., User]:
    def make(team: Team, role: Role = Role.MEMBER, **kw: Any) -> User:
        user = make_user(**kw)
        Membership.objects.create(team=team, user=user, role=role)
        return user

    return make


CLOSED_BASE_URL = "http://127.0.0.1:9"


@pytest.fixture
def make_project(db: None) -> Callable[..., Project]:
    def make(
        team: Team, slug: str = "app", environments: tuple[str, ...] = ("production",)
    ) -> Project:
        project = Project.objects.create(team=team, slug=slug, name=slug.title())
        for env in environments:
            # A closed loopback port: deliveries fail fast (tests that send point it at a fake);
            # a destination needs a base URL (an environment without one is refused).
            Environment.objects.create(project=project, slug=env, base_url=CLOSED_BASE_URL)
        return project

    return make


@pytest.fixture
def make_connector(db: None) -> Callable[..., Connector]:
    def make(
        team: Team,
        uid: str = "api-key/test",
        type: str = ConnectorType.API_KEY,
        secrets: dict[str, str] | None = None,
        **kw: Any,
    ) -> Connector:
        connector = Connector(
            team=team,
            uid=uid,
            type=type,
            service=kw.pop("service", uid.split("/")[0]),
            name=kw.pop("name", uid),
            **kw,
        )
        for name, value in (secrets or {}).items():
            connector.seal(name, value)
        return connector_save(connector=connector, actor="test")

    return make


@pytest.fixture
def make_link(db: None) -> Callable[..., ProjectLink]:
    def make(connector: Connector, project: Project, environments: list[str]) -> ProjectLink:
        return ProjectLink.objects.create(
            connector=connector, project=project, environments=environments
        )

    return make


@pytest.fixture
def make_installation(db: None) -> Callable[..., Installation]:
    def make(connector: Connector, tenant_id: str | None = None, **kw: Any) -> Installation:
        return Installation.objects.create(
            connector=connector, tenant_id=tenant_id or f"T{uuid.uuid4().hex[:8]}", **kw
        )

    return make


@pytest.fixture
def make_credential(db: None) -> Callable[..., str]:
    """A deployment credential for one environment of a project; returns its bearer token."""

    def make(project: Project, environment: str = "production") -> str:
        credential = DeploymentCredential(
            project=project, environment=project.environments.get(slug=environment)
        )
        return deployment_credential_create(credential=credential, actor="test")

    return make


@pytest.fixture
def make_grant(db: None) -> Callable[..., Grant]:
    def make(
        installation: Installation,
        subject_type: str = Grant.SubjectType.APP,
        subject_id: str = "",
        secrets: dict[str, str] | None = None,
        **kw: Any,
    ) -> Grant:
        grant = Grant(
            installation=installation, subject_type=subject_type, subject_id=subject_id, **kw
        )
        for name, value in (secrets or {}).items():
            grant.seal(name, value)
        grant.save()
        return grant

    return make


@pytest.fixture
def make_destination(db: None) -> Callable[..., TriggerDestination]:
    """A destination through the service, so it gets its own sealed ``whsec_`` secret."""

    def make(
        connector: Connector, project: Project, environment: str = "production", path: str = "/"
    ) -> TriggerDestination:
        destination = TriggerDestination(
            connector=connector,
            project=project,
            environment=project.environments.get(slug=environment),
            path=path,
        )
        return destination_save(destination=destination, actor="test")

    return make


@pytest.fixture
def make_authorization_request(db: None) -> Callable[..., AuthorizationRequest]:
    def make(connector: Connector, pkce_verifier: str = "", **kw: Any) -> AuthorizationRequest:
        request = AuthorizationRequest(
            connector=connector,
            kind=kw.pop("kind", AuthorizationRequest.Kind.INSTALL),
            verifier_sha256=verifier_digest(random_secrets.token_urlsafe(32)),
            state=random_secrets.token_urlsafe(32),
            expires_at=kw.pop("expires_at", timezone.now() + timedelta(minutes=10)),
            **kw,
        )
        if pkce_verifier:
            request.seal("pkce_verifier", pkce_verifier)
        request.save()
        return request

    return make


@pytest.fixture
def oauth_server() -> Iterator[OAuthFake]:
    """A strict OAuth 2.0 authorization server on loopback; see ``tests/fakes/oauth.py``."""
    with OAuthFake() as server:
        yield server


@pytest.fixture
def jwks_server() -> Iterator[WorkloadIssuerFake]:
    """A CI system's OIDC issuer: its signing keys, and its JWKS on loopback."""
    with WorkloadIssuerFake() as server:
        yield server
