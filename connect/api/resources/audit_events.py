"""``/v1/connect/audit-events``: who changed what, and when."""

from typing import Any

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from connect.api.management import ManagementView
from connect.api.resources import base
from connect.models import AuditEvent
from connect.permissions import Action


class AuditEventOut(serializers.Serializer):
    id = serializers.IntegerField()
    type = serializers.CharField(help_text="`connector.created`, `credential.revoked`, …")
    actor = serializers.CharField(help_text="`user:…`, `token:tok_…`, a deployment, `system`.")
    targets = serializers.DictField(child=serializers.CharField())
    correlation = serializers.DictField(child=serializers.CharField())
    # DRF's metaclass takes declared fields out of the class, so ``fields`` names a field here.
    fields = serializers.DictField()  # type: ignore[assignment]
    createdAt = serializers.IntegerField()


def audit_body(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.pk,
        "type": event.type,
        "actor": event.actor,
        "targets": event.targets,
        "correlation": event.correlation,
        "fields": event.fields,
        "createdAt": base.millis(event.created_at),
    }


EXAMPLE = {
    "id": 4211,
    "type": "credential.created",
    "actor": "token:tok_4kW9xQ2pL7mN3vR8",
    "targets": {"credentialId": "dpc_5mW8qR2xK7pL3vN9", "projectId": "prj_3kD9wQ1xV8mZ2pL5"},
    "correlation": {},
    "fields": {"environment": "production"},
    "createdAt": 1764662400000,
}


class AuditEventsView(ManagementView):
    @base.list_schema(
        operation_id="audit_events_list",
        summary="List audit events",
        filtered_by=(
            ("type", "Only this type, or a prefix ending in `.` (`credential.`)."),
            ("actor", "Only this actor's."),
        ),
        page=("AuditEventPage", "auditEvents", AuditEventOut),
        example=EXAMPLE,
    )
    def get(self, request: Request) -> Response:
        actor = self.actor(request, Action.VIEW)
        queryset = base.filtered(
            request, AuditEvent.objects.for_team(actor.team_id), ("actor", "actor")
        )
        if kind := request.query_params.get("type"):
            queryset = (
                queryset.filter(type__startswith=kind)
                if kind.endswith(".")
                else queryset.filter(type=kind)
            )
        return Response(base.page(request, queryset, key="auditEvents", render=audit_body))
