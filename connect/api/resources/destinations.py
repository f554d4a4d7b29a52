"""``/v1/connect/destinations``: where a connector's webhooks are forwarded; their one-time
``whsec_`` secrets, rotation and a test event."""

from typing import Any

from django.db import transaction
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from connect.api.management import ManagementView
from connect.api.resources import base
from connect.api.resources.installations import connector_in_team
from connect.api.resources.projects import environment_of, project_in_team
from connect.models import Connector, Project, TriggerDestination
from connect.models.destinations import DestinationKind
from connect.permissions import Action
from connect.services import deliveries, destinations, lifecycle


class DestinationOut(serializers.Serializer):
    id = serializers.CharField(help_text="`dst_…`")
    kind = serializers.ChoiceField(
        choices=DestinationKind.choices,
        help_text="`trigger`: the connector's webhooks; `lifecycle`: its connections' lifecycle "
        "events (one per project link and environment).",
    )
    connectorId = serializers.CharField()
    projectId = serializers.CharField()
    environment = serializers.CharField()
    path = serializers.CharField()
    enabled = serializers.BooleanField()
    disabledReason = serializers.CharField(allow_blank=True)
    createdAt = serializers.IntegerField()


class DestinationCreated(DestinationOut):
    signingSecret = serializers.CharField(help_text="`whsec_…`: shown in this answer only.")


class DestinationIn(serializers.Serializer):
    connector = serializers.CharField(max_length=200, help_text="`scl_…` or uid.")
    projectId = serializers.CharField(max_length=60)
    environment = serializers.CharField(max_length=60, help_text="`env_…` or slug.")
    path = serializers.CharField(max_length=500, default="/")
    kind = serializers.ChoiceField(choices=DestinationKind.choices, default=DestinationKind.TRIGGER)


def destination_body(destination: TriggerDestination) -> dict[str, Any]:
    return {
        "id": destination.public_id,
        "kind": destination.kind,
        "connectorId": destination.connector.public_id,
        "projectId": destination.project.public_id,
        "environment": destination.environment.slug,
        "path": destination.path,
        "enabled": destination.enabled,
        "disabledReason": destination.disabled_reason,
        "createdAt": base.millis(destination.created_at),
    }


EXAMPLE = {
    "id": "dst_8vN3qL6pX1wK9mR2",
    "kind": "trigger",
    "connectorId": "scl_7Hq2mV4kP9xR3tW8",
    "projectId": "prj_3kD9wQ1xV8mZ2pL5",
    "environment": "production",
    "path": "/api/webhooks/github",
    "enabled": True,
    "disabledReason": "",
    "createdAt": 1764662400000,
}
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _destinations(team_id: int) -> Any:
    return TriggerDestination.objects.for_team(team_id).select_related(
        "connector", "project", "environment"
    )


def _destination(team_id: int, ref: str) -> TriggerDestination:
    found: TriggerDestination = base.in_team(_destinations(team_id), team_id, ref, "destination")
    return found


class DestinationsView(ManagementView):
    @base.list_schema(
        operation_id="destinations_list",
        summary="List trigger destinations",
        filtered_by=(
            ("connector", "Only this connector's (`scl_…` or uid)."),
            ("projectId", "Only this project's (`prj_…` or slug)."),
        ),
        page=("DestinationPage", "destinations", DestinationOut),
        example=EXAMPLE,
    )
    def get(self, request: Request) -> Response:
        actor = self.actor(request, Action.VIEW)
        queryset = _destinations(actor.team_id)
        if connector := request.query_params.get("connector"):
            queryset = queryset.filter(connector=connector_in_team(actor.team_id, connector))
        if project := request.query_params.get("projectId"):
            queryset = queryset.filter(project=project_in_team(actor.team_id, project))
        return Response(base.page(request, queryset, key="destinations", render=destination_body))

    @base.operation(
        "destinations_create",
        "Add a trigger or lifecycle destination",
        description="The answer carries the destination's `signingSecret`, the only time it "
        "is shown. Deliveries go to the environment's base URL plus `path`. With `kind: "
        "lifecycle` this sets the one lifecycle destination of that project link and "
        "environment: a new one answers 201 with its secret, a moved one 200 without.",
        request=DestinationIn,
        responses={201: DestinationCreated, 200: DestinationOut},
        sends={
            "Create": {
                "connector": "github/acme-bot",
                "projectId": "web",
                "environment": "production",
                "path": "/api/webhooks/github",
            }
        },
        answers={"Created": {**EXAMPLE, "signingSecret": SECRET}},
    )
    def post(self, request: Request) -> Response:
        actor = self.actor(request, Action.ADD)
        data = base.parsed(DestinationIn, request.data)
        connector = connector_in_team(actor.team_id, data["connector"])
        project = project_in_team(actor.team_id, data["projectId"])
        if data["kind"] == DestinationKind.LIFECYCLE:
            return _lifecycle_set(actor.label, connector, project, data)
        with base.model_checked():
            destination, secret = destinations.destination_create(
                connector=connector,
                environment=environment_of(project, data["environment"]),
                path=data["path"],
                actor=actor.label,
            )
        return Response({**destination_body(destination), "signingSecret": secret}, status=201)


