"""Issue 8, point 2: a callback never names its own tenant.

An install completes against the tenant the provider proves: a GitHub installation that the
installer's own user token (from the same callback) can see, an Entra tenant from an id_token
Microsoft signed, the workspace Slack's or Linear's API names. A query parameter alone attaches
nothing; a flow started for one tenant completes only into that one; an authorization response
naming another issuer than the connector's is refused (RFC 9207).

Everything runs over real HTTP against the strict loopback fakes. Every refusal leaves nothing
attached: no installation made or touched, no grant, the flow marked failed.
"""

import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client

from connect.models import AuditEvent, Connector, Grant, Installation
from connect.services.connectors import connector_discover
from tests.fakes.github import GitHubFake
from tests.fakes.linear import LinearFake
from tests.fakes.microsoft import MicrosoftFake
from tests.fakes.oauth import OAuthFake
from tests.fakes.slack import SlackFake
from tests.providers import conftest as providers
from tests.providers.conftest import (
    CONTOSO,
    GITHUB_UID,
    MICROSOFT_UID,
    Tenant,
    fake_kwargs,
    running,
)
from tests.providers.flow import (
    assert_refused_page,
    at_provider,
    callback,
    callback_url,
    error_code,
    flow_request,
    install_page,
    query_of,
    walk,
)

pytestmark = pytest.mark.django_db

# The provider tests' fixtures (tenants, the GitHub and Entra fakes, their connectors).
make_tenant = providers.make_tenant
tenant = providers.tenant
make_linked_connector = providers.make_linked_connector
rsa_private_pem = providers.rsa_private_pem
github = providers.github
github_connector = providers.github_connector
entra = providers.entra
microsoft_connector = providers.microsoft_connector

VICTIM_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
WEBHOOK_SECRET = "gh-webhook-secret"
NOT_CONFIRMED = "We could not confirm your organization"


def with_params(query: str, **changes: str) -> str:
    return urlencode({**query_of("?" + query), **changes})


def snapshot(installation: Installation) -> tuple[Any, ...]:
    installation.refresh_from_db()
    return (
        installation.status,
        installation.display_name,
        installation.metadata,
        installation.is_default,
        installation.updated_at,
    )


def assert_flow_attached_nothing(started: dict[str, Any], *, chosen_at_start: Any = None) -> None:
    """The flow failed and points at no installation but the one its starter chose (a
    consent is for the default installation, or the one named)."""
    request = flow_request(started)
    assert request.outcome == "failed", (request.outcome, request.error)
    assert request.installation == chosen_at_start


# GitHub: the installation_id of the setup URL can be spoofed -----------------------------------


def github_install(tenant: Tenant, github: GitHubFake, *, installer: str, into: str) -> Any:
    """A whole, honest install: ``installer`` (a GitHub login) installs the app into ``into``."""
    github.user = {"login": installer, "id": 7000 + len(installer)}
    github.next_installation = into
    return walk(Client(), tenant.api.install(GITHUB_UID))


@pytest.fixture
def victim_org(github: GitHubFake) -> str:
    """Installation 77 of the same app, in an organization the attacker is no member of."""
    github.add_installation(
        "77",
        login="victim-org",
        repositories=["payroll"],
        permissions={"contents": "write", "metadata": "read"},
        members=["victim-admin"],
    )
    return "77"


