"""``/v1/connect/installations``: where a connector is installed (a Slack workspace, a GitHub
org, an Entra tenant), and uninstalling."""

from typing import Any

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from connect.api.management import ManagementView
from connect.api.resources import base
from connect.models import Connector, Installation
from connect.models.installations import InstallationStatus
from connect.permissions import Action
from connect.services import installations


class InstallationOut(serializers.Serializer):
    id = serializers.CharField(help_text="`sci_…`")
    connectorId = serializers.CharField()
    tenantId = serializers.CharField()
    name = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=InstallationStatus.values)
    isDefault = serializers.BooleanField()
    metadata = serializers.DictField()
    createdAt = serializers.IntegerField()
    updatedAt = serializers.IntegerField()


def installation_body(installation: Installation) -> dict[str, Any]:
    return {
        "id": installation.public_id,
        "connectorId": installation.connector.public_id,
        "tenantId": installation.tenant_id,
        "name": installation.display_name,
        "status": installation.status,
        "isDefault": installation.is_default,
        "metadata": dict(installation.metadata or {}),
        "createdAt": base.millis(installation.created_at),
        "updatedAt": base.millis(installation.updated_at),
    }


def connector_in_team(team_id: int, ref: str) -> Connector:
    """By ``scl_`` id or uid."""
    return base.by_ref(
        Connector.objects.for_team(team_id),
        ref,
        prefix="scl_",
        or_field="uid",
        missing="No such connector in this team.",
    )


def _installation(team_id: int, ref: str) -> Installation:
    found: Installation = base.in_team(
        Installation.objects.select_related("connector"), team_id, ref, "installation"
    )
    return found


EXAMPLE = {
    "id": "sci_4fJ8kQ2mN7pL1xZ9",
    "connectorId": "scl_7Hq2mV4kP9xR3tW8",
    "tenantId": "812345",
    "name": "acme-corp",
    "status": "active",
    "isDefault": True,
    "metadata": {"accountType": "Organization"},
    "createdAt": 1764662400000,
    "updatedAt": 1764662400000,
}


class InstallationsView(ManagementView):
    @base.list_schema(
        operation_id="installations_list",
        summary="List installations",
        filtered_by=(
            ("connector", "Only this connector's (`scl_…` or uid)."),
            ("status", "Only these.", InstallationStatus.values),
            ("tenantId", "Only this tenant's."),
        ),
        page=("InstallationPage", "installations", InstallationOut),
        example=EXAMPLE,
    )
    def get(self, request: Request) -> Response:
        actor = self.actor(request, Action.VIEW)
        queryset = base.filtered(
            request,
            Installation.objects.for_team(actor.team_id).select_related("connector"),
            ("status", "status", InstallationStatus.values),
            ("tenantId", "tenant_id"),
        )
        if connector := request.query_params.get("connector"):
            queryset = queryset.filter(connector=connector_in_team(actor.team_id, connector))
        return Response(base.page(request, queryset, key="installations", render=installation_body))


class InstallationView(ManagementView):
    @base.operation(
        "installations_get",
        "An installation",
        responses={200: InstallationOut},
        answers={"Installation": EXAMPLE},
    )
    def get(self, request: Request, installation: str) -> Response:
        actor = self.actor(request, Action.VIEW)
        return Response(installation_body(_installation(actor.team_id, installation)))

    @base.operation(
        "installations_uninstall",
        "Uninstall",
        description="Its grants' tokens are revoked at the provider where it can, then "
        "cleared; the installation stays, `revoked`, for the record.",
        responses={204: None},
    )
    def delete(self, request: Request, installation: str) -> Response:
        actor = self.actor(request, Action.DELETE)
        found = _installation(actor.team_id, installation)
        if found.status != InstallationStatus.REVOKED:
            installations.installation_remove(installation=found, actor=actor.label, delete=False)
        return Response(status=204)
