"""The runtime API: thin views that parse, call one service, and render."""

import json
import time
from datetime import timedelta
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_variables
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_view,
)
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from connect import errors, health
from connect.api import connector_docs, parsers, serializers, shapes
from connect.api import connectors as management_connectors
from connect.api.authentication import (
    ManagementRateThrottle,
    RuntimeCallerAuthentication,
    TeamRateThrottle,
    TeamTokenOrRuntimeAuthentication,
    is_team_token,
    team_rate_check,
)
from connect.api.envelope import exception_handler
from connect.api.schema import error_responses
from connect.callers import Caller, caller_from_authorization
from connect.kinds import AuthorizationKind
from connect.metrics import CountedTokenRequests, token_request_record
from connect.models import InboundEvent, TriggerDestination
from connect.services import authorizations, deliveries, destinations, grants, links, tokens
from connect.services.api_tokens import TeamActor

CONNECTOR = shapes.example_connector_ref()


class RuntimeView(APIView):
    authentication_classes = [RuntimeCallerAuthentication]
    throttle_classes = [TeamRateThrottle]
    permission_classes: list[Any] = []

    def caller(self, request: Request) -> Caller:
        caller = request.auth
        assert isinstance(caller, Caller)
        return caller


class TokenView(CountedTokenRequests, RuntimeView):
    rate_kind = "read"  # a token request is a read of what the team configured

    @extend_schema(
        operation_id="token_mint",
        parameters=[
            OpenApiParameter(
                "connector",
                str,
                OpenApiParameter.PATH,
                description="The connector's `scl_` id, or its uid `service/name` (send the "
                "`/` as `%2F`).",
                pattern=r"^(scl_[A-Za-z0-9]+|[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*)$",
            )
        ],
        summary="Mint a token for a subject",
        description="The hot path: a provider access token for the app or a user, refreshed "
        "when it is near expiry. Counted as a read for the rate limit.",
        request=shapes.TokenRequest,
        responses={200: shapes.IssuedToken, **error_responses(422, 502)},
        examples=[
            OpenApiExample(
                "App token",
                value={"subject": {"type": "app"}, "installationId": "sci_4fJ8kQ2mN7pL1xZ9"},
                request_only=True,
            ),
            OpenApiExample(
                "User token",
                value={"subject": {"type": "user", "id": "u_42"}, "scopes": ["repo"]},
                request_only=True,
            ),
            OpenApiExample(
                "Issued",
                value={
                    "token": "ghs_16C7e42F292c6912E7710c838347Ae178B4a",
                    "tokenId": "stk_9QmX2vL7pR4kT8wZ",
                    "expiresAt": 1764748800000,
                    "connector": CONNECTOR,
                    "installationId": "sci_4fJ8kQ2mN7pL1xZ9",
                    "tenantId": "812345",
                    "externalSubject": None,
                    "name": "acme-corp",
                    "metadata": {},
                    "claims": {},
                },
                response_only=True,
            ),
        ],
    )
    @sensitive_variables()  # the token handed out
    def post(self, request: Request, connector: str) -> Response:
        caller = self.caller(request)
        ask = serializers.token_ask(request.data, caller)
        issued = tokens.token_issue(caller=caller, connector_ref=connector, ask=ask)
        return Response(serializers.token_body(issued))


_token_view = TokenView.as_view()
_ALLOW = "POST, OPTIONS"


def _reject_constant(value: str) -> None:
    raise ValueError(f"{value} is not JSON")


def _json_response(body: Any, status: int) -> HttpResponse:
    """What DRF's JSONRenderer writes (compact, UTF-8, U+2028/9 escaped), as DRF sends it."""
    text = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    response = HttpResponse(text.encode(), status=status, content_type="application/json")
    response.data = body  # type: ignore[attr-defined]  # read by the metrics, as DRF's is
    return response


