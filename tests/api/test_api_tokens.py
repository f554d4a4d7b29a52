"""Team API tokens (issue 10, point 1): a member of one team with a role, never above its
creator's current role; the management API only; a rate-limit bucket of their own."""

import json
import re
import time
from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from connect.api.authentication import ManagementRateThrottle, TeamRateThrottle
from connect.models import AuditEvent, Membership, Role, Team, TeamApiToken
from connect.permissions import ACTION_ROLES, Action, role_allows
from connect.services import teams
from tests.admin.pages import form_data
from tests.api.conftest import Tenant, bearer
from tests.clock import ManualClock

pytestmark = pytest.mark.django_db

WHOAMI = "/v1/connect/whoami"
TOKEN_SHAPE = re.compile(r"^cat_[A-Za-z0-9]{12}_[A-Za-z0-9]{24}$")


def error_of(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_the_permission_table_is_the_admins_rule() -> None:
    assert role_allows(Role.VIEWER, Action.VIEW)
    assert not role_allows(Role.VIEWER, Action.CHANGE)
    assert role_allows(Role.MEMBER, Action.ADD)
    assert role_allows(Role.MEMBER, Action.CHANGE)
    assert not role_allows(Role.MEMBER, Action.DELETE)
    assert not role_allows(Role.MEMBER, Action.MANAGE_TOKENS)
    assert all(role_allows(Role.OWNER, action) for action in ACTION_ROLES)
    assert not role_allows(None, Action.VIEW)
    assert not role_allows(Role.OWNER, "launch_rockets")


@pytest.mark.parametrize("role", Role.values)
def test_whoami_names_team_and_role(
    client: Client, make_team: Callable[..., Team], make_api_token: Callable[..., str], role: str
) -> None:
    team = make_team()
    token = make_api_token(team, role)
    assert TOKEN_SHAPE.match(token)

    response = client.get(WHOAMI, **bearer(token))

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["team"] == {"id": team.public_id, "slug": team.slug, "name": team.name}
    assert body["token"]["role"] == role
    assert body["token"]["id"].startswith("tok_")
    stored = TeamApiToken.objects.get(public_id=body["token"]["id"])
    assert token not in json.dumps(list(TeamApiToken.objects.values()), default=str)
    assert stored.last_used_at is not None


def test_bad_tokens_are_401(
    client: Client, make_team: Callable[..., Team], make_api_token: Callable[..., str]
) -> None:
    team = make_team()
    token = make_api_token(team, "viewer")
    prefix = token.split("_")[1]
    assert error_of(client.get(WHOAMI)) == (401, "unauthorized")
    assert error_of(client.get(WHOAMI, **bearer(token[:-1] + "x"))) == (401, "unauthorized")
    assert error_of(client.get(WHOAMI, **bearer(f"cat_{prefix}"))) == (401, "unauthorized")
    assert error_of(client.get(WHOAMI, **bearer("cat_nope_nope"))) == (401, "unauthorized")
    assert client.get(WHOAMI, HTTP_AUTHORIZATION=f"Basic {token}").status_code == 401


def test_expired_and_revoked_tokens_are_401(
    client: Client, make_team: Callable[..., Team], make_api_token: Callable[..., str]
) -> None:
    team = make_team()
    expiring = make_api_token(team, "owner", expires_at=timezone.now() + timedelta(hours=1))
    revoked = make_api_token(team, "owner", name="revoked")
    assert client.get(WHOAMI, **bearer(expiring)).status_code == 200
    TeamApiToken.objects.filter(prefix=expiring.split("_")[1]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    call_command("api_token", "revoke", revoked.split("_")[1], stdout=StringIO())

    assert error_of(client.get(WHOAMI, **bearer(expiring))) == (401, "unauthorized")
    assert error_of(client.get(WHOAMI, **bearer(revoked))) == (401, "unauthorized")


def test_a_token_never_acts_above_its_creators_current_role(
    client: Client,
    make_team: Callable[..., Team],
    make_member: Callable[..., User],
    make_api_token: Callable[..., str],
) -> None:
    team = make_team()
    owner = make_member(team, Role.OWNER)
    token = make_api_token(team, "owner", creator=owner)
    assert client.get(WHOAMI, **bearer(token)).json()["token"]["role"] == "owner"

    Membership.objects.filter(team=team, user=owner).update(role=Role.VIEWER)
    assert client.get(WHOAMI, **bearer(token)).json()["token"]["role"] == "viewer"

    Membership.objects.filter(team=team, user=owner).update(role=Role.MEMBER)
    assert client.get(WHOAMI, **bearer(token)).json()["token"]["role"] == "member"


def test_removing_a_member_revokes_their_tokens(
    client: Client,
    make_team: Callable[..., Team],
    make_member: Callable[..., User],
    make_api_token: Callable[..., str],
) -> None:
    team, other_team = make_team(), make_team()
    owner = make_member(team, Role.OWNER)
    Membership.objects.create(team=other_team, user=owner, role=Role.OWNER)
    token = make_api_token(team, "member", creator=owner)
    elsewhere = make_api_token(other_team, "member", creator=owner)
    colleague = make_api_token(team, "member", creator=make_member(team, Role.OWNER))

    teams.membership_remove(membership=Membership.objects.get(team=team, user=owner), actor="test")

    assert error_of(client.get(WHOAMI, **bearer(token))) == (401, "unauthorized")
    assert TeamApiToken.objects.get(prefix=token.split("_")[1]).revoked_at is not None
    assert client.get(WHOAMI, **bearer(elsewhere)).status_code == 200  # another team's
    assert client.get(WHOAMI, **bearer(colleague)).status_code == 200
    assert AuditEvent.objects.filter(team=team, type="api_token.revoked").count() == 1


def test_a_creator_removed_without_the_service_voids_the_token(
    client: Client,
    make_team: Callable[..., Team],
    make_member: Callable[..., User],
    make_api_token: Callable[..., str],
) -> None:
    team = make_team()
    owner = make_member(team, Role.OWNER)
    token = make_api_token(team, "owner", creator=owner)
    Membership.objects.filter(team=team, user=owner).delete()  # e.g. a raw SQL clean-up
    assert error_of(client.get(WHOAMI, **bearer(token))) == (401, "unauthorized")
    User.objects.filter(pk=owner.pk).update(is_active=False)
    Membership.objects.create(team=team, user=owner, role=Role.OWNER)
    assert error_of(client.get(WHOAMI, **bearer(token))) == (401, "unauthorized")


def test_a_member_cannot_make_a_token_above_their_role(
    make_team: Callable[..., Team],
    make_member: Callable[..., User],
    make_api_token: Callable[..., str],
) -> None:
    from connect import errors

    team = make_team()
    member = make_member(team, Role.MEMBER)
    assert make_api_token(team, "member", creator=member)
    with pytest.raises(errors.Forbidden):
        make_api_token(team, "owner", creator=member)
    outsider = make_member(make_team(), Role.OWNER)
    with pytest.raises(errors.Forbidden):
        make_api_token(team, "viewer", creator=outsider)


def test_team_tokens_cannot_use_the_runtime_api(
    client: Client, make_tenant: Callable[..., Tenant], make_api_token: Callable[..., str]
) -> None:
    tenant = make_tenant()
    token = make_api_token(tenant.team, "owner")
    response = client.post(
        "/v1/connect/token/api-key%2Fkey",
        data=json.dumps({"subject": {"type": "app"}}),
        content_type="application/json",
        **bearer(token),
    )
    assert error_of(response) == (403, "forbidden")
    assert "deployment credential" in response.json()["error"]["message"]
    # Nor the proxy, which reads its caller by itself.
    proxied = client.get("/v1/connect/proxy/api-key%2Fkey/v1/things", **bearer(token))
    assert error_of(proxied) == (403, "forbidden")


def test_deployment_credentials_cannot_use_the_management_api(
    client: Client, make_tenant: Callable[..., Tenant]
) -> None:
    tenant = make_tenant()
    assert error_of(client.get(WHOAMI, **tenant.auth)) == (403, "forbidden")
    # An unknown credential is not told apart from a valid one by a 403.
    assert error_of(client.get(WHOAMI, **bearer("cdc_aaaaaaaaaaaa_bbbb"))) == (
        401,
        "unauthorized",
    )


def test_team_scope_must_name_the_tokens_own_team(
    client: Client, make_team: Callable[..., Team], make_api_token: Callable[..., str]
) -> None:
    team, other = make_team(), make_team()
    token = make_api_token(team, "viewer")
    assert client.get(f"{WHOAMI}?teamId={team.public_id}", **bearer(token)).status_code == 200
    assert client.get(f"{WHOAMI}?slug={team.slug}", **bearer(token)).status_code == 200
    assert error_of(client.get(f"{WHOAMI}?teamId={other.public_id}", **bearer(token))) == (
        403,
        "forbidden",
    )
    assert error_of(client.get(f"{WHOAMI}?slug={other.slug}", **bearer(token))) == (
        403,
        "forbidden",
    )
    both = f"{WHOAMI}?teamId={team.public_id}&slug={team.slug}"
    assert error_of(client.get(both, **bearer(token))) == (400, "invalid_request")


def _separate_buckets(
    client: Client,
    make_tenant: Callable[..., Tenant],
    make_api_token: Callable[..., str],
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.CONNECT_RATE_LIMIT_MANAGEMENT = 3
    settings.CONNECT_RATE_LIMIT_READS = 2
    clock = ManualClock(time.time() // 60 * 60 + 1)
    monkeypatch.setattr(ManagementRateThrottle, "timer", clock)
    monkeypatch.setattr(TeamRateThrottle, "timer", clock)
    tenant = make_tenant()
    token = make_api_token(tenant.team, "viewer")

    def token_request() -> int:
        return client.post(
            "/v1/connect/token/api-key%2Fkey",
            data=json.dumps({"subject": {"type": "app"}}),
            content_type="application/json",
            **tenant.auth,
        ).status_code

    for _ in range(3):
        assert client.get(WHOAMI, **bearer(token)).status_code == 200
    response = client.get(WHOAMI, **bearer(token))
    assert error_of(response) == (429, "rate_limited")
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    # The script spent its budget; deployments' token requests have theirs, untouched.
    assert token_request() == 200
    assert token_request() == 200
    assert token_request() == 429
    clock.advance(60)
    assert client.get(WHOAMI, **bearer(token)).status_code == 200


def test_management_calls_have_their_own_rate_bucket(
    client: Client,
    make_tenant: Callable[..., Tenant],
    make_api_token: Callable[..., str],
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.REDIS_URL = ""
    _separate_buckets(client, make_tenant, make_api_token, settings, monkeypatch)


@pytest.mark.redis
def test_management_calls_have_their_own_rate_bucket_in_redis(
    client: Client,
    make_tenant: Callable[..., Tenant],
    make_api_token: Callable[..., str],
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    settings.REDIS_URL = os.environ["REDIS_URL"]
    _separate_buckets(client, make_tenant, make_api_token, settings, monkeypatch)


def test_command_creates_lists_and_revokes(
    client: Client, make_team: Callable[..., Team], make_member: Callable[..., User]
) -> None:
    team = make_team(slug="acme")
    owner = make_member(team, Role.OWNER, username="olga")
    out = StringIO()
    call_command(
        "api_token", "create", "--team", "acme", "--role", "member", "--expires", "30d",
        "--user", "olga", "--name", "ci", stdout=out,
    )  # fmt: skip
    secret = out.getvalue().strip()
    assert TOKEN_SHAPE.match(secret)
    stored = TeamApiToken.objects.get(team=team)
    assert stored.created_by == owner
    assert stored.role == "member"
    assert stored.name == "ci"
    assert stored.expires_at is not None
    assert timedelta(days=29) < stored.expires_at - timezone.now() <= timedelta(days=30)
    assert client.get(WHOAMI, **bearer(secret)).json()["token"]["role"] == "member"

    listing = StringIO()
    call_command("api_token", "list", "--team", "acme", stdout=listing)
    assert stored.public_id in listing.getvalue()
    assert "active" in listing.getvalue()
    assert secret not in listing.getvalue()

    call_command("api_token", "revoke", stored.public_id, stdout=StringIO())
    assert client.get(WHOAMI, **bearer(secret)).status_code == 401
    events = AuditEvent.objects.filter(team=team, type__startswith="api_token.")
    assert sorted(events.values_list("type", flat=True)) == [
        "api_token.created",
        "api_token.revoked",
    ]
    assert all(secret not in json.dumps(e.fields) for e in events)


@pytest.mark.parametrize(
    "args",
    [
        ["--team", "acme", "--role", "viewer", "--expires", "soon"],
        ["--team", "acme", "--role", "viewer", "--user", "nobody"],
        ["--team", "nope", "--role", "viewer"],
    ],
)
def test_command_refuses_bad_input(make_team: Callable[..., Team], args: list[str]) -> None:
    make_team(slug="acme")
    with pytest.raises(CommandError):
        call_command("api_token", "create", *args, stdout=StringIO())
    assert not TeamApiToken.objects.exists()


# The admin page ------------------------------------------------------------------------------

ADD = "/admin/connect/teamapitoken/add/"
CHANGELIST = "/admin/connect/teamapitoken/"


def test_owner_creates_a_token_in_the_admin_and_sees_it_once(
    make_team: Callable[..., Team], make_member: Callable[..., User]
) -> None:
    team = make_team()
    browser = Client()
    owner = make_member(team, Role.OWNER)
    browser.force_login(owner)
    data = form_data(browser.get(ADD), "teamapitoken_form")
    data.update(team=[str(team.pk)], name=["terraform"], role=["member"])

    posted = browser.post(ADD, data)

    assert posted.status_code == 302, posted.content[:2000]
    assert "/one-time/" in posted["Location"]
    page = browser.get(posted["Location"]).content.decode()
    secret = re.search(r"cat_[A-Za-z0-9]{12}_[A-Za-z0-9]{24}", page)
    assert secret, "the new token is on the page"
    assert browser.get(posted["Location"]).status_code == 404  # once
    stored = TeamApiToken.objects.get(team=team)
    assert stored.created_by == owner
    assert stored.matches(secret.group(0))
    assert AuditEvent.objects.filter(
        team=team, type="api_token.created", actor__startswith=f"user:{owner.pk}:"
    ).exists()
    listing = browser.get(CHANGELIST).content.decode()
    assert "terraform" in listing
    assert secret.group(0) not in listing

    # Revoked from the list, audited.
    response = browser.post(CHANGELIST, {"action": "revoke", "_selected_action": [str(stored.pk)]})
    assert response.status_code == 302
    stored.refresh_from_db()
    assert stored.revoked_at is not None


@pytest.mark.parametrize("role", [Role.VIEWER, Role.MEMBER])
def test_only_owners_see_tokens_in_the_admin(
    make_team: Callable[..., Team],
    make_member: Callable[..., User],
    make_api_token: Callable[..., str],
    role: Role,
) -> None:
    team = make_team()
    make_api_token(team, "viewer")
    browser = Client()
    browser.force_login(make_member(team, role))
    assert browser.get(CHANGELIST).status_code == 403
    assert browser.get(ADD).status_code == 403
    token = TeamApiToken.objects.get(team=team)
    assert browser.get(f"{CHANGELIST}{token.pk}/change/").status_code in (403, 404)


def test_an_owner_cannot_add_a_token_to_another_team(
    make_team: Callable[..., Team], make_member: Callable[..., User]
) -> None:
    team, other = make_team(), make_team()
    browser = Client()
    browser.force_login(make_member(team, Role.OWNER))
    make_member(other, Role.MEMBER)
    data = form_data(browser.get(ADD), "teamapitoken_form")
    data.update(team=[str(other.pk)], name=["sneaky"], role=["viewer"])
    response = browser.post(ADD, data)
    assert response.status_code == 200  # the form refuses the choice
    assert not TeamApiToken.objects.exists()
