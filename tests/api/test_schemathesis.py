"""Schemathesis against the live document, served by gunicorn as production runs it.

Every operation of /v1/openapi.json gets about ten generated requests (half of them aimed at
the seeded team's real objects, so the happy paths run too, not only the 404s); every answer
must be no 5xx and conform to the document: its status declared, its content type, its
headers and its body schema. Rate limits are raised for this server only.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from connect.models import Connector, Project, Team
from tests.app_server import serving

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres, pytest.mark.slow]



def no_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """No 5xx, but for the deep health check's documented 503: this server runs no worker and
    no beat, and saying so is that endpoint's job."""
    if case.path == "/v1/health" and response.status_code == 503:
        return None
    return not_a_server_error(ctx, response, case)


CHECKS = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 10


@pytest.fixture
def seeded(
    require_postgres: None,
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_link: Callable[..., Any],
    make_credential: Callable[..., str],
    make_destination: Callable[..., Any],
) -> dict[str, str]:
    """A team with a linked api-key connector, a destination and a deployment credential."""
    team = make_team(slug="acme")
    project = make_project(team, slug="web")
    connector = make_connector(team, uid="api-key/stripe")
    make_link(connector, project, ["production"])
    destination = make_destination(connector, project)
    return {
        "credential": make_credential(project),
        "connector": connector.public_id,
        "uid": connector.uid,
        "project": project.public_id,
        "destination": destination.public_id,
    }


def _aimed(seeded: dict[str, str]) -> dict[str, Any]:
    """Path parameters naming the seeded objects."""
    return {
        "connector": st.sampled_from([seeded["connector"], seeded["uid"]]),
        "destination_id": st.just(seeded["destination"]),
        "connector_id": st.just(seeded["connector"]),
        "public_id": st.just(seeded["connector"]),
    }


def test_every_operation_conforms_to_the_document(
    tmp_path: Path, seeded: dict[str, str]
) -> None:
    env = {"CONNECT_RATE_LIMIT_READS": "100000", "CONNECT_RATE_LIMIT_WRITES": "100000"}
    with serving(tmp_path, workers=2, threads=4, env=env) as server:
        schema = schemathesis.openapi.from_url(f"{server.url}/v1/openapi.json")
        aimed = _aimed(seeded)
        headers = {"Authorization": f"Bearer {seeded['credential']}"}
        failures: list[str] = []
        operations = 0
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1

            @given(case=operation.as_strategy(), aim=st.booleans(), data=st.data())
            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def exercise(case: Any, aim: bool, data: Any) -> None:
                if aim and case.path_parameters:
                    for name in case.path_parameters:
                        if name in aimed:
                            case.path_parameters[name] = data.draw(aimed[name])
                case.call_and_validate(base_url=server.url, headers=headers, checks=CHECKS)

            try:
                exercise()
            # Collect every operation's failures (Schemathesis raises a group), report them all.
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{operation.label}: {str(exc)[:1500]}")
        assert operations >= 16
        assert failures == [], "\n\n".join(failures)