@pytest.mark.parametrize("victim_already_installed", [True, False])
def test_an_installer_cannot_attach_another_organizations_installation_by_editing_its_id(
    tenant: Tenant,
    github_connector: Connector,
    github: GitHubFake,
    victim_org: str,
    victim_already_installed: bool,
) -> None:
    victim = None
    if victim_already_installed:
        installed = github_install(tenant, github, installer="victim-admin", into=victim_org)
        assert installed.status_code == 200, installed.content
        victim = Installation.objects.get(connector=github_connector, tenant_id=victim_org)
        before = snapshot(victim)
    # The attacker installs the app into their own organization (42) ...
    github.user = {"login": "octocat", "id": 1}
    github.next_installation = "42"
    client = Client()
    attacker = tenant.api.install(GITHUB_UID)
    _, provider_url = install_page(client, attacker["url"])
    query = at_provider(provider_url)
    app_checks = len(github.calls_to("GET", f"/api/v3/app/installations/{victim_org}"))

    # ... and comes back naming the victim's installation instead.
    response = callback(client, with_params(query, installation_id=victim_org))

    assert_refused_page(response, NOT_CONFIRMED)
    assert_flow_attached_nothing(attacker)
    assert any(
        f"octocat has no access to installation {victim_org}" in r for r in github.rejections
    )
    # Refused on the installer's proof, before the app ever asked about the installation.
    assert len(github.calls_to("GET", f"/api/v3/app/installations/{victim_org}")) == app_checks
    # The installer's token was only the proof: revoked at GitHub, kept nowhere.
    installer_token = github.issued[-1]["access_token"]
    assert github.access_family(installer_token) is None
    assert not Grant.objects.exists()
    if victim is not None:
        assert snapshot(victim) == before
        assert Installation.objects.filter(connector=github_connector).count() == 1
    else:
        assert not Installation.objects.exists()
    assert error_code(tenant.api.result(attacker["verifier"])) == "access_denied"


def test_a_bare_installation_id_under_a_valid_state_attaches_nothing(
    tenant: Tenant, github_connector: Connector, github: GitHubFake, victim_org: str
) -> None:
    """The setup URL's shape without the installer's code: the state is genuine, nothing
    proves the installation."""
    client = Client()
    started = tenant.api.install(GITHUB_UID)
    _, provider_url = install_page(client, started["url"])
    state = query_of(provider_url)["state"]

    response = callback(
        client,
        urlencode({"installation_id": victim_org, "setup_action": "install", "state": state}),
    )

    assert_refused_page(response, "is not set up to finish this yet")
    assert_flow_attached_nothing(started)
    assert github.calls_to("POST", "/login/oauth/access_token") == []
    assert github.calls_to("GET", f"/api/v3/app/installations/{victim_org}") == []
    assert not Installation.objects.exists()


def test_an_app_that_does_not_ask_the_installer_to_sign_in_is_refused_with_what_to_set(
    tenant: Tenant, github_connector: Connector, github: GitHubFake
) -> None:
    github.oauth_on_install = False  # the App's "Request user authorization" is off
    started = tenant.api.install(GITHUB_UID)

    response = walk(Client(), started)

    assert_refused_page(response, f"{github_connector.name} is not set up to finish this yet")
    page = response.content.decode()
    assert "Request user authorization (OAuth) during installation" in page
    assert "client secret" in page
    assert_flow_attached_nothing(started)
    assert github.calls_to("GET", "/api/v3/app/installations/42") == []
    assert not Installation.objects.exists()


def test_a_connector_without_the_apps_client_secret_cannot_install(
    tenant: Tenant,
    make_linked_connector: Callable[..., Connector],
    github: GitHubFake,
    rsa_private_pem: str,
) -> None:
    make_linked_connector(
        tenant,
        uid=GITHUB_UID,
        type="github",
        client_id=github.client_id,
        secrets={"private_key": rsa_private_pem},  # the app key, but no client secret
        config={
            "appId": "123456",
            "appSlug": "acme-bot",
            "webBaseUrl": github.url,
            "apiBaseUrl": github.api_url,
        },
    )
    started = tenant.api.install(GITHUB_UID)

    response = walk(Client(), started)

    assert_refused_page(response, "is not set up to finish this yet")
    assert "client secret" in response.content.decode()
    assert github.calls_to("POST", "/login/oauth/access_token") == []
    assert github.calls_to("GET", "/api/v3/app/installations/42") == []
    assert_flow_attached_nothing(started)
    assert not Installation.objects.exists()


@pytest.fixture
def triggered(github_connector: Connector) -> Connector:
    github_connector.triggers_enabled = True
    github_connector.seal("trigger_signing_secret", WEBHOOK_SECRET)
    github_connector.allowed_return_origins = ["https://app.example.com"]
    github_connector.save()
    return github_connector