def _lifecycle_set(
    actor: str, connector: Connector, project: Project, data: dict[str, Any]
) -> Response:
    """Set the lifecycle destination of one project link and environment: a new one answers
    201 with its signing secret (the only time it is shown), a moved one 200 without."""
    environment = environment_of(project, data["environment"])
    with transaction.atomic():
        existed = TriggerDestination.objects.filter(
            connector=connector,
            project=project,
            environment=environment,
            kind=DestinationKind.LIFECYCLE,
        ).exists()
        with base.model_checked():
            destination = lifecycle.lifecycle_destination_set(
                connector=connector,
                project=project,
                environment=environment.slug,
                path=data["path"],
                actor=actor,
            )
    assert destination is not None  # a path was given
    if existed:
        return Response(destination_body(destination))
    body = {**destination_body(destination), "signingSecret": destination.reveal("signing_secret")}
    return Response(body, status=201)


class DestinationView(ManagementView):
    @base.operation(
        "destinations_get",
        "A trigger destination",
        responses={200: DestinationOut},
        answers={"Destination": EXAMPLE},
    )
    def get(self, request: Request, destination: str) -> Response:
        actor = self.actor(request, Action.VIEW)
        return Response(destination_body(_destination(actor.team_id, destination)))


class DestinationSecretView(ManagementView):
    @base.operation(
        "destinations_rotate_secret",
        "Rotate a destination's signing secret",
        description="A new `whsec_` secret, shown in this answer only; the old one keeps "
        "signing alongside it for 24 hours, so the receiver can switch without a gap.",
        request=None,
        responses={
            200: inline_serializer(
                name="RotatedSecret",
                fields={
                    "signingSecret": serializers.CharField(),
                    "previousExpiresAt": serializers.IntegerField(),
                },
            )
        },
    )
    def post(self, request: Request, destination: str) -> Response:
        actor = self.actor(request, Action.CHANGE)
        found = _destination(actor.team_id, destination)
        secret = destinations.destination_rotate_secret(destination=found, actor=actor.label)
        return Response(
            {
                "signingSecret": secret,
                "previousExpiresAt": base.millis(found.previous_secret_expires_at),
            }
        )


class DestinationTestView(ManagementView):
    @base.operation(
        "destinations_test",
        "Send a test event",
        description="A `connect.test` event delivered to this destination only, signed and "
        "retried like any other; follow it in `/v1/connect/deliveries/{id}`.",
        request=None,
        responses={
            201: inline_serializer(
                name="TestEventSent",
                fields={
                    "eventId": serializers.CharField(),
                    "deliveryId": serializers.CharField(),
                },
            )
        },
    )
    def post(self, request: Request, destination: str) -> Response:
        actor = self.actor(request, Action.CHANGE)
        found = _destination(actor.team_id, destination)
        delivery = deliveries.destination_test_event(destination=found, actor=actor.label)
        assert delivery.event is not None  # a test event is a received one, made up
        return Response(
            {"eventId": delivery.payload_public_id, "deliveryId": delivery.webhook_id}, status=201
        )
