"""An installation's and a grant's life after the flow: refreshed ahead of demand by beat,
revoked when the installation goes (admin deletion, or the provider's uninstall webhook)."""

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from connect import tasks
from connect.models import AuditEvent, Connector, Grant, InboundEvent, Installation, Team
from tests.fakes.oauth import OAuthFake


@pytest.fixture
def team(make_team: Callable[..., Team]) -> Team:
    return make_team("lifecycle")


@pytest.fixture
def oauth_connector(
    team: Team, make_connector: Callable[..., Connector], oauth_server: OAuthFake
) -> Connector:
    oauth_server.add_client("life-client", method="client_secret_post", secret="pw")
    return make_connector(
        team,
        uid="oauth/life",
        type="oauth",
        client_id="life-client",
        secrets={"client_secret": "pw"},
        config={
            "tokenEndpoint": oauth_server.token_endpoint,
            "revocationEndpoint": oauth_server.revocation_endpoint,
            "tokenEndpointAuthMethod": "client_secret_post",
        },
    )


def user_grant(
    connector: Connector,
    server: OAuthFake,
    make_grant: Callable[..., Grant],
    expires: timedelta,
) -> tuple[Grant, str]:
    issued = server.grant_create("life-client", scope="read")
    grant = make_grant(
        connector.installations.get(),
        subject_type=Grant.SubjectType.USER,
        subject_id="u1",
        issuer="prj_x",
        secrets={"access_token": issued.access_token, "refresh_token": issued.refresh_token},
        scopes=["read"],
        access_expires_at=timezone.now() + expires,
    )
    return grant, issued.family_id


@pytest.mark.django_db
def test_beat_refreshes_a_grant_inside_its_margin_once(
    oauth_connector: Connector,
    oauth_server: OAuthFake,
    make_grant: Callable[..., Grant],
    settings: object,
) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = True  # type: ignore[attr-defined]
    due, family = user_grant(oauth_connector, oauth_server, make_grant, timedelta(minutes=1))
    old_access, old_refresh = due.reveal("access_token"), due.reveal("refresh_token")

    assert tasks.grants_refresh_due.apply().get() == 1

    due.refresh_from_db()
    assert due.version == 1
    assert due.access_expires_at > timezone.now() + timedelta(minutes=30)
    assert due.reveal("access_token") != old_access
    assert oauth_server.access_token_active(due.reveal("access_token"))
    # Rotated: the old refresh token is spent, the new one is stored sealed.
    assert due.reveal("refresh_token") != old_refresh
    assert old_refresh in oauth_server.family(family).rotated
    assert oauth_server.calls["refresh_token"] == 1
    # Nothing left to do: a second sweep refreshes nothing.
    assert tasks.grants_refresh_due.apply().get() == 0


@pytest.mark.django_db
def test_beat_marks_a_dead_grant_needs_reauth(
    oauth_connector: Connector,
    oauth_server: OAuthFake,
    make_grant: Callable[..., Grant],
    settings: object,
) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = True  # type: ignore[attr-defined]
    grant, family = user_grant(oauth_connector, oauth_server, make_grant, timedelta(minutes=1))
    oauth_server.grant_revoke(family)

    tasks.grants_refresh_due.apply()

    grant.refresh_from_db()
    assert grant.status == Grant.Status.NEEDS_REAUTH
    assert AuditEvent.objects.filter(type="grant.needs_reauth").count() == 1


@pytest.mark.django_db
def test_deleting_an_installation_in_the_admin_revokes_its_grants_upstream(
    team: Team,
    oauth_connector: Connector,
    oauth_server: OAuthFake,
    make_grant: Callable[..., Grant],
    make_member: Callable[..., User],
) -> None:
    grant, family = user_grant(oauth_connector, oauth_server, make_grant, timedelta(hours=1))
    installation = grant.installation
    owner = make_member(team, role="owner")
    client = Client()
    client.force_login(owner)

    response = client.post(
        f"/admin/connect/installation/{installation.pk}/delete/", {"post": "yes"}
    )

    assert response.status_code == 302
    assert not Installation.objects.filter(pk=installation.pk).exists()
    assert not Grant.objects.filter(pk=grant.pk).exists()
    assert [r["hint"] for r in oauth_server.revocations] == ["refresh_token"]
    assert not oauth_server.family(family).active
    event = AuditEvent.objects.get(type="installation.removed")
    assert event.fields["providerRevoked"] == 1


def slack_post(client: Client, connector: Connector, payload: dict[str, object]) -> int:
    body = json.dumps(payload).encode()
    timestamp = str(int(time.time()))
    signature = (
        "v0="
        + hmac.new(
            b"slack-signing", b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256
        ).hexdigest()
    )
    response = client.post(
        f"/connect/trigger/{connector.public_id}",
        data=body,
        content_type="application/json",
        HTTP_X_SLACK_REQUEST_TIMESTAMP=timestamp,
        HTTP_X_SLACK_SIGNATURE=signature,
    )
    return response.status_code


@pytest.mark.django_db
def test_slack_app_uninstalled_revokes_that_workspace_only(
    team: Team,
    make_connector: Callable[..., Connector],
    make_installation: Callable[..., Installation],
    make_grant: Callable[..., Grant],
) -> None:
    slack = make_connector(
        team,
        uid="slack/life",
        type="slack",
        triggers_enabled=True,
        secrets={"trigger_signing_secret": "slack-signing"},
    )
    gone = make_installation(slack, tenant_id="T-GONE", is_default=True)
    kept = make_installation(slack, tenant_id="T-KEPT")
    for installation in (gone, kept):
        make_grant(installation, secrets={"access_token": f"xoxb-{installation.tenant_id}"})

    status = slack_post(
        Client(),
        slack,
        {
            "type": "event_callback",
            "team_id": "T-GONE",
            "event_id": "Ev-uninstall",
            "event": {"type": "app_uninstalled"},
        },
    )

    assert status == 200
    gone.refresh_from_db()
    kept.refresh_from_db()
    assert gone.status == Installation.Status.REVOKED
    assert kept.status == Installation.Status.ACTIVE
    gone_grant, kept_grant = gone.grants.get(), kept.grants.get()
    assert gone_grant.status == Grant.Status.REVOKED
    assert not gone_grant.has_secret("access_token")
    assert kept_grant.reveal("access_token") == "xoxb-T-KEPT"
    # The event itself is still recorded (and forwarded like any other).
    assert InboundEvent.objects.filter(connector=slack, event_type="app_uninstalled").count() == 1


@pytest.mark.django_db
def test_github_installation_deleted_revokes_the_installation(
    team: Team,
    make_connector: Callable[..., Connector],
    make_installation: Callable[..., Installation],
    make_grant: Callable[..., Grant],
) -> None:
    github = make_connector(
        team,
        uid="github/life",
        type="github",
        triggers_enabled=True,
        secrets={"trigger_signing_secret": "gh-secret"},
    )
    installation = make_installation(github, tenant_id="4242", is_default=True)
    make_grant(installation, secrets={"access_token": "ghs_cached"})
    body = json.dumps({"action": "deleted", "installation": {"id": 4242}}).encode()
    signature = "sha256=" + hmac.new(b"gh-secret", body, hashlib.sha256).hexdigest()

    response = Client().post(
        f"/connect/trigger/{github.public_id}",
        data=body,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=signature,
        HTTP_X_GITHUB_EVENT="installation",
        HTTP_X_GITHUB_DELIVERY="d-1",
    )

    assert response.status_code == 200
    installation.refresh_from_db()
    assert installation.status == Installation.Status.REVOKED
    assert installation.grants.get().status == Grant.Status.REVOKED
