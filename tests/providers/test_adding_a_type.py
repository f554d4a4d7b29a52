"""Adding a connector type is one driver module plus one registry line.

The ``example`` type below is the whole of such a module; the fixture adds the registry line
(and applies the check-constraint change ``makemigrations`` writes for a new type). Nothing
else is edited, yet the registry, the configuration checks, the admin's form and the runtime
API's connector metadata all know the type.
"""

import json
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import connection, models
from django.test import Client
from django.urls import reverse

from connect.models import Connector, Project, ProjectLink, Role, Team
from connect.providers import PROVIDERS, get_provider, provider_for_wire
from connect.providers.base import Provider, ProviderCredentials, TokenRequest, TokenSet
from connect.providers.schema import GRANT_TOKENS, ConfigField, ConfigInvalid, SecretField
from connect.services.connectors import connector_save
from tests.admin.pages import form_data, help_text
from tests.api.wire import APP, assert_error, post_json

# --- the module: connect/providers/example.py ------------------------------------------------


class ExampleProvider(Provider):
    """A service that hands out a static token per connector (the smallest useful driver)."""

    key = "example"
    label = "Example"
    client_id_data_name = ""
    secrets = (SecretField("api_key", "Example token", data_name="token", required=True),)
    config_fields = (
        ConfigField(
            "apiBaseUrl",
            "url",
            "API base URL",
            help="Default https://api.example.com.",
            receives=frozenset({"api_key", GRANT_TOKENS}),
        ),
        ConfigField("region", "choice", "Region", choices=("eu", "us"), default="eu"),
    )
    single_account = True
    browser_flow = False
    subject_types = frozenset({"app"})
    static_token = True
    mints_app_tokens = True
    setup_links = {"Example dashboard": "https://example.com/settings/tokens"}

    def api_base_url(self, config: Mapping[str, Any]) -> str:
        return str(config.get("apiBaseUrl") or "https://api.example.com")

    def mint_app_token(
        self, credentials: ProviderCredentials, request: TokenRequest, *, now: datetime
    ) -> TokenSet:
        return TokenSet(access_token=credentials.api_key, expires_at=now + timedelta(hours=1))


# --- the registry line, and the migration makemigrations would write ---------------------------

TYPE_CONSTRAINT = "connect_connector_type_valid"


def type_constraint() -> models.CheckConstraint:
    return models.CheckConstraint(
        condition=models.Q(type__in=list(PROVIDERS)), name=TYPE_CONSTRAINT
    )


@pytest.fixture
def example_type(db: None, monkeypatch: pytest.MonkeyPatch) -> Provider:
    before = type_constraint()
    monkeypatch.setitem(PROVIDERS, "example", ExampleProvider())
    # What a restart after the generated migration amounts to: the model's check constraint
    # (read from the registry when the model class is built) and the table's name the type.
    after = type_constraint()
    constraints = [c for c in Connector._meta.constraints if c.name != TYPE_CONSTRAINT]
    monkeypatch.setattr(Connector._meta, "constraints", [*constraints, after])
    with connection.schema_editor(atomic=False) as editor:  # rolled back with the test
        editor.remove_constraint(Connector, before)
        editor.add_constraint(Connector, after)
    return PROVIDERS["example"]


@pytest.fixture
def browser(make_member: Callable[..., User], make_team: Callable[..., Team]) -> Client:
    team = make_team(slug="acme")
    client = Client()
    client.force_login(make_member(team, Role.MEMBER))
    return client


def test_the_registry_knows_the_new_type(example_type: Provider) -> None:
    assert get_provider("example") is example_type
    assert provider_for_wire("example") is example_type
    assert example_type.wire_name == "example"
    assert example_type.url_config_keys == {"apiBaseUrl": frozenset({"api_key", GRANT_TOKENS})}
    assert example_type.from_data({"token": "t-1", "region": "us"}).secrets == {"api_key": "t-1"}
    assert example_type.to_data("", {"region": "us"}) == {"region": "us"}


def test_its_configuration_is_checked_on_every_save(
    example_type: Provider, make_team: Callable[..., Team]
) -> None:
    with pytest.raises(ConfigInvalid) as refused:
        example_type.validate_config({"apiBaseUrl": "javascript:alert(1)", "region": "mars"})
    assert set(refused.value.errors) == {"apiBaseUrl", "region"}

    connector = Connector(
        team=make_team(),
        uid="example/one",
        type="example",
        service="example",
        name="One",
        config={"region": "mars"},
    )
    with pytest.raises(ValidationError) as invalid:
        connector_save(connector=connector, actor="test")
    assert invalid.value.message_dict["config"] == ["region must be one of eu, us."]

    connector.config = {"region": "us", "apiBaseUrl": "https://api.example.eu"}
    connector_save(connector=connector, actor="test")
    assert connector.is_single_account
    assert connector.installations.get().is_default


def test_the_admin_form_offers_and_saves_the_new_type(
    example_type: Provider, browser: Client
) -> None:
    add_url = reverse("admin:connect_connector_add")
    page = browser.get(f"{add_url}?type=example")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'href="?type=example">Example</a>' in html
    assert "Example settings" in html
    assert "Example token" in html
    # No client id, no browser-flow fields, no triggers: the type declares none of them.
    assert 'name="client_id"' not in html
    assert 'name="allowed_return_origins"' not in html
    assert 'name="triggers_enabled"' not in html
    assert help_text(page, "config") == (
        "apiBaseUrl: Default https://api.example.com.; region: Region"
    )

    data = form_data(page, "connector_form")
    team = Team.objects.get(slug="acme")
    data.update(
        team=[str(team.pk)],
        type=["example"],
        uid=["example/acme"],
        service=["example"],
        name=["Acme example"],
        api_key=["ex-token-1"],
        config=[json.dumps({"apiBaseUrl": "data:,x"})],
    )
    refused = browser.post(f"{add_url}?type=example", data)
    assert refused.status_code == 200
    assert "apiBaseUrl must be" in refused.content.decode()
    assert not Connector.objects.filter(uid="example/acme").exists()

    data["config"] = [json.dumps({"apiBaseUrl": "https://api.example.eu", "region": "eu"})]
    saved = browser.post(f"{add_url}?type=example", data)
    assert saved.status_code == 302, saved.context and saved.context["errors"]
    connector = Connector.objects.get(uid="example/acme")
    assert connector.get_type_display() == "Example"
    assert connector.reveal("api_key") == "ex-token-1"
    assert connector.config == {"apiBaseUrl": "https://api.example.eu", "region": "eu"}


def test_a_deployment_gets_a_token_from_the_new_type(
    example_type: Provider,
    client: Client,
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., ProjectLink],
    make_credential: Callable[..., str],
) -> None:
    team = make_team()
    project = make_project(team)
    connector = make_connector(
        team, uid="example/acme", type="example", secrets={"api_key": "ex-token-2"}
    )
    make_link(connector, project, ["production"])
    auth = {"HTTP_AUTHORIZATION": f"Bearer {make_credential(project)}"}

    response = post_json(client, "/v1/connect/token/example%2Facme", APP, **auth)

    assert response.status_code == 200, response.content
    assert response.json()["token"] == "ex-token-2"
    metadata = client.get("/v1/connect/connectors/example%2Facme", **auth).json()
    assert metadata["type"] == "example"
    assert metadata["supportedSubjectTypes"] == ["app"]
    # The type declares app subjects only: a user subject is refused, not answered.
    user = {"subject": {"type": "user", "id": "u-1"}}
    refused = post_json(client, "/v1/connect/token/example%2Facme", user, **auth)
    assert_error(refused, 400, "invalid_request")
