"""Proxied calls on the admin's Activity page: each with its outcome, latency and
``proxyCallId``, filtered like the other events, and only the viewer's teams'."""

from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import User
from django.test import Client

from connect.models import ProxyCall, Role
from tests.proxy.conftest import USER_ID, ProxyRig


def events(client: Client, query: str = "") -> str:
    html = client.get(f"/admin/activity/{query}").content.decode()
    return html.split('id="connect-events"')[1].split("</table>")[0]


def test_proxied_calls_are_listed_with_their_outcome(
    rig: ProxyRig,
    make_proxy_rig: Any,
    make_member: Callable[..., User],
) -> None:
    assert rig.call("GET", "/me").status_code == 200
    assert rig.call("GET", "/me", subject=f"user:{USER_ID}").status_code == 422
    theirs = make_proxy_rig()
    assert theirs.call("GET", "/me").status_code == 200
    answered = ProxyCall.objects.get(team=rig.team, outcome=ProxyCall.Outcome.ANSWERED)
    refused = ProxyCall.objects.get(team=rig.team, outcome=ProxyCall.Outcome.REFUSED)
    other = ProxyCall.objects.get(team=theirs.team)

    viewer = Client()
    viewer.force_login(make_member(rig.team, Role.VIEWER))
    listed = events(viewer)
    assert f"proxyCallId={answered.public_id}" in listed
    assert f"proxyCallId={refused.public_id}" in listed
    assert "Proxied GET /me → 200" in listed
    assert f"/admin/connect/proxycall/{answered.pk}/change/" in listed
    assert other.public_id not in listed  # another team's

    only_refused = events(viewer, "?outcome=refused")
    assert refused.public_id in only_refused
    assert answered.public_id not in only_refused
    assert "user_authorization_required" in only_refused