def post_webhook(connector: Connector, body: bytes, headers: dict[str, str]) -> Any:
    return Client().generic(
        "POST",
        f"/connect/trigger/{connector.public_id}",
        data=body,
        content_type="application/json",
        headers=headers,
    )


def test_a_requested_install_attaches_nothing_until_github_announces_the_approval(
    tenant: Tenant, triggered: Connector, github: GitHubFake
) -> None:
    github.install_outcome = "request"  # a member asks an owner to approve
    client = Client()
    started = tenant.api.install(GITHUB_UID, returnUrl="https://app.example.com/done")
    _, provider_url = install_page(client, started["url"])
    query = at_provider(provider_url)

    response = callback(client, query)

    assert response.status_code == 200, response.content
    page = response.content.decode()
    assert "Waiting for an owner&#x27;s approval" in page
    assert "An owner of the organization must approve the request on GitHub" in page
    assert f"https://app.example.com/done?request={started['request']}&amp;status=pending" in page
    assert not Installation.objects.exists()
    request = flow_request(started)
    assert (request.outcome, request.error, request.installation) == (
        "pending",
        "approval_pending",
        None,
    )
    assert request.consumed_at is not None
    pending = tenant.api.result(started["verifier"])
    assert error_code(pending) == "authorization_pending"
    assert "approve" in pending.json()["error"]["message"]
    # Nothing was asked of GitHub: there is no installation to ask about yet.
    assert github.calls_to("POST", "/login/oauth/access_token") == []
    assert_refused_page(callback(client, query), "This link was already used")

    # An owner approves; GitHub announces the installation to the app's webhook. A forged
    # announcement comes first and makes nothing.
    github.add_installation(
        "43", login="acme-labs", repositories=["lab"], permissions={"metadata": "read"}
    )
    body, headers = github.installation_created_webhook(
        "43", secret=WEBHOOK_SECRET, delivery="7a1e3c10-0000-11ef-8000-000000000043"
    )
    forged = post_webhook(triggered, body, {**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64})
    assert forged.status_code == 401, forged.content
    assert not Installation.objects.exists()

    announced = post_webhook(triggered, body, headers)

    assert announced.status_code == 200, announced.content
    installation = Installation.objects.get(connector=triggered)
    assert (installation.tenant_id, installation.display_name, installation.status) == (
        "43",
        "acme-labs",
        "active",
    )
    assert installation.is_default
    assert installation.metadata["accountType"] == "Organization"
    assert AuditEvent.objects.filter(
        type="installation.added", targets__installationId=installation.public_id
    ).exists()
    # GitHub redelivering the same delivery changes nothing.
    assert post_webhook(triggered, body, headers).json() == {"ok": True, "duplicate": True}
    assert Installation.objects.count() == 1
    # The approving owner comes back without our state: a plain page, nothing attached, and
    # their code is never redeemed.
    calls = len(github.calls)
    approver = callback(
        Client(),
        urlencode(
            {"code": github.code_issued(), "installation_id": "43", "setup_action": "install"}
        ),
    )
    assert approver.status_code == 200, approver.content
    assert "Installed on GitHub" in approver.content.decode()
    assert len(github.calls) == calls
    assert flow_request(started).installation is None


def test_an_update_redirect_refreshes_only_what_exists_and_attaches_nothing(
    tenant: Tenant, github_connector: Connector, github: GitHubFake, victim_org: str
) -> None:
    assert walk(Client(), tenant.api.install(GITHUB_UID)).status_code == 200
    ours = Installation.objects.get(connector=github_connector, tenant_id="42")
    github.installations["42"]["account"]["login"] = "acme-renamed"
    github.install_outcome = "update"  # "Redirect on update": no state, no code
    app_url = f"{github.url}/apps/acme-bot/installations/new"

    updated = callback(Client(), at_provider(app_url))

    assert updated.status_code == 200, updated.content
    assert "Your changes are saved on GitHub" in updated.content.decode()
    ours.refresh_from_db()
    assert ours.display_name == "acme-renamed"
    assert ours.metadata["setupAction"] == "update"
    assert len(github.calls_to("GET", "/api/v3/app/installations/42")) == 2

    # The same redirect naming an installation we do not have (another organization's)
    # makes nothing, and asks GitHub nothing.
    github.next_installation = victim_org
    stranger = callback(Client(), at_provider(app_url))

    assert stranger.status_code == 200, stranger.content
    assert list(Installation.objects.values_list("tenant_id", flat=True)) == ["42"]
    assert github.calls_to("GET", f"/api/v3/app/installations/{victim_org}") == []
    # Hammering the page does not hammer GitHub: one refresh a minute per installation.
    github.next_installation = "42"
    for _ in range(3):
        assert callback(Client(), at_provider(app_url)).status_code == 200
    assert len(github.calls_to("GET", "/api/v3/app/installations/42")) == 2