# Exempt from CSRF because it reads no cookie: a caller is its Authorization header alone (and
# the DRF fallback authenticates with RuntimeCallerAuthentication only), so a forged cross-site
# post carrying an admin's session gets a 401 (tests/api/test_lean_token_view.py).
@csrf_exempt
@sensitive_variables()  # the token handed out
def token(request: HttpRequest, connector: str) -> HttpResponse:
    """``POST /v1/connect/token/{connector}`` without DRF's machinery (content negotiation,
    request wrapping, serializers, throttle classes) on its usual path: a JSON body and an
    Authorization header. Anything else (other methods, other content types, bodies that do
    not parse, no header) goes to ``TokenView``, so every answer, error and header stays what
    DRF gives (tests/api and the SDK tests are the proof)."""
    if (
        request.method != "POST"
        or request.content_type != "application/json"
        or not request.META.get("HTTP_AUTHORIZATION")
        # A team API token is refused by TokenView's authentication with its own 403.
        or is_team_token(request.META["HTTP_AUTHORIZATION"].partition(" ")[2].strip())
    ):
        return _token_view(request, connector=connector)
    try:
        data = json.loads(request.body.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RequestDataTooBig):
        return _token_view(request, connector=connector)
    if not parsers.storable_json(request.body, data):
        return _token_view(request, connector=connector)  # refused there, in the envelope
    started = time.perf_counter()
    caller: Caller | None = None
    try:
        caller = caller_from_authorization(request.META["HTTP_AUTHORIZATION"])
        team_rate_check(caller, TokenView.rate_kind, now=TeamRateThrottle.timer())
        ask = serializers.token_ask(data, caller)
        issued = tokens.token_issue(caller=caller, connector_ref=connector, ask=ask)
        response = _json_response(serializers.token_body(issued), 200)
    except Exception as exc:
        handled = exception_handler(exc, {"view": TokenView(), "request": request})
        response = _json_response(handled.data, handled.status_code)
        for header in ("WWW-Authenticate", "Retry-After"):
            if header in handled:
                response[header] = handled[header]
    response["Allow"] = _ALLOW
    token_request_record(
        response,
        seconds=time.perf_counter() - started,
        team_id=getattr(caller, "team_id", None),
        connector_ref=connector,
    )
    return response


class TokenImportView(RuntimeView):
    @extend_schema(
        operation_id="token_import",
        summary="Import existing user grants",
        description="A migration from elsewhere: each item succeeds or fails alone. A "
        "deployment imports only its own project's users; app and jwt-bearer grants are "
        "imported by a team member through the management API.",
        request=shapes.ImportRequest,
        responses={200: shapes.ImportResponse},
        examples=[
            OpenApiExample(
                "Import",
                value={
                    "tokens": [
                        {
                            "subject": {"type": "user", "id": "u_42"},
                            "accessToken": "gho_abc",
                            "refreshToken": "ghr_def",
                            "expiresAt": 1764748800000,
                        }
                    ]
                },
                request_only=True,
            ),
            OpenApiExample(
                "Imported",
                value={
                    "accepted": 1,
                    "imported": 1,
                    "tokens": [
                        {
                            "subject": {"type": "user", "id": "u_42"},
                            "expiresAt": 1764748800000,
                            "succeeded": True,
                        }
                    ],
                },
                response_only=True,
            ),
        ],
    )
    @sensitive_variables()  # the imported access and refresh tokens
    def post(self, request: Request, connector: str) -> Response:
        body = serializers.ImportRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        caller = self.caller(request)
        result = grants.grants_import(
            importer=grants.Importer.deployment(caller),
            connector=links.linked_connector(caller=caller, connector_ref=connector),
            items=body.validated_data["tokens"],
        )
        return Response(serializers.import_body(result))


class SharedView(RuntimeView):
    """A path both deployments (runtime) and team API tokens (management) use."""

    authentication_classes = [TeamTokenOrRuntimeAuthentication]
    throttle_classes = [TeamRateThrottle, ManagementRateThrottle]

    def team_actor(self, request: Request) -> TeamActor | None:
        return request.auth if isinstance(request.auth, TeamActor) else None


