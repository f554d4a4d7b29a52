"""A grant's tokens are written by ``Grant.store_tokens`` and ``Grant.clear_tokens`` only.

The rule for the refresh token (RFC 6749 section 6): a provider that omits it leaves the old one
valid, so the old one is kept, unless it is known dead or belongs to someone else.
"""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from connect.models import Connector, Grant, Installation, Team
from connect.providers.base import TokenSet

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


@pytest.fixture
def grant(
    make_team: Callable[..., Team],
    make_connector: Callable[..., Connector],
    make_installation: Callable[..., Installation],
    make_grant: Callable[..., Grant],
) -> Grant:
    connector = make_connector(
        make_team(), uid="oauth/t", type="oauth", client_id="c", secrets={"client_secret": "s"}
    )
    grant = make_grant(make_installation(connector), Grant.SubjectType.USER, "42")
    grant.store_tokens(
        TokenSet(
            access_token="first-access",
            expires_at=NOW + timedelta(hours=1),
            refresh_token="first-refresh",
            refresh_expires_at=NOW + timedelta(days=30),
            scopes=("read",),
        ),
        now=NOW,
        external_subject="provider-user-1",
    )
    grant.save()
    return grant


def answer(refresh_token: str | None = None) -> TokenSet:
    return TokenSet(
        access_token="second-access",
        expires_at=NOW + timedelta(hours=2),
        refresh_token=refresh_token,
        refresh_expires_at=NOW + timedelta(days=60) if refresh_token else None,
    )


def reloaded(grant: Grant) -> Grant:
    grant.save(update_fields=Grant.TOKEN_FIELDS)
    return Grant.objects.get(pk=grant.pk)


def test_an_omitted_refresh_token_keeps_the_old_one(grant: Grant) -> None:
    grant.store_tokens(answer(), now=NOW + timedelta(hours=1))
    stored = reloaded(grant)
    assert stored.reveal("access_token") == "second-access"
    assert stored.reveal("refresh_token") == "first-refresh"
    assert stored.refresh_expires_at == NOW + timedelta(days=30)
    assert stored.scopes == ["read"], "no scopes in the answer: the granted ones stay"
    assert stored.access_lifetime_seconds == 3600


def test_a_rotated_refresh_token_replaces_the_old_one(grant: Grant) -> None:
    grant.store_tokens(answer("second-refresh"), now=NOW)
    stored = reloaded(grant)
    assert stored.reveal("refresh_token") == "second-refresh"
    assert stored.refresh_expires_at == NOW + timedelta(days=60)


@pytest.mark.parametrize("status", [Grant.Status.NEEDS_REAUTH, Grant.Status.REVOKED])
def test_a_dead_refresh_token_is_not_kept_and_the_grant_is_active_again(
    grant: Grant, status: Grant.Status
) -> None:
    grant.status = status
    grant.store_tokens(answer(), now=NOW)
    stored = reloaded(grant)
    assert stored.reveal("refresh_token") == ""
    assert stored.refresh_expires_at is None
    assert stored.status == Grant.Status.ACTIVE


def test_another_subject_at_the_provider_does_not_inherit_the_refresh_token(grant: Grant) -> None:
    grant.store_tokens(answer(), now=NOW, external_subject="provider-user-2")
    stored = reloaded(grant)
    assert stored.reveal("refresh_token") == ""
    assert stored.external_subject == "provider-user-2"


def test_the_same_subject_at_the_provider_keeps_it(grant: Grant) -> None:
    grant.store_tokens(answer(), now=NOW, external_subject="provider-user-1")
    assert reloaded(grant).reveal("refresh_token") == "first-refresh"


def test_a_new_holder_does_not_inherit_the_refresh_token(grant: Grant) -> None:
    grant.store_tokens(answer(), now=NOW, lifetime_known=False, new_holder=True)
    stored = reloaded(grant)
    assert stored.reveal("refresh_token") == ""
    assert stored.access_lifetime_seconds is None, "an imported token's lifetime is unknown"


def test_every_write_is_a_new_version(grant: Grant) -> None:
    before = grant.version
    grant.store_tokens(answer(), now=NOW)
    grant.clear_tokens(now=NOW)
    assert reloaded(grant).version == before + 2


def test_clearing_forgets_both_tokens_and_keeps_the_grant(grant: Grant) -> None:
    later = NOW + timedelta(minutes=5)
    grant.clear_tokens(now=later, status=Grant.Status.REVOKED)
    stored = reloaded(grant)
    assert (stored.reveal("access_token"), stored.reveal("refresh_token")) == ("", "")
    assert stored.access_expires_at is None
    assert stored.refresh_expires_at is None
    assert stored.status == Grant.Status.REVOKED
    assert stored.scopes == ["read"]
    assert stored.external_subject == "provider-user-1"
    assert stored.updated_at == later
    assert not stored.access_token_fresh(later)


def test_clearing_without_a_status_leaves_it(grant: Grant) -> None:
    grant.clear_tokens(now=NOW)
    assert reloaded(grant).status == Grant.Status.ACTIVE
