"""Issue 8, point 13: one refresh per expiry, whatever the token's lifetime.

With a fixed 300-second margin, a token that lives 60 seconds is due the moment it is issued:
every request refreshed it (fifty concurrent requests made fifty refreshes and got fifty
tokens), and beat refreshed it every minute. The margin is now min(``CONNECT_REFRESH_MARGIN``,
a quarter of the lifetime the provider granted), the lifetime is stored with each token, the
re-check after the row lock uses the same rule (so a token someone just refreshed is taken as
it is), and beat refreshes ahead only tokens that outlive two of its periods.

Expiries are written into the database; nothing waits for a token to age.
"""

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from django.test import Client
from django.utils import timezone

from connect import tasks
from connect.models import Connector, Grant, Project, Team
from connect.services import grants
from tests.app_server import Gunicorn, row_lock_waiters, serving
from tests.fakes.oauth import OAuthFake
from tests.providers.flow import Api, callback_url, walk

LIFETIMES = [30, 60, 300, 3600]
REQUESTS = 50
WORKERS = 2
THREADS = 8
USER = {"type": "user", "id": "user-13"}


def margin_of(lifetime: int) -> float:
    return min(300.0, lifetime / 4)


@pytest.fixture
def gunicorn(require_postgres: None, tmp_path: Path) -> Iterator[Gunicorn]:
    """Two worker processes, so that refreshes also meet on the grant's row lock; the API may
    wait long for the provider here, the test holds it back on purpose."""
    env = {"CONNECT_PROVIDER_WAIT": "30"}
    with serving(tmp_path, workers=WORKERS, threads=THREADS, env=env) as server:
        yield server


def burst(gunicorn: Gunicorn, bearer: str) -> list[tuple[requests.Response, float]]:
    """Fifty token requests at once; each response with the time it came back."""
    start = threading.Barrier(REQUESTS)

    def ask(_: int) -> tuple[requests.Response, float]:
        start.wait(timeout=30)
        response = requests.post(
            f"{gunicorn.url}/v1/connect/token/oauth%2Fshort",
            json={"subject": USER},
            headers={"Authorization": f"Bearer {bearer}"},
            timeout=60,
        )
        return response, time.time()

    with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
        return list(pool.map(ask, range(REQUESTS)))


def handed_out(answers: list[tuple[requests.Response, float]], lifetime: int) -> str:
    """The one token everybody got; none of them within its margin when it was handed out."""
    statuses = Counter(response.status_code for response, _ in answers)
    assert statuses == {200: REQUESTS}, [r.text for r, _ in answers if r.status_code != 200][:3]
    for response, received in answers:
        left = response.json()["expiresAt"] / 1000 - received
        assert left > margin_of(lifetime), f"handed out {left:.1f}s before expiry"
    tokens_ = {response.json()["token"] for response, _ in answers}
    assert len(tokens_) == 1, f"{len(tokens_)} different tokens"
    return tokens_.pop()