class ConnectorView(SharedView):
    @extend_schema(
        operation_id="connector_get",
        summary="A connector's public metadata",
        description="Public configuration only, never a secret; the same link check as the "
        "token endpoint (the caller's project must be linked in its environment).",
        responses={200: connector_docs.CONNECTOR_EITHER},
        examples=[
            OpenApiExample(
                "Connector",
                value={
                    **CONNECTOR,
                    "displayName": "Acme bot",
                    "description": "",
                    "createdAt": 1764662400000,
                    "updatedAt": 1764662400000,
                    "data": {"clientId": "Iv1.8a61f9b3a7aba766"},
                    "supportedSubjectTypes": ["app", "user"],
                    "supportsInstallation": True,
                    "supportsRevocation": False,
                    "supportsTriggers": True,
                    "supportsRefresh": True,
                    "icon": None,
                    "backgroundColor": "",
                    "accentColor": "",
                    "triggers": {"enabled": True},
                    "defaultScopes": {},
                },
                response_only=True,
            )
        ],
    )
    def get(self, request: Request, connector: str) -> Response:
        actor = self.team_actor(request)
        if actor is not None:
            return management_connectors.management_get(request, actor, connector)
        found = links.linked_connector(caller=self.caller(request), connector_ref=connector)
        return Response(serializers.connector_body(found))

    @extend_schema(
        operation_id="connector_delete",
        summary="Delete a connector (Vercel's deleteConnector; team tokens)",
        description="Its active installations are uninstalled first (provider revocation "
        "included).",
        responses={204: None, **error_responses(409, 422, 502)},
    )
    def delete(self, request: Request, connector: str) -> Response:
        actor = self.team_actor(request)
        if actor is None:
            raise errors.Forbidden("Deleting a connector takes a team API token.")
        return management_connectors.management_delete(request, actor, connector)


class ConnectorTokensView(RuntimeView):
    @extend_schema(
        operation_id="tokens_revoke",
        summary="Revoke a subject's tokens",
        description="User grants are deleted (revoked at the provider where it can); app "
        "grants lose their cached tokens. A body with no subject revokes every subject's "
        "tokens, which takes a team member: a deployment gets 403.",
        request=shapes.RevokeRequest,
        responses={200: shapes.RevokeCounts},
        examples=[
            OpenApiExample(
                "One user",
                value={"subject": {"type": "user", "id": "u_42"}},
                request_only=True,
            ),
            OpenApiExample(
                "Counts",
                value={
                    "tokensFound": 1,
                    "deleted": 1,
                    "providerRevoked": 1,
                    "providerSkipped": 0,
                    "providerFailed": 0,
                },
                response_only=True,
            ),
        ],
    )
    def delete(self, request: Request, connector: str) -> Response:
        body = serializers.RevokeRequestSerializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        caller = self.caller(request)
        counts = grants.grants_revoke(
            caller=caller,
            connector_ref=connector,
            subject=body.revoked_subject(caller),
            installation_ref=body.validated_data.get("installationId") or None,
        )
        return Response(counts.as_wire())


class FloorView(APIView):
    """The benchmarks' floor (SPEC section 12): the same stack, no work. Keep it that way."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    @extend_schema(
        operation_id="floor",
        summary="The benchmarks' floor",
        description="The same stack as the API, no work: a latency baseline.",
        responses={200: shapes.Ok},
        examples=[OpenApiExample("Ok", value={"ok": True}, response_only=True)],
    )
    def get(self, request: Request) -> Response:
        return Response({"ok": True})


class HealthView(APIView):
    """For load balancers: ``{"ok": true}``, no work. ``?deep=1``: the database, Redis, and a
    worker and beat seen within the last minute; 503 naming what failed."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    @extend_schema(
        operation_id="health",
        summary="Health for load balancers",
        parameters=[
            OpenApiParameter(
                "deep",
                str,
                enum=["0", "1"],
                description="`1`: check the database, Redis, a worker and beat too.",
            )
        ],
        responses={
            200: shapes.Health,
            503: shapes.Health,
        },
        examples=[
            OpenApiExample(
                "Deep, failing",
                value={
                    "ok": False,
                    "failed": ["worker"],
                    "checks": {
                        "database": {"ok": True},
                        "redis": {"ok": True},
                        "worker": {"ok": False, "detail": "not seen for 95 s"},
                    },
                },
                status_codes=[503],
                response_only=True,
            )
        ],
    )
    def get(self, request: Request) -> Response:
        if request.query_params.get("deep", "") in ("", "0"):
            return Response({"ok": True})
        report = health.deep_health()
        return Response(report.as_wire(), status=200 if report.ok else 503)


