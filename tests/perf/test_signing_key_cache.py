"""Every forwarded webhook mints a bearer token: the signing key is kept in process, and a
rotation or retirement (any process, or psql) is honoured as soon as the generations are read."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import jwt
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from connect import generations, local_caches, oidc
from connect.models import Project, SigningKey, Team

pytestmark = pytest.mark.django_db(transaction=True)


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


@pytest.fixture
def project(
    settings: Any, make_team: Callable[..., Team], make_project: Callable[..., Project]
) -> Project:
    settings.CONNECT_LOCAL_CACHES = True
    local_caches.clear_all()
    generations.check_now()
    return make_project(make_team())


def test_tokens_are_minted_without_reading_the_key_again(project: Project) -> None:
    first = kid_of(oidc.oidc_token_mint(project=project, environment="production"))
    # The first mint made the key, which moved its generation: read it now rather than when
    # the listener's notice comes (on a loaded machine, after the next mint: CI failed so).
    generations.check_now()
    oidc.oidc_token_mint(project=project, environment="production")  # the key is now kept

    with CaptureQueriesContext(connection) as queries:
        kids = {
            kid_of(oidc.oidc_token_mint(project=project, environment="production"))
            for _ in range(5)
        }

    assert kids == {first}
    assert not [q for q in queries.captured_queries if "connect_signingkey" in q["sql"]]


def test_a_rotation_is_used_once_the_generations_are_read(project: Project) -> None:
    old = kid_of(oidc.oidc_token_mint(project=project, environment="production"))
    oidc.oidc_token_mint(project=project, environment="production")

    new = oidc.signing_keys_rotate(overlap=timedelta(hours=1))
    # What the listener does on the change's notice, or the fallback within a second.
    generations.check_now()

    assert new.kid != old
    assert kid_of(oidc.oidc_token_mint(project=project, environment="production")) == new.kid


def test_a_key_retired_by_hand_is_not_used_after_the_next_read(project: Project) -> None:
    old = kid_of(oidc.oidc_token_mint(project=project, environment="production"))
    oidc.oidc_token_mint(project=project, environment="production")

    # As psql would: no code of ours runs, the database's trigger moves the generation.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE connect_signingkey SET retires_at = CURRENT_TIMESTAMP")
    generations.check_now()

    minted = kid_of(oidc.oidc_token_mint(project=project, environment="production"))
    assert minted != old
    assert SigningKey.objects.get(kid=minted).retires_at is None
