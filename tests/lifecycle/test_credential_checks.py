"""Credential checks by beat: a dead refresh token or secret is found before a user meets it,
told once, and its recovery once; a provider in trouble is only asked again later."""

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connections
from django.test import Client
from django.test.utils import override_settings
from django.utils import timezone

from connect.models import Connector, Grant, LifecycleEvent
from connect.services import credential_checks
from connect.services.credential_checks import credentials_check, grant_check
from tests.fakes.oauth import OAuthFake
from tests.lifecycle.conftest import (
    CLIENT_ID,
    OAUTH_UID,
    SECRET,
    World,
    delivered,
    recorded,
    types,
)
from tests.providers.flow import walk

pytestmark = pytest.mark.django_db

USER = {"type": "user", "id": "u-1"}
APP = {"type": "app"}


def idle_user_grant(world: World, *, idle: timedelta = timedelta(days=30)) -> Grant:
    """A consented user whose refresh token has not been used for ``idle``, due for a check."""
    assert walk(Client(), world.owner.api.consent(OAUTH_UID, "u-1")).status_code == 200
    grant = Grant.objects.get(installation__connector=world.oauth, subject_type="user")
    Grant.objects.filter(pk=grant.pk).update(
        updated_at=timezone.now() - idle, next_check_at=timezone.now() - timedelta(seconds=1)
    )
    return grant


def due_again(*grants: Grant) -> None:
    Grant.objects.filter(pk__in=[g.pk for g in grants]).update(
        next_check_at=timezone.now() - timedelta(seconds=1)
    )


def test_an_idle_refresh_token_is_kept_alive_quietly(world: World, oauth_server: OAuthFake) -> None:
    grant = idle_user_grant(world)
    before = grant.reveal("refresh_token")
    events = LifecycleEvent.objects.count()

    counts = credentials_check(budget_seconds=10)

    assert counts.get("ok") == 1, counts
    assert oauth_server.calls["refresh_token"] == 1
    grant.refresh_from_db()
    assert grant.reveal("refresh_token") != before  # rotated: alive for another while
    assert grant.status == "active"
    assert grant.check_lease_until is None
    day = timedelta(seconds=world.oauth.check_interval_seconds)
    assert timezone.now() + day * 0.85 < grant.next_check_at < timezone.now() + day * 1.15
    assert LifecycleEvent.objects.count() == events
    # Not due: nothing is asked.
    assert credentials_check(budget_seconds=10) == {"scheduled": 0}
    assert oauth_server.calls["refresh_token"] == 1


def test_a_recently_used_refresh_token_is_left_alone(world: World, oauth_server: OAuthFake) -> None:
    idle_user_grant(world, idle=timedelta(hours=1))
    counts = credentials_check(budget_seconds=10)
    assert counts.get("skipped") == 1, counts
    assert "refresh_token" not in oauth_server.calls


def test_a_refused_refresh_token_turns_the_grant_needs_reauth_and_tells_once(
    world: World, oauth_server: OAuthFake
) -> None:
    hook = world.hear(world.oauth, world.owner, "/lifecycle")
    grant = idle_user_grant(world)
    oauth_server.grant_revoke(next(iter(oauth_server._families)), because="user left")

    counts = credentials_check(budget_seconds=10)
    due_again(grant)
    again = credentials_check(budget_seconds=10)

    assert counts.get("grant_failed") == 1, counts
    assert again.get("grant_failed") is None, again  # no longer active: not checked
    grant.refresh_from_db()
    assert grant.status == "needs_reauth"
    assert "invalid_grant" in grant.last_error
    assert oauth_server.calls["refresh_token"] == 1
    got = delivered(world, [hook])["/lifecycle"]
    assert types(got) == ["grant.created", "grant.needs_reauth"]
    assert got[1]["data"]["grantId"] == grant.public_id
    assert "invalid_grant" in got[1]["data"]["error"]
    # The user's next request is told too, without asking the provider again.
    assert world.owner.api.token(OAUTH_UID, USER).status_code == 422
    assert oauth_server.calls["refresh_token"] == 1


@pytest.mark.parametrize("status", [503, 429, 500])
def test_a_provider_in_trouble_is_asked_later_and_nothing_is_marked(
    world: World, oauth_server: OAuthFake, status: int
) -> None:
    grant = idle_user_grant(world)
    events = LifecycleEvent.objects.count()
    oauth_server.fail_status = status

    with override_settings(CONNECT_CHECK_BACKOFF_SECONDS=600):
        counts = credentials_check(budget_seconds=10)

    assert counts.get("backed_off") == 1, counts
    grant.refresh_from_db()
    assert grant.status == "active"
    assert grant.last_error == ""
    later = grant.next_check_at - timezone.now()
    assert timedelta(seconds=590) < later <= timedelta(seconds=600)
    assert LifecycleEvent.objects.count() == events
    world.oauth.refresh_from_db()
    assert world.oauth.secret_failed_at is None


def test_a_refused_client_secret_marks_the_connector_once_and_its_recovery_once(
    world: World, oauth_server: OAuthFake
) -> None:
    hook = world.hear(world.oauth, world.owner, "/lifecycle")
    assert world.owner.api.token(OAUTH_UID, APP).status_code == 200  # makes the app grant
    app = Grant.objects.get(installation__connector=world.oauth, subject_type="app")
    due_again(app)
    oauth_server.add_client(CLIENT_ID, method="client_secret_basic", secret="rotated-away")

    assert credentials_check(budget_seconds=10).get("secret_failed") == 1
    due_again(app)
    assert credentials_check(budget_seconds=10).get("secret_failed") == 1  # still refused
    world.oauth.refresh_from_db()
    assert world.oauth.secret_failed_at is not None
    assert "invalid_client" in world.oauth.last_check_error

    oauth_server.add_client(CLIENT_ID, method="client_secret_basic", secret=SECRET)
    due_again(app)
    assert credentials_check(budget_seconds=10).get("ok") == 1
    due_again(app)
    assert credentials_check(budget_seconds=10).get("ok") == 1

    got = delivered(world, [hook])["/lifecycle"]
    assert types(got) == [
        "grant.created",
        "connector.secret_failed",
        "connector.secret_recovered",
    ]
    assert "invalid_client" in got[1]["data"]["error"]
    assert got[1]["data"]["connectorId"] == world.oauth.public_id
    assert got[1]["data"]["grantId"] is None
    world.oauth.refresh_from_db()
    assert world.oauth.secret_failed_at is None