def wait_for_a_row_lock_waiter(server: OAuthFake, timeout: float = 20) -> None:
    """Until one refresh is at the provider and another process waits for the grant's row."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.calls.get("refresh_token", 0) <= 1, "a second refresh reached the provider"
        if server.calls.get("refresh_token") and row_lock_waiters():
            return
        time.sleep(0.05)
    pytest.fail(f"nobody waited on the row lock within {timeout}s: calls {server.calls}")


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("lifetime", LIFETIMES)
def test_fifty_concurrent_requests_make_one_refresh_per_expiry(
    lifetime: int,
    gunicorn: Gunicorn,
    oauth_server: OAuthFake,
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
    make_credential: Callable[..., str],
) -> None:
    team = make_team()
    project = make_project(team)
    client_id = f"short-{uuid.uuid4().hex[:8]}"
    connector = make_connector(
        team,
        uid="oauth/short",
        type="oauth",
        client_id=client_id,
        secrets={"client_secret": "s3cr3t"},
        config={
            "tokenEndpoint": oauth_server.token_endpoint,
            "tokenEndpointAuthMethod": "client_secret_basic",
        },
        default_scopes={"user": ["api"]},
    )
    make_link(connector, project, ["production"])
    bearer = make_credential(project)
    oauth_server.add_client(client_id, method="client_secret_basic", secret="s3cr3t")
    oauth_server.expires_in = lifetime
    issued = oauth_server.grant_create(client_id, scope="api")
    margin = timedelta(seconds=margin_of(lifetime))
    grant = Grant(
        installation=connector.installations.get(),
        subject_type="user",
        subject_id=USER["id"],
        issuer=project.public_id,
        access_expires_at=timezone.now() + margin / 2,  # due
        access_lifetime_seconds=lifetime,  # as the refresh or consent that stored it left it
        scopes=["api"],
    )
    grant.seal("access_token", issued.access_token)
    grant.seal("refresh_token", issued.refresh_token)
    grant.save()
    rows = Grant.objects.filter(pk=grant.pk)

    # Due: one refresh. The provider holds it until the other process waits for the row, so
    # the re-check after the lock must take the token just refreshed as fresh.
    oauth_server.gate = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as background:
        pending = background.submit(burst, gunicorn, bearer)
        try:
            wait_for_a_row_lock_waiter(oauth_server)
        finally:
            oauth_server.gate.set()
        first = handed_out(pending.result(), lifetime)
    oauth_server.gate = None
    assert oauth_server.calls == {"refresh_token": 1}
    assert first != issued.access_token
    refreshed = rows.get()
    assert refreshed.access_lifetime_seconds == lifetime
    assert refreshed.reveal("access_token") == first
    served = gunicorn.pids_that_answered(200)
    assert len(served) == WORKERS, f"one process answered everything: {served}"

    # Just refreshed (written so, however long the burst took): everybody gets it as it is.
    rows.update(access_expires_at=timezone.now() + timedelta(seconds=lifetime))
    assert handed_out(burst(gunicorn, bearer), lifetime) == first
    assert oauth_server.calls == {"refresh_token": 1}

    # The next expiry: due again, one more refresh, presenting the rotated refresh token.
    rows.update(access_expires_at=timezone.now() + margin / 2)
    second = handed_out(burst(gunicorn, bearer), lifetime)
    assert second not in (first, issued.access_token)
    assert oauth_server.calls == {"refresh_token": 2}
    family = oauth_server.family(issued.family_id)
    assert [form["refresh_token"] for form in oauth_server.forms] == [
        issued.refresh_token,
        refreshed.reveal("refresh_token"),
    ]
    assert oauth_server.replays == 0
    assert oauth_server.rejections == []
    assert family.active
    assert rows.get().reveal("refresh_token") == family.refresh_token
    assert rows.get().status == "active"


@pytest.mark.django_db
def test_beat_refreshes_ahead_only_tokens_that_outlive_two_sweeps(
    make_team: Callable[..., Team],
    make_connector: Callable[..., Connector],
    make_grant: Callable[..., Grant],
) -> None:
    installation = make_connector(make_team(), uid="oauth/beat", type="oauth").installations.get()
    now = timezone.now()
    made: dict[str, Grant] = {}

    def grant(name: str, lifetime: int | None, left: float, refresh_token: str = "rt") -> None:
        made[name] = make_grant(
            installation,
            subject_type=Grant.SubjectType.USER,
            subject_id=name,
            secrets={"access_token": "at", "refresh_token": refresh_token},
            access_lifetime_seconds=lifetime,
            access_expires_at=now + timedelta(seconds=left),
        )

    # Two sweeps are 120 s: shorter lifetimes are left to the requests that need them, even
    # within their margin or expired.
    grant("30s, within its margin", 30, 1)
    grant("30s, expired", 30, -5)
    grant("60s, within its margin", 60, 10)
    grant("120s, within its margin", 120, 10)
    # A quarter of 300 s is 75 s.
    grant("300s, within its margin", 300, 74)
    grant("300s, outside its margin", 300, 76)
    # 3,600 s: the configured 300 s.
    grant("3600s, within its margin", 3600, 299)
    grant("3600s, outside its margin", 3600, 301)
    # Not recorded yet (stored before lifetimes were, or imported): the configured margin.
    grant("unknown, within the margin", None, 299)
    grant("unknown, outside the margin", None, 301)
    grant("3600s, no refresh token", 3600, 10, refresh_token="")

    due = set(grants.grants_due_for_refresh(now=now))

    assert {name for name, g in made.items() if g.pk in due} == {
        "300s, within its margin",
        "3600s, within its margin",
        "unknown, within the margin",
    }
    assert settings.CELERY_BEAT_SCHEDULE["grants-refresh-due"]["schedule"] == (
        settings.CONNECT_REFRESH_SWEEP_SECONDS
    ), "the sweep runs at the period its rule assumes"


@pytest.mark.django_db
def test_a_slower_sweep_stops_refreshing_ahead_what_it_would_refresh_every_time(
    make_team: Callable[..., Team],
    make_connector: Callable[..., Connector],
    make_grant: Callable[..., Grant],
    settings: Any,
) -> None:
    installation = make_connector(make_team(), uid="oauth/beat", type="oauth").installations.get()
    grant = make_grant(
        installation,
        subject_type=Grant.SubjectType.USER,
        subject_id="u",
        secrets={"access_token": "at", "refresh_token": "rt"},
        access_lifetime_seconds=300,
        access_expires_at=timezone.now() + timedelta(seconds=10),
    )
    assert grants.grants_due_for_refresh() == [grant.pk]

    settings.CONNECT_REFRESH_SWEEP_SECONDS = 150

    assert grants.grants_due_for_refresh() == []


@pytest.mark.django_db
def test_beat_leaves_a_sixty_second_token_to_its_requests(
    make_team: Callable[..., Team],
    make_connector: Callable[..., Connector],
    make_grant: Callable[..., Grant],
    oauth_server: OAuthFake,
    settings: Any,
) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = True
    oauth_server.add_client("beat-client", method="client_secret_post", secret="pw")
    connector = make_connector(
        make_team(),
        uid="oauth/beat",
        type="oauth",
        client_id="beat-client",
        secrets={"client_secret": "pw"},
        config={
            "tokenEndpoint": oauth_server.token_endpoint,
            "tokenEndpointAuthMethod": "client_secret_post",
        },
    )
    issued = oauth_server.grant_create("beat-client", scope="read")
    make_grant(
        connector.installations.get(),
        subject_type=Grant.SubjectType.USER,
        subject_id="u",
        secrets={"access_token": issued.access_token, "refresh_token": issued.refresh_token},
        access_lifetime_seconds=60,
        access_expires_at=timezone.now() + timedelta(seconds=10),
    )

    assert tasks.grants_refresh_due.apply().get() == 0

    assert oauth_server.calls == {}


@pytest.mark.django_db
def test_a_sixty_second_app_token_is_minted_once_not_on_every_request(
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
    make_credential: Callable[..., str],
    oauth_server: OAuthFake,
) -> None:
    team = make_team()
    project = make_project(team)
    oauth_server.add_client("app-client", method="client_secret_post", secret="pw")
    oauth_server.expires_in = 60
    connector = make_connector(
        team,
        uid="oauth/app",
        type="oauth",
        client_id="app-client",
        secrets={"client_secret": "pw"},
        config={
            "tokenEndpoint": oauth_server.token_endpoint,
            "tokenEndpointAuthMethod": "client_secret_post",
        },
        default_scopes={"app": ["api"]},
    )
    make_link(connector, project, ["production"])
    api = Api(Client(), make_credential(project))

    answers = [api.token("oauth/app") for _ in range(5)]

    assert [a.status_code for a in answers] == [200] * 5, answers[0].content
    assert len({a.json()["token"] for a in answers}) == 1
    assert oauth_server.calls == {"client_credentials": 1}
    grant = Grant.objects.get(installation__connector=connector, subject_type="app")
    assert grant.access_lifetime_seconds == 60


@pytest.mark.django_db
def test_a_consented_sixty_second_token_is_handed_out_not_refreshed_at_once(
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
    make_credential: Callable[..., str],
) -> None:
    team = make_team()
    project = make_project(team)
    with OAuthFake() as server:
        server.expires_in = 60
        server.add_client("consent-client", method="client_secret_post", secret="pw")
        server.register_redirect("consent-client", callback_url())
        connector = make_connector(
            team,
            uid="oauth/consent",
            type="oauth",
            client_id="consent-client",
            secrets={"client_secret": "pw"},
            config={
                "authorizationEndpoint": server.authorization_endpoint,
                "tokenEndpoint": server.token_endpoint,
                "tokenEndpointAuthMethod": "client_secret_post",
            },
            default_scopes={"user": ["read"]},
        )
        make_link(connector, project, ["production"])
        api = Api(Client(), make_credential(project))
        done = walk(Client(), api.consent("oauth/consent", "u-13"))
        assert done.status_code == 200, done.content

        answers = [api.token("oauth/consent", {"type": "user", "id": "u-13"}) for _ in range(3)]

        assert [a.status_code for a in answers] == [200] * 3, answers[0].content
        [consented] = server.issued
        assert {a.json()["token"] for a in answers} == {consented["access_token"]}
        assert server.calls == {"authorization_code": 1}
        assert server.bugs == []
    grant = Grant.objects.get(subject_type="user", subject_id="u-13")
    assert grant.access_lifetime_seconds == 60
