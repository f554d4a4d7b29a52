"""The fakes are as strict as the providers: each request here differs from an accepted one in
exactly one way (content type, grant type, redirect_uri, PKCE verifier, client authentication)
and must be refused, so a driver that got any of these wrong could not pass its tests. Every
recorded payload names the documentation page it came from."""

import base64
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import jwt
import pytest
import requests

from tests.fakes.base import PAYLOADS, FakeProvider, pkce_s256
from tests.fakes.discord import DiscordFake
from tests.fakes.github import GitHubFake
from tests.fakes.linear import LinearFake
from tests.fakes.microsoft import MicrosoftFake
from tests.fakes.salesforce import SalesforceFake
from tests.fakes.slack import SlackFake
from tests.fixtures import WEBHOOKS
from tests.providers.conftest import fake_kwargs, public_pem
from tests.providers.flow import callback_url

VERIFIER = "v" * 43
#: What each fake's authorize page remembers with a code, for codes issued directly.
EXTRAS: dict[str, Any] = {
    "tenant": "9122040d-6c67-4c5b-b112-36a304b66dad",
    "actor": "user",
    "user_scope": "",
    "team": {"id": "T1", "name": "One"},
    "enterprise": None,
}


@dataclass(frozen=True)
class Kind:
    """How one provider's token endpoint is reached, and how it says no."""

    make: Callable[[str], FakeProvider]
    token_path: str
    pkce: bool
    post_only: bool
    #: Slack and GitHub answer refusals with HTTP 200 and an error field.
    errors_with_200: bool = False


KINDS = {
    "slack": Kind(
        lambda _: SlackFake(**fake_kwargs("s.1")), "/api/oauth.v2.access", False, False, True
    ),
    "github": Kind(
        lambda pem: GitHubFake(
            app_id="1", app_slug="a", public_key_pem=public_pem(pem), **fake_kwargs("Iv1.x")
        ),
        "/login/oauth/access_token",
        True,
        True,
        True,
    ),
    "linear": Kind(lambda _: LinearFake(**fake_kwargs("lin")), "/api/oauth/token", True, False),
    "microsoft": Kind(
        lambda pem: MicrosoftFake(signing_key_pem=pem, **fake_kwargs("ms")),
        "/organizations/oauth2/v2.0/token",
        True,
        True,
    ),
    "salesforce": Kind(
        lambda _: SalesforceFake(**fake_kwargs("sf")), "/services/oauth2/token", True, True
    ),
    "discord": Kind(
        lambda _: DiscordFake(bot_token="b", **fake_kwargs("dc")), "/api/oauth2/token", False, False
    ),
}


@pytest.fixture(params=sorted(KINDS))
def kind(
    request: pytest.FixtureRequest, rsa_private_pem: str
) -> Iterator[tuple[Kind, FakeProvider]]:
    described = KINDS[request.param]
    with described.make(rsa_private_pem) as fake:
        yield described, fake
    assert fake.bugs == [], fake.bugs


def exchange(
    kind: Kind, fake: FakeProvider, *, json_body: bool = False, basic: bool = False, **changes: Any
) -> requests.Response:
    """A code exchange the fake accepts, but for ``changes`` (None drops a field)."""
    challenge = pkce_s256(VERIFIER) if kind.pkce else ""
    code = fake.code_issued(challenge=challenge, scope="read", **EXTRAS)
    form: dict[str, Any] = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": callback_url(),
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
    }
    if kind.pkce:
        form["code_verifier"] = VERIFIER
    form.update(changes)
    form = {k: v for k, v in form.items() if v is not None}
    headers = {"Accept": "application/json"}
    if basic:
        # RFC 6749 2.3.1: both halves form-encoded before Basic.
        credentials = f"{quote_plus(form.pop('client_id'))}:{quote_plus(form.pop('client_secret'))}"
        headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
    url = fake.url + kind.token_path
    if json_body:
        return requests.post(url, json=form, headers=headers, timeout=10)
    return requests.post(url, data=form, headers=headers, timeout=10)


def refused(kind: Kind, response: requests.Response) -> bool:
    body = response.json()
    if kind.errors_with_200:
        return response.status_code == 200 and "access_token" not in body and bool(body["error"])
    return response.status_code in (400, 401) and bool(body["error"])


def test_the_accepted_exchange_is_accepted(kind: tuple[Kind, FakeProvider]) -> None:
    described, fake = kind
    response = exchange(described, fake)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.get("access_token") or body.get("authed_user", {}).get("access_token")
    assert fake.rejections == []


WRONG_THINGS: list[tuple[str, dict[str, Any]]] = [
    ("json body", {"json_body": True}),
    ("unknown grant_type", {"grant_type": "password"}),
    ("another redirect_uri", {"redirect_uri": "https://evil.example/connect/callback"}),
    ("no redirect_uri", {"redirect_uri": None}),
    ("wrong client secret", {"client_secret": "guess"}),
    ("a code used before", {"code": "code-unknown"}),
]