def test_an_update_redirect_does_not_revive_an_uninstalled_installation(
    tenant: Tenant, github_connector: Connector, github: GitHubFake
) -> None:
    assert walk(Client(), tenant.api.install(GITHUB_UID)).status_code == 200
    Installation.objects.filter(tenant_id="42").update(status="revoked", is_default=False)
    github.install_outcome = "update"

    response = callback(Client(), at_provider(f"{github.url}/apps/acme-bot/installations/new"))

    assert response.status_code == 200
    assert Installation.objects.get(tenant_id="42").status == "revoked"
    assert len(github.calls_to("GET", "/api/v3/app/installations/42")) == 1  # the install's


# Microsoft: the tenant is the signed id_token's, never ?tenant= ---------------------------------


def entra_install(tenant: Tenant, entra: MicrosoftFake, home: str) -> Any:
    """An honest admin consent by an administrator of ``home``."""
    entra.home_tenant = home
    return walk(Client(), tenant.api.install(MICROSOFT_UID))


def test_a_tenant_query_parameter_cannot_name_the_victim_tenant(
    tenant: Tenant, microsoft_connector: Connector, entra: MicrosoftFake
) -> None:
    assert entra_install(tenant, entra, VICTIM_TENANT).status_code == 200
    victim = Installation.objects.get(tenant_id=VICTIM_TENANT)
    before = snapshot(victim)
    entra.home_tenant = CONTOSO  # the attacker administers CONTOSO
    client = Client()
    attacker = tenant.api.install(MICROSOFT_UID)
    _, provider_url = install_page(client, attacker["url"])
    query = at_provider(provider_url)

    response = callback(
        client, with_params(query, tenant=VICTIM_TENANT, admin_consent="True", tid=VICTIM_TENANT)
    )

    # The attacker installed into the tenant they administer, and only that one.
    assert response.status_code == 200, response.content
    request = flow_request(attacker)
    assert request.installation is not None
    assert request.installation.tenant_id == CONTOSO
    assert snapshot(victim) == before
    assert sorted(Installation.objects.values_list("tenant_id", flat=True)) == sorted(
        [CONTOSO, VICTIM_TENANT]
    )


def test_the_old_admin_consent_answer_without_a_code_attaches_nothing(
    tenant: Tenant, microsoft_connector: Connector, entra: MicrosoftFake
) -> None:
    assert entra_install(tenant, entra, VICTIM_TENANT).status_code == 200
    victim = Installation.objects.get(tenant_id=VICTIM_TENANT)
    before = snapshot(victim)
    client = Client()
    attacker = tenant.api.install(MICROSOFT_UID)
    _, provider_url = install_page(client, attacker["url"])
    state = query_of(provider_url)["state"]

    response = callback(
        client,
        urlencode({"admin_consent": "True", "tenant": VICTIM_TENANT, "state": state}),
    )

    assert_refused_page(response, NOT_CONFIRMED)
    assert_flow_attached_nothing(attacker)
    assert snapshot(victim) == before
    assert Installation.objects.count() == 1


