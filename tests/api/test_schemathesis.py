"""Schemathesis against the live document, served by gunicorn as production runs it.

Every operation of /v1/openapi.json gets about ten generated requests (half of them aimed at
the seeded team's real objects, so the happy paths run too, not only the 404s), with the bearer
its security names: a team API token (owner) for the management API, a deployment credential
for the runtime API. Every answer must be no 5xx and conform to the document: its status
declared, its content type, its headers and its body schema. Rate limits are raised for this
server only.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
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

from connect.models import (
    Connector,
    Delivery,
    DeploymentCredential,
    Grant,
    InboundEvent,
    Installation,
    Project,
    Role,
    Team,
    TrustedIssuer,
)
from connect.models.api_tokens import TeamApiToken
from connect.services.api_tokens import api_token_create
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
    make_installation: Callable[..., Installation],
    make_grant: Callable[..., Grant],
) -> dict[str, str]:
    """A team with one of everything, a deployment credential and an owner's team token."""
    team = make_team(slug="acme")
    project = make_project(team, slug="web", environments=("production", "preview"))
    connector = make_connector(team, uid="api-key/stripe")
    make_link(connector, project, ["production"])
    destination = make_destination(connector, project)
    installation = make_installation(connector)
    grant = make_grant(installation, Grant.SubjectType.USER, subject_id="u_1")
    credential = make_credential(project)
    issuer = TrustedIssuer.objects.create(
        team=team,
        issuer="https://ci.acme.test",
        jwks_url="https://ci.acme.test/jwks",
        audience=team.workload_audience,
    )
    event = InboundEvent.objects.create(
        connector=connector, event_type="push", body=b"{}", body_sha256="sha", verified=True
    )
    delivery = Delivery.objects.create(event=event, destination=destination)
    team_token = api_token_create(
        token=TeamApiToken(team=team, name="schemathesis", role=Role.OWNER),
        created_by=None,
        actor="test",
    )
    return {
        "credential": credential,
        "team_token": team_token,
        "connector": connector.public_id,
        "uid": connector.uid,
        "project": project.public_id,
        "destination": destination.public_id,
        "installation": installation.public_id,
        "grant": grant.public_id,
        "credential_id": DeploymentCredential.objects.get(project=project).public_id,
        "issuer": issuer.public_id,
        "event": event.public_id,
        "delivery": delivery.webhook_id,
    }


def _aimed(seeded: dict[str, str]) -> dict[str, Any]:
    """Path parameters naming the seeded objects (never the team token: revoking it would
    leave the rest of the run with 401s)."""
    return {
        "connector": st.sampled_from([seeded["connector"], seeded["uid"]]),
        "destination_id": st.just(seeded["destination"]),
        "connector_id": st.just(seeded["connector"]),
        "public_id": st.just(seeded["connector"]),
        "project": st.sampled_from([seeded["project"], "web"]),
        "environment": st.sampled_from(["production", "preview"]),
        "installation": st.just(seeded["installation"]),
        "grant": st.just(seeded["grant"]),
        "destination": st.just(seeded["destination"]),
        "credential": st.just(seeded["credential_id"]),
        "issuer": st.just(seeded["issuer"]),
        "event": st.just(seeded["event"]),
        "delivery": st.just(seeded["delivery"]),
    }


def _bearers(document: dict[str, Any], seeded: dict[str, str]) -> dict[tuple[str, str], str]:
    """The bearer each operation's security asks for (the team token where both would do)."""
    tokens = {"teamToken": seeded["team_token"], "deploymentCredential": seeded["credential"]}
    bearers = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            names = [name for entry in operation.get("security", []) for name in entry]
            wanted = [n for n in ("teamToken", "deploymentCredential") if n in names]
            bearer = tokens[wanted[0]] if wanted else ""
            bearers[(path, method.upper())] = bearer
    return bearers


def test_every_operation_conforms_to_the_document(
    tmp_path: Path, seeded: dict[str, str]
) -> None:
    env = {
        "CONNECT_RATE_LIMIT_READS": "100000",
        "CONNECT_RATE_LIMIT_WRITES": "100000",
        "CONNECT_RATE_LIMIT_MANAGEMENT": "100000",
    }
    with serving(tmp_path, workers=2, threads=4, env=env) as server:
        schema = schemathesis.openapi.from_url(f"{server.url}/v1/openapi.json")
        document = requests.get(f"{server.url}/v1/openapi.json", timeout=10).json()
        bearers = _bearers(document, seeded)
        aimed = _aimed(seeded)
        failures: list[str] = []
        operations = 0
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            bearer = bearers[(operation.path, operation.method.upper())]
            headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}

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
                # DELETEs stay on generated ids: the seeded rows serve the other operations.
                if aim and case.path_parameters and case.method != "DELETE":
                    for name in case.path_parameters:
                        if name in aimed:
                            case.path_parameters[name] = data.draw(aimed[name])
                case.call_and_validate(
                    base_url=server.url,
                    headers=headers,  # noqa: B023  (run before the loop moves on)
                    checks=CHECKS,
                )

            try:
                exercise()
            # Collect every operation's failures (Schemathesis raises a group), report them all.
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{operation.label}: {str(exc)[:1500]}")
        assert operations >= 50
        log = server.app_log.read_text(errors="replace")
        first = log.find("Traceback")
        tracebacks = log[first : first + 4000] if first >= 0 else ""
        assert failures == [], "\n\n".join([*failures, tracebacks])