@pytest.mark.parametrize(
    ("kind", "case", "change"),
    [
        (name, case, change)
        for name in sorted(KINDS)
        for case, change in WRONG_THINGS
        # GitHub does not require redirect_uri at the exchange: not a thing it refuses.
        if not (name == "github" and case == "no redirect_uri")
    ],
    indirect=["kind"],
)
def test_one_thing_wrong_is_refused(
    kind: tuple[Kind, FakeProvider], case: str, change: dict[str, Any]
) -> None:
    described, fake = kind
    response = exchange(described, fake, **change)
    assert refused(described, response), (case, response.status_code, response.text)
    assert len(fake.rejections) == 1, fake.rejections


@pytest.mark.parametrize("kind", [n for n in sorted(KINDS) if KINDS[n].pkce], indirect=True)
def test_a_wrong_pkce_verifier_is_refused(kind: tuple[Kind, FakeProvider]) -> None:
    described, fake = kind
    assert refused(described, exchange(described, fake, code_verifier="w" * 43))
    assert refused(described, exchange(described, fake, code_verifier=None))


def test_basic_authentication_is_refused_where_only_the_body_is_documented(
    kind: tuple[Kind, FakeProvider],
) -> None:
    described, fake = kind
    response = exchange(described, fake, basic=True)
    if described.post_only:
        assert refused(described, response), response.text
    else:
        assert response.status_code == 200, response.text


def test_two_client_authentication_methods_at_once_are_refused(
    kind: tuple[Kind, FakeProvider],
) -> None:
    described, fake = kind
    pair = f"{quote_plus(fake.client_id)}:{quote_plus(fake.client_secret)}"
    credentials = base64.b64encode(pair.encode()).decode()
    challenge = pkce_s256(VERIFIER) if described.pkce else ""
    form = {
        "grant_type": "authorization_code",
        "code": fake.code_issued(challenge=challenge, scope="read", **EXTRAS),
        "redirect_uri": callback_url(),
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        **({"code_verifier": VERIFIER} if described.pkce else {}),
    }
    response = requests.post(
        fake.url + described.token_path,
        data=form,
        headers={"Authorization": f"Basic {credentials}", "Accept": "application/json"},
        timeout=10,
    )
    assert refused(described, response), response.text


@pytest.fixture
def github(rsa_private_pem: str) -> Iterator[GitHubFake]:
    fake = GitHubFake(
        app_id="123", app_slug="a", public_key_pem=public_pem(rsa_private_pem), **fake_kwargs("x")
    )
    fake.add_installation("42", login="acme", repositories=["api"], permissions={})
    with fake:
        yield fake


@pytest.mark.parametrize(
    ("case", "claims", "status"),
    [
        ("accepted", {}, 200),
        ("another app", {"iss": "999"}, 401),
        ("eleven minutes", {"exp": 660}, 401),
        ("issued in the future", {"iat": 120, "exp": 300}, 401),
        ("expired", {"iat": -700, "exp": -100}, 401),
    ],
)
def test_github_checks_the_app_jwt(
    github: GitHubFake, rsa_private_pem: str, case: str, claims: dict[str, int], status: int
) -> None:
    now = int(time.time())
    body = {"iss": claims.get("iss", "123")}
    body["iat"] = now + claims.get("iat", -60)  # type: ignore[assignment]
    body["exp"] = now + claims.get("exp", 480)  # type: ignore[assignment]
    token = jwt.encode(body, rsa_private_pem, algorithm="RS256")

    response = requests.get(
        f"{github.api_url}/app/installations/42",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )

    assert response.status_code == status, (case, response.text)


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("a member", 200),
        ("no token", 401),
        ("a revoked token", 401),
        ("not a member", 404),
        ("no such installation", 404),
    ],
)
def test_github_lists_an_installation_only_to_its_members(
    github: GitHubFake, case: str, status: int
) -> None:
    github.add_installation(
        "77", login="other", repositories=["x"], permissions={}, members=["someone-else"]
    )
    access, _ = github.grant_tokens(
        access_prefix="ghu_", refresh_prefix="ghr_", user=dict(github.user)
    )
    if case == "a revoked token":
        github.revoke_token(access)
    installation = {"not a member": "77", "no such installation": "78"}.get(case, "42")
    headers = {} if case == "no token" else {"Authorization": f"Bearer {access}"}

    response = requests.get(
        f"{github.api_url}/user/installations/{installation}/repositories",
        params={"per_page": "1"},
        headers=headers,
        timeout=10,
    )

    assert response.status_code == status, (case, response.text)
    if status == 200:
        assert response.json()["total_count"] == 1
        assert [r["full_name"] for r in response.json()["repositories"]] == ["acme/api"]


def test_every_recorded_webhook_names_its_documentation_page() -> None:
    files = sorted(WEBHOOKS.glob("*/*.json"))
    assert {f.parent.name for f in files} == {
        "slack",
        "github",
        "linear",
        "microsoft",
        "discord",
        "standard-webhooks",
    }
    for path in files:
        source = json.loads(path.read_text())["_source"]
        assert source.startswith("https://"), path


def test_every_recorded_payload_names_its_documentation_page() -> None:
    files = sorted(PAYLOADS.glob("*/*.json"))
    assert {f.parent.name for f in files} == {
        "slack",
        "github",
        "linear",
        "microsoft",
        "salesforce",
        "discord",
        "oauth",
    }
    for path in files:
        source = json.loads(path.read_text())["_source"]
        assert source.startswith("https://"), path