FORGERIES = [
    pytest.param({"signing": "unsigned"}, id="unsigned"),
    pytest.param({"signing": "foreign"}, id="signed-with-another-key"),
    pytest.param({"claims": {"aud": "another-app"}}, id="for-another-app"),
    pytest.param({"claims": {"exp": int(time.time()) - 3600}}, id="expired"),
    pytest.param(
        {"claims": {"iss": f"https://login.evil.example/{VICTIM_TENANT}/v2.0"}},
        id="issuer-elsewhere",
    ),
    # The tid of the victim, under the attacker's genuine issuer and signature.
    pytest.param({"claims": {"tid": VICTIM_TENANT}}, id="tid-not-its-issuers"),
]


@pytest.mark.parametrize("forgery", FORGERIES)
def test_an_install_whose_id_token_does_not_verify_attaches_nothing(
    tenant: Tenant, microsoft_connector: Connector, entra: MicrosoftFake, forgery: dict[str, Any]
) -> None:
    assert entra_install(tenant, entra, VICTIM_TENANT).status_code == 200
    victim = Installation.objects.get(tenant_id=VICTIM_TENANT)
    before = snapshot(victim)
    entra.home_tenant = CONTOSO
    entra.id_token_signing = forgery.get("signing", "genuine")
    entra.id_token_claims = forgery.get("claims", {})
    started = tenant.api.install(MICROSOFT_UID)

    response = walk(Client(), started)

    assert_refused_page(response, NOT_CONFIRMED)
    assert_flow_attached_nothing(started)
    assert snapshot(victim) == before
    assert list(Installation.objects.values_list("tenant_id", flat=True)) == [VICTIM_TENANT]


def test_a_user_consent_whose_id_token_does_not_verify_stores_no_grant(
    tenant: Tenant, microsoft_connector: Connector, entra: MicrosoftFake
) -> None:
    assert entra_install(tenant, entra, CONTOSO).status_code == 200
    entra.id_token_signing = "unsigned"
    entra.id_token_claims = {"tid": VICTIM_TENANT, "iss": f"{entra.url}/{VICTIM_TENANT}/v2.0"}
    started = tenant.api.consent(MICROSOFT_UID, "u-1")

    response = walk(Client(), started)

    assert_refused_page(response, NOT_CONFIRMED)
    assert_flow_attached_nothing(started, chosen_at_start=Installation.objects.get())
    assert not Grant.objects.exists()
    assert list(Installation.objects.values_list("tenant_id", flat=True)) == [CONTOSO]


# A flow started for one tenant completes only into that one ------------------------------------


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    yield from running(SlackFake(**fake_kwargs("1111.2222")))  # type: ignore[misc]


@pytest.fixture
def slack_connector(
    tenant: Tenant, make_linked_connector: Callable[..., Connector], slack: SlackFake
) -> Connector:
    return make_linked_connector(
        tenant,
        uid="slack/acme",
        type="slack",
        client_id=slack.client_id,
        secrets={"client_secret": slack.client_secret},
        config={"baseUrl": slack.url},
        default_scopes={"app": ["chat:write"], "user": ["search:read"]},
    )


def test_a_consent_for_one_workspace_cannot_land_in_another(
    tenant: Tenant, slack_connector: Connector, slack: SlackFake
) -> None:
    assert walk(Client(), tenant.api.install("slack/acme")).status_code == 200
    first = Installation.objects.get(connector=slack_connector)
    slack.team = {"id": "T0OTHER00", "name": "Another workspace"}
    started = tenant.api.consent("slack/acme", "u-1", installationId=first.public_id)

    response = walk(Client(), started)

    assert_refused_page(response, "This link is for another organization")
    assert_flow_attached_nothing(started, chosen_at_start=first)
    assert not Grant.objects.filter(subject_type="user").exists()
    assert list(Installation.objects.values_list("tenant_id", flat=True)) == [first.tenant_id]


def test_an_install_for_one_workspace_cannot_land_in_another(
    tenant: Tenant, slack_connector: Connector, slack: SlackFake
) -> None:
    started = tenant.api.install("slack/acme", tenantId="T0ASKEDFOR")

    response = walk(Client(), started)

    assert_refused_page(response, "This link is for another organization")
    assert_flow_attached_nothing(started)
    assert not Installation.objects.exists()
    assert not Grant.objects.exists()


