"""The runtime API: thin views that parse, call one service, and render."""

from datetime import timedelta
from typing import Any

from django.views.decorators.debug import sensitive_variables
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from connect import errors, health
from connect.api import serializers
from connect.api.authentication import RuntimeCallerAuthentication, TeamRateThrottle
from connect.callers import Caller
from connect.kinds import AuthorizationKind
from connect.metrics import CountedTokenRequests
from connect.models import InboundEvent, TriggerDestination
from connect.services import authorizations, deliveries, destinations, grants, links, tokens


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

    @sensitive_variables()  # the token handed out
    def post(self, request: Request, connector: str) -> Response:
        caller = self.caller(request)
        ask = serializers.token_ask(request.data, caller)
        issued = tokens.token_issue(caller=caller, connector_ref=connector, ask=ask)
        return Response(serializers.token_body(issued))


class TokenImportView(RuntimeView):
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


class ConnectorView(RuntimeView):
    def get(self, request: Request, connector: str) -> Response:
        found = links.linked_connector(caller=self.caller(request), connector_ref=connector)
        return Response(serializers.connector_body(found))


class ConnectorTokensView(RuntimeView):
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

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


class HealthView(APIView):
    """For load balancers: ``{"ok": true}``, no work. ``?deep=1``: the database, Redis, and a
    worker and beat seen within the last minute; 503 naming what failed."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    def get(self, request: Request) -> Response:
        if request.query_params.get("deep", "") in ("", "0"):
            return Response({"ok": True})
        report = health.deep_health()
        return Response(report.as_wire(), status=200 if report.ok else 503)


class TriggerDestinationsView(RuntimeView):
    def patch(self, request: Request, connector: str) -> Response:
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


class AuthorizeView(RuntimeView):
    """Start a user's consent: a link to send them to, and a verifier to poll the result."""

    @sensitive_variables()  # the result verifier
    def post(self, request: Request, connector: str) -> Response:
        body = serializers.AuthorizeRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        caller, data = self.caller(request), body.validated_data
        found = links.linked_connector(caller=caller, connector_ref=connector)
        scopes = data.get("scopes")
        started = authorizations.authorization_start(
            connector=found,
            kind=AuthorizationKind.CONSENT,
            subject=serializers.subject_from(data["subject"], caller),
            scopes=None if scopes is None else tuple(scopes),
            return_url=data.get("returnUrl") or "",
            expires_in=_expires_in(data),
            installation_ref=data.get("installationId") or None,
            project_id=caller.project_id,
            environment=caller.environment,
            actor=caller.label,
        )
        return Response(serializers.flow_body(started))


class InstallView(RuntimeView):
    """Start an installation into a tenant (a Slack workspace, a GitHub org, an Entra tenant)."""

    @sensitive_variables()  # the result verifier
    def post(self, request: Request, connector: str) -> Response:
        body = serializers.InstallRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        caller, data = self.caller(request), body.validated_data
        found = links.linked_connector(caller=caller, connector_ref=connector)
        scopes = data.get("scopes")
        started = authorizations.authorization_start(
            connector=found,
            kind=AuthorizationKind.INSTALL,
            subject=None,
            scopes=None if scopes is None else tuple(scopes),
            return_url=data.get("returnUrl") or "",
            expires_in=_expires_in(data),
            tenant_hint=data.get("tenantId") or "",
            project_id=caller.project_id,
            environment=caller.environment,
            actor=caller.label,
        )
        return Response(serializers.flow_body(started))


class ResultView(RuntimeView):
    rate_kind = "read"

    @sensitive_variables()  # the result verifier
    def get(self, request: Request, verifier: str) -> Response:
        flow = authorizations.authorization_result(
            team_id=self.caller(request).team_id, verifier=verifier
        )
        return Response(serializers.result_body(flow))
