"""An owner makes a team API token in a real browser, copies it from the page that shows it
once, and a script uses it; the page shows it no more (issue 10, point 1)."""

import re
from collections.abc import Callable
from typing import Any

import pytest
import requests
from django.contrib.auth.models import User
from playwright.sync_api import Page

from connect.models import Role, Team, TeamApiToken
from tests.browser.conftest import PASSWORD, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_owner_makes_a_token_sees_it_once_and_a_script_uses_it(
    page: Page,
    live_server: Any,
    make_team: Callable[..., Team],
    make_member: Callable[..., User],
) -> None:
    team = make_team(slug="acme", name="Acme")
    make_member(team, Role.OWNER, username="ada", password=PASSWORD)
    base = live_server.url
    sign_in(page, base, "ada")

    page.goto(f"{base}/admin/connect/teamapitoken/add/")
    page.select_option("select[name=team]", label="Acme")
    page.fill("input[name=name]", "terraform")
    page.select_option("select[name=role]", "member")
    page.click("input[name=_save]")

    assert "/one-time/" in page.url
    shown = re.search(r"cat_[A-Za-z0-9]{12}_[A-Za-z0-9]{24}", page.content())
    assert shown, "the new token is on the page"
    secret = shown.group(0)
    answer = requests.get(
        f"{base}/v1/connect/whoami", headers={"Authorization": f"Bearer {secret}"}, timeout=10
    )
    assert answer.status_code == 200
    assert answer.json()["token"]["role"] == "member"

    page.reload()
    assert secret not in page.content()
    page.goto(f"{base}/admin/connect/teamapitoken/")
    listing = page.content()
    assert "terraform" in listing
    assert secret not in listing
    token = TeamApiToken.objects.get(team=team)
    assert token.last_used_at is not None
