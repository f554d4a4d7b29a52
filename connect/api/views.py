"""The runtime API: thin views that parse, call one service, and render."""

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from connect.api import serializers
from connect.api.authentication import RuntimeCallerAuthentication, TeamRateThrottle
from connect.services import grants, tokens
from connect.services.callers import Caller


class RuntimeView(APIView):
    authentication_classes = [RuntimeCallerAuthentication]
    throttle_classes = [TeamRateThrottle]
    permission_classes: list[Any] = []

    def caller(self, request: Request) -> Caller:
        caller = request.auth
        assert isinstance(caller, Caller)
        return caller


class TokenView(RuntimeView):
    rate_kind = "read"  # a token request is a read of what the team configured

    def post(self, request: Request, connector: str) -> Response:
        body = serializers.TokenRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        caller = self.caller(request)
        issued = tokens.token_issue(caller=caller, connector_ref=connector, ask=body.ask(caller))
        return Response(serializers.token_body(issued))


class TokenImportView(RuntimeView):
    def post(self, request: Request, connector: str) -> Response:
        body = serializers.ImportRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = grants.grants_import(
            caller=self.caller(request),
            connector_ref=connector,
            items=body.validated_data["tokens"],
        )
        return Response(serializers.import_body(result))


class ConnectorView(RuntimeView):
    def get(self, request: Request, connector: str) -> Response:
        found = grants.linked_connector(caller=self.caller(request), connector_ref=connector)
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


class HealthView(APIView):
    """For load balancers, and the benchmarks' floor: the same stack, no work."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    def get(self, request: Request) -> Response:
        return Response({"ok": True})
