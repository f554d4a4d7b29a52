"""/v1/docs in Chromium: Swagger UI renders every operation of /v1/openapi.json from our own
origin (no CDN), under the same Content-Security-Policy as every page, with no violation."""

from typing import Any

import pytest
import requests
from playwright.sync_api import Page, Request, expect

from tests.browser.test_csp_browser import Violations

pytestmark = pytest.mark.browser


def test_docs_render_every_operation_under_the_csp(live_server: Any, page: Page) -> None:
    violations = Violations(page)
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(_origin_of(request)))
    schema = requests.get(f"{live_server.url}/v1/openapi.json", timeout=10).json()
    operations = sum(
        1 for item in schema["paths"].values() for method in item if method != "parameters"
    )

    page.goto(f"{live_server.url}/v1/docs")
    expect(page.locator(".opblock")).to_have_count(operations)
    assert page.title() == "Connect API reference"
    # An operation opens and shows its documented error envelope.
    token = "#operations-runtime-token_mint"
    page.locator(f"{token} .opblock-summary").click()
    page.wait_for_selector(f"{token} .responses-table")
    responses = page.locator(f"{token} .response-col_status").all_inner_texts()
    assert {"200", "401", "403", "404", "422", "429", "502"} <= {r.strip() for r in responses}

    violations.assert_none("/v1/docs")
    assert set(fetched) == {live_server.url}, "the docs page fetched from another origin"


def _origin_of(request: Request) -> str:
    scheme, _, rest = request.url.partition("://")
    if not rest:  # data: and blob: URLs stay in the page
        return request.url.split(":", 1)[0] + ":"
    return f"{scheme}://{rest.split('/', 1)[0]}"
