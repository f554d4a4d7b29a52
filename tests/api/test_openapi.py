"""The OpenAPI document: valid 3.1, every API route in it, errors in the envelope everywhere."""

import io
import re
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

API_ROUTES = re.compile(r"^/(v1|v2|\.well-known|connect/trigger|connect/connectors)/")
#: The document and its page describe the API; they are not part of it.
NOT_OPERATIONS = {"/v1/openapi.json", "/v1/docs"}
METHODS = {"get", "post", "put", "patch", "delete"}


def _routes(patterns: list[Any], prefix: str = "") -> list[str]:
    found: list[str] = []
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            found += _routes(entry.url_patterns, route)
        elif isinstance(entry, URLPattern) and route.startswith("^"):
            # A regex route (the proxy's): its named groups are the parameters.
            found.append("/" + re.sub(r"\(\?P<(\w+)>.*\)", r"{\1}", route.strip("^$")))
        elif isinstance(entry, URLPattern):
            found.append("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route))
    return found


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    response = Client().get("/v1/openapi.json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    return response.json()


def test_the_document_validates_without_a_warning() -> None:
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null", stdout=out)


def test_it_is_openapi_3_1(schema: dict[str, Any]) -> None:
    assert schema["openapi"] == "3.1.0"
    assert schema["info"]["title"] == "Connect API"


def test_every_api_route_is_in_the_document(schema: dict[str, Any]) -> None:
    routes = {r for r in _routes(get_resolver().url_patterns) if API_ROUTES.match(r)}
    routes -= NOT_OPERATIONS
    assert routes, "no API route found: the walk over the URLconf is broken"
    assert routes - set(schema["paths"]) == set()
    assert set(schema["paths"]) - routes == set(), "the document names a route that is gone"


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def test_authenticated_operations_declare_the_common_errors_in_the_envelope(
    schema: dict[str, Any],
) -> None:
    authenticated = [op for op in _operations(schema) if op[2].get("security")]
    assert len(authenticated) >= 10
    for path, method, operation in authenticated:
        for status in ("400", "401", "403", "404", "429"):
            response = operation["responses"].get(status)
            assert response, f"{method.upper()} {path} does not declare {status}"
            content = response["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/ErrorEnvelope"}
            (example,) = content["examples"].values()
            assert set(example["value"]["error"]) == {"code", "message"}
        assert "Retry-After" in operation["responses"]["429"]["headers"]


def test_every_operation_has_an_id_a_summary_and_a_success_schema(
    schema: dict[str, Any],
) -> None:
    ids = [op["operationId"] for _, _, op in _operations(schema)]
    assert len(ids) == len(set(ids))
    for path, method, operation in _operations(schema):
        assert operation.get("summary"), f"{method.upper()} {path} has no summary"
        # The proxy answers whatever the provider did: its one response is the default.
        successes = [s for s in operation["responses"] if s.startswith("2") or s == "default"]
        assert successes, f"{method.upper()} {path} declares no success"
        for status in successes:
            if status != "204":
                assert operation["responses"][status].get("content"), (method, path, status)


def test_runtime_operations_carry_examples(schema: dict[str, Any]) -> None:
    for path, method, operation in _operations(schema):
        if "runtime" not in operation.get("tags", []):
            continue
        success = next(
            (s for s in operation["responses"] if s.startswith("2")), "default"
        )
        if "application/json" not in operation["responses"][success]["content"]:
            continue  # the proxy's: the provider's own answer
        content = operation["responses"][success]["content"]["application/json"]
        assert content.get("examples"), f"{method.upper()} {path}: no response example"


def test_the_error_envelope_is_a_component(schema: dict[str, Any]) -> None:
    envelope = schema["components"]["schemas"]["ErrorEnvelope"]
    assert envelope["required"] == ["error"]
    error = schema["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"code", "message"}


def test_the_connector_type_enum_is_the_registry(schema: dict[str, Any]) -> None:
    from connect.providers import PROVIDERS

    enum = schema["components"]["schemas"]["ConnectorTypeEnum"]["enum"]
    assert sorted(enum) == sorted(p.wire_name for p in PROVIDERS.values())