@pytest.fixture
def keyed(world: World, make_connector: Any, make_link: Any) -> Connector:
    connector = make_connector(
        world.team,
        uid="api-key/billing",
        type="api-key",
        secrets={"api_key": "sk_live_abc"},
        config={"verifyUrl": world.receiver.url + "/verify"},
    )
    make_link(connector, world.owner.project, ["production"])
    Connector.objects.filter(pk=connector.pk).update(
        next_check_at=timezone.now() - timedelta(seconds=1)
    )
    return connector


def due_connector(connector: Connector) -> None:
    Connector.objects.filter(pk=connector.pk).update(
        next_check_at=timezone.now() - timedelta(seconds=1)
    )


def test_an_api_key_is_checked_at_its_verify_url(world: World, keyed: Connector) -> None:
    hook = world.hear(keyed, world.owner, "/keys")
    world.receiver.answer("/verify", (401, {}), (503, {"Retry-After": "120"}), (200, {}))

    assert credentials_check(budget_seconds=10).get("secret_failed") == 1
    due_connector(keyed)
    assert credentials_check(budget_seconds=10).get("backed_off") == 1
    keyed.refresh_from_db()
    assert keyed.secret_failed_at is not None  # a 503 proves nothing either way
    assert timedelta(seconds=110) < keyed.next_check_at - timezone.now() <= timedelta(seconds=120)
    due_connector(keyed)
    assert credentials_check(budget_seconds=10).get("ok") == 1

    asked = world.receiver.received("/verify")
    assert len(asked) == 3
    assert all(r.headers["authorization"] == "Bearer sk_live_abc" for r in asked)
    got = delivered(world, [hook])
    assert types(got["/keys"]) == ["connector.secret_failed", "connector.secret_recovered"]


def test_a_verify_url_must_be_a_web_url(world: World, keyed: Connector) -> None:
    keyed.config = {"verifyUrl": "file:///etc/passwd"}
    with pytest.raises(Exception, match="verifyUrl"):
        keyed.full_clean()


def test_a_check_whose_lease_another_worker_took_is_not_run(
    world: World, oauth_server: OAuthFake
) -> None:
    grant = idle_user_grant(world)
    claim = credential_checks.grants_check_claim()
    assert claim.ids == [grant.pk]
    # Its lease lapsed and another worker claimed it.
    Grant.objects.filter(pk=grant.pk).update(
        check_lease_until=timezone.now() + timedelta(minutes=5)
    )
    assert grant_check(grant_id=grant.pk, lease=claim.lease) == "skipped"
    assert "refresh_token" not in oauth_server.calls


@pytest.mark.django_db(transaction=True)
def test_a_thousand_grants_are_checked_in_bounded_batches_one_in_flight_each(
    world: World, oauth_server: OAuthFake
) -> None:
    """Two workers (threads with their own connections) drain 1,000 due grants; every claim is
    at most the batch, no grant is claimed twice, and the provider sees each refresh token
    once (the strict fake revokes a family whose rotated token comes back)."""
    installation = world.oauth.installations.get()
    idle = timezone.now() - timedelta(days=30)
    rows = []
    for n in range(1000):
        issued = oauth_server.grant_create(CLIENT_ID, scope="read")
        grant = Grant(
            installation=installation,
            subject_type="user",
            subject_id=f"user-{n}",
            issuer=world.owner.project.public_id,
            scopes=["read"],
            access_expires_at=timezone.now() + timedelta(hours=1),
            next_check_at=timezone.now() - timedelta(seconds=1),
        )
        grant.seal("access_token", issued.access_token)
        grant.seal("refresh_token", issued.refresh_token)
        rows.append(grant)
    Grant.objects.bulk_create(rows, batch_size=500)
    Grant.objects.filter(installation=installation).update(updated_at=idle)

    batch = 40
    claims: dict[str, list[list[int]]] = {"a": [], "b": []}
    failures: list[BaseException] = []

    def work(name: str) -> None:
        try:
            while True:
                claim = credential_checks.grants_check_claim(limit=batch)
                if not claim.ids:
                    return
                claims[name].append(claim.ids)
                for pk in claim.ids:
                    assert grant_check(grant_id=pk, lease=claim.lease) == "ok"
        except BaseException as exc:  # reported by the test below
            failures.append(exc)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=work, args=(name,)) for name in claims]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=600)

    assert failures == []
    taken = [pk for name in claims for ids in claims[name] for pk in ids]
    assert all(len(ids) <= batch for name in claims for ids in claims[name])
    assert claims["a"], "both workers took batches"
    assert claims["b"], "both workers took batches"
    assert len(taken) == 1000
    assert len(set(taken)) == 1000
    assert oauth_server.calls["refresh_token"] == 1000
    assert oauth_server.replays == 0
    assert not Grant.objects.filter(check_lease_until__isnull=False).exists()
    assert Grant.objects.filter(status="active", next_check_at__gt=timezone.now()).count() == 1000
    assert recorded("grant.needs_reauth") == 0