class TriggerDestinationsView(SharedView):
    @extend_schema(
        operation_id="trigger_destinations_replace",
        summary="Replace your project's trigger destinations",
        description="The full set of where this project receives the connector's webhooks. "
        "A destination's `signingSecret` is in the answer that created it, and never again.",
        request=shapes.DestinationsRequest,
        responses={200: connector_docs.DESTINATIONS_EITHER, **error_responses(422)},
        examples=[
            OpenApiExample(
                "Production",
                value={
                    "destinations": [
                        {
                            "projectId": "prj_3kD9wQ1xV8mZ2pL5",
                            "environment": "production",
                            "path": "/api/webhooks/github",
                        }
                    ]
                },
                request_only=True,
            ),
            OpenApiExample(
                "Created",
                value={
                    "destinations": [
                        {
                            "id": "tds_8vN3qL6pX1wK9mR2",
                            "projectId": "prj_3kD9wQ1xV8mZ2pL5",
                            "environment": "production",
                            "path": "/api/webhooks/github",
                            "enabled": True,
                            "signingSecret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                        }
                    ]
                },
                response_only=True,
            ),
        ],
    )
    def patch(self, request: Request, connector: str) -> Response:
        actor = self.team_actor(request)
        if actor is not None:
            return management_connectors.management_destinations(request, actor, connector)
        body = serializers.DestinationsRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        caller = self.caller(request)
        found = links.linked_connector(caller=caller, connector_ref=connector)
        replaced = destinations.destinations_replace(
            connector=found,
            specs=[
                destinations.DestinationSpec(
                    project_public_id=d["projectId"], environment=d["environment"], path=d["path"]
                )
                for d in body.validated_data["destinations"]
            ],
            actor=caller.label,
            only_project_id=caller.project_id,
        )
        return Response(serializers.destinations_body(replaced))


class TriggerReplayView(RuntimeView):
    @extend_schema(
        operation_id="trigger_replay",
        summary="Deliver a received webhook again",
        description="To your project's destinations only.",
        request=None,
        responses={200: shapes.Replayed},
        examples=[OpenApiExample("Replayed", value={"replayed": 1}, response_only=True)],
    )
    def post(self, request: Request, connector: str, trigger_id: str) -> Response:
        caller = self.caller(request)
        found = links.linked_connector(caller=caller, connector_ref=connector)
        event = InboundEvent.objects.filter(connector=found, public_id=trigger_id).first()
        if event is None:
            raise errors.NotFound("No such trigger request for this connector.")
        count = deliveries.event_replay(
            event=event, actor=caller.label, project_id=caller.project_id
        )
        return Response({"replayed": count})


class DestinationReplayView(RuntimeView):
    @extend_schema(
        operation_id="destination_replay_failed",
        summary="Retry a destination's failed deliveries",
        request=None,
        responses={200: shapes.Replayed},
        examples=[OpenApiExample("Replayed", value={"replayed": 3}, response_only=True)],
    )
    def post(self, request: Request, connector: str, destination_id: str) -> Response:
        caller = self.caller(request)
        found = links.linked_connector(caller=caller, connector_ref=connector)
        destination = TriggerDestination.objects.filter(
            connector=found, public_id=destination_id, project_id=caller.project_id
        ).first()
        if destination is None:
            raise errors.NotFound("No such destination of your project on this connector.")
        count = deliveries.destination_replay_failed(destination=destination, actor=caller.label)
        return Response({"replayed": count})


def _expires_in(data: dict[str, Any]) -> timedelta | None:
    value = data.get("expiresInMs")
    return None if value is None else timedelta(milliseconds=value)


STARTED_FLOW = OpenApiExample(
    "Started",
    value={
        "url": "https://connect.example.com/connect/install/scl_7Hq2mV4kP9xR3tW8"
        "?request=sca_2bV7nK4qW9xL3mP8",
        "request": "sca_2bV7nK4qW9xL3mP8",
        "verifier": "cvf_q8Xz3LmN7pR2vK9wT4yB6sD1",
        "expiresAt": 1764749400000,
        "connector": CONNECTOR,
    },
    response_only=True,
)


def flow_start_schema(
    *, operation_id: str, summary: str, request: Any, example: OpenApiExample
) -> Any:
    """The schema of a view that starts a flow: its request, with one example, and the started
    flow it answers."""
    return extend_schema_view(
        post=extend_schema(
            operation_id=operation_id,
            summary=summary,
            request=request,
            responses={200: shapes.StartedFlow, **error_responses(422, 502)},
            examples=[example, STARTED_FLOW],
        )
    )


class FlowStartView(RuntimeView):
    """Start a flow on a connector linked to the caller's project: a link to send the person
    to, and a verifier to poll the result with."""

    serializer: type[serializers.FlowRequestSerializer]
    kind: AuthorizationKind

    def flow_arguments(self, caller: Caller, data: dict[str, Any]) -> dict[str, Any]:
        """What this kind of flow takes beyond what every flow does."""
        raise NotImplementedError

    @sensitive_variables()  # the result verifier
    def post(self, request: Request, connector: str) -> Response:
        body = self.serializer(data=request.data)
        body.is_valid(raise_exception=True)
        caller, data = self.caller(request), body.validated_data
        found = links.linked_connector(caller=caller, connector_ref=connector)
        scopes = data.get("scopes")
        started = authorizations.authorization_start(
            connector=found,
            kind=self.kind,
            scopes=None if scopes is None else tuple(scopes),
            return_url=data.get("returnUrl") or "",
            expires_in=_expires_in(data),
            project_id=caller.project_id,
            environment=caller.environment,
            actor=caller.label,
            **self.flow_arguments(caller, data),
        )
        return Response(serializers.flow_body(started))


@flow_start_schema(
    operation_id="authorize_start",
    summary="Start a user's consent",
    request=shapes.AuthorizeRequest,
    example=OpenApiExample(
        "Consent",
        value={
            "subject": {"type": "user", "id": "u_42"},
            "scopes": ["repo"],
            "returnUrl": "https://app.acme.test/settings",
        },
        request_only=True,
    ),
)
class AuthorizeView(FlowStartView):
    """Start a user's consent: a link to send them to, and a verifier to poll the result."""

    serializer = serializers.AuthorizeRequestSerializer
    kind = AuthorizationKind.CONSENT

    def flow_arguments(self, caller: Caller, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "subject": serializers.subject_from(data["subject"], caller),
            "installation_ref": data.get("installationId") or None,
        }

    # Its own post, so that @extend_schema_view decorates this method rather than wrapping the
    # inherited one in a plain function, and the view stays visibly sensitive.
    @sensitive_variables()  # the result verifier
    def post(self, request: Request, connector: str) -> Response:
        return super().post(request, connector)


@flow_start_schema(
    operation_id="install_start",
    summary="Start an installation",
    request=shapes.InstallRequest,
    example=OpenApiExample(
        "Install", value={"returnUrl": "https://app.acme.test/settings"}, request_only=True
    ),
)
class InstallView(FlowStartView):
    """Start an installation into a tenant (a Slack workspace, a GitHub org, an Entra tenant)."""

    serializer = serializers.InstallRequestSerializer
    kind = AuthorizationKind.INSTALL

    def flow_arguments(self, caller: Caller, data: dict[str, Any]) -> dict[str, Any]:
        return {"subject": None, "tenant_hint": data.get("tenantId") or ""}

    @sensitive_variables()  # the result verifier (its own post: see AuthorizeView.post)
    def post(self, request: Request, connector: str) -> Response:
        return super().post(request, connector)


class ResultView(RuntimeView):
    rate_kind = "read"

    @extend_schema(
        operation_id="flow_result",
        summary="The outcome of a consent or install",
        description="Poll with the verifier: `authorization_pending` (400) until the user is "
        "done, `slow_down` when polled too fast, then the result.",
        responses={200: shapes.FlowResult},
        examples=[
            OpenApiExample(
                "Completed",
                value={
                    "status": "completed",
                    "request": "sca_2bV7nK4qW9xL3mP8",
                    "kind": "install",
                    "connector": CONNECTOR,
                    "installationId": "sci_4fJ8kQ2mN7pL1xZ9",
                    "tenantId": "812345",
                    "subject": {"type": "app", "id": None},
                },
                response_only=True,
            )
        ],
    )
    @sensitive_variables()  # the result verifier
    def get(self, request: Request, verifier: str) -> Response:
        flow = authorizations.authorization_result(
            team_id=self.caller(request).team_id, verifier=verifier
        )
        return Response(serializers.result_body(flow))