def test_a_linear_consent_whose_workspace_linear_does_not_name_attaches_nowhere(
    tenant: Tenant, make_linked_connector: Callable[..., Connector]
) -> None:
    with LinearFake(**fake_kwargs("2b9e0c4d6f8a1b3c5d7e9f0a")) as linear:
        make_linked_connector(
            tenant,
            uid="linear/acme",
            type="linear",
            client_id=linear.client_id,
            secrets={"client_secret": linear.client_secret},
            config={"baseUrl": linear.url, "apiBaseUrl": linear.api_url},
            default_scopes={"app": ["read"], "user": ["read"]},
        )
        assert walk(Client(), tenant.api.install("linear/acme")).status_code == 200
        linear.graphql_refuses = True
        started = tenant.api.consent("linear/acme", "u-1")

        response = walk(Client(), started)

        assert linear.bugs == []
    assert_refused_page(response, NOT_CONFIRMED)
    organization = Installation.objects.get()
    assert_flow_attached_nothing(started, chosen_at_start=organization)
    assert not Grant.objects.filter(subject_type="user").exists()


# RFC 9207: the authorization response names its issuer -----------------------------------------


@pytest.fixture
def oauth_server(oauth_server: OAuthFake) -> OAuthFake:
    oauth_server.add_client("acme", method="client_secret_basic", secret="s3cret")
    oauth_server.register_redirect("acme", callback_url())
    return oauth_server


def discovered_connector(
    tenant: Tenant,
    make_linked_connector: Callable[..., Connector],
    server: OAuthFake,
) -> Connector:
    """A custom OAuth connector configured the way an admin does: by discovery."""
    return make_linked_connector(
        tenant,
        uid="oauth/acme",
        type="oauth",
        client_id="acme",
        secrets={"client_secret": "s3cret"},
        config=connector_discover(issuer=server.issuer),
        default_scopes={"user": ["read"]},
    )


def code_exchanges(server: OAuthFake) -> int:
    return server.calls.get("authorization_code", 0)


@pytest.mark.parametrize("deny", [False, True], ids=["code", "error"])
def test_an_answer_naming_another_issuer_is_refused(
    tenant: Tenant,
    make_linked_connector: Callable[..., Connector],
    oauth_server: OAuthFake,
    deny: bool,
) -> None:
    """The mix-up attack: the response comes back naming an issuer the connector is not
    configured for; the code (or error) is not ours to act on."""
    connector = discovered_connector(tenant, make_linked_connector, oauth_server)
    assert connector.config["issuer"] == oauth_server.issuer
    oauth_server.iss_sent = "https://attacker.example"
    oauth_server.deny = deny
    started = tenant.api.consent("oauth/acme", "u-1")

    response = walk(Client(), started)

    assert_refused_page(response, "This answer came from the wrong server")
    assert code_exchanges(oauth_server) == 0
    assert_flow_attached_nothing(started, chosen_at_start=Installation.objects.get())
    assert not Grant.objects.exists()


def test_an_answer_without_the_issuer_it_promised_is_refused(
    tenant: Tenant,
    make_linked_connector: Callable[..., Connector],
    oauth_server: OAuthFake,
) -> None:
    oauth_server.iss_supported = True  # the metadata promises iss on every response ...
    connector = discovered_connector(tenant, make_linked_connector, oauth_server)
    assert connector.config["authorizationResponseIssParameterSupported"] is True
    oauth_server.iss_sent = ""  # ... and this response has none
    started = tenant.api.consent("oauth/acme", "u-1")

    response = walk(Client(), started)

    assert_refused_page(response, "This answer came from the wrong server")
    assert code_exchanges(oauth_server) == 0
    assert_flow_attached_nothing(started, chosen_at_start=Installation.objects.get())
    assert not Grant.objects.exists()

    # The same server naming itself, as promised, completes.
    oauth_server.iss_sent = None
    honest = tenant.api.consent("oauth/acme", "u-1")
    assert walk(Client(), honest).status_code == 200
    assert Grant.objects.filter(subject_type="user", subject_id="u-1").count() == 1
