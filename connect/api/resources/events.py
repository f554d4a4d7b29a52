"""``/v1/connect/events`` and ``/v1/connect/deliveries``: the webhooks received, where each
was forwarded, every attempt; replaying one."""

from typing import Any

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from connect import errors
from connect.api import shapes
from connect.api.management import ManagementView
from connect.api.resources import base
from connect.api.resources.installations import connector_in_team
from connect.models import Delivery, InboundEvent
from connect.models.deliveries import DeliveryStatus
from connect.permissions import Action
from connect.services import deliveries


class EventOut(serializers.Serializer):
    id = serializers.CharField(help_text="`trq_…`")
    connectorId = serializers.CharField()
    eventType = serializers.CharField(allow_blank=True)
    providerEventId = serializers.CharField(allow_blank=True)
    tenantId = serializers.CharField(allow_blank=True)
    contentType = serializers.CharField(allow_blank=True)
    verified = serializers.BooleanField()
    receivedAt = serializers.IntegerField()


class AttemptOut(serializers.Serializer):
    startedAt = serializers.IntegerField()
    statusCode = serializers.IntegerField(allow_null=True)
    latencyMs = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_blank=True)


class DeliveryOut(serializers.Serializer):
    id = serializers.CharField(help_text="The `webhook-id` the destination received.")
    eventId = serializers.CharField(
        allow_null=True, help_text="The received webhook; null for a lifecycle event's."
    )
    destinationId = serializers.CharField()
    status = serializers.ChoiceField(choices=DeliveryStatus.values)
    attempts = serializers.IntegerField()
    lastStatusCode = serializers.IntegerField(allow_null=True)
    nextAttemptAt = serializers.IntegerField()
    createdAt = serializers.IntegerField()
    updatedAt = serializers.IntegerField()


class EventDetail(EventOut):
    deliveries = DeliveryOut(many=True)


class DeliveryDetail(DeliveryOut):
    attemptLog = AttemptOut(many=True)


def event_body(event: InboundEvent) -> dict[str, Any]:
    return {
        "id": event.public_id,
        "connectorId": event.connector.public_id,
        "eventType": event.event_type,
        "providerEventId": event.provider_event_id,
        "tenantId": event.tenant_id,
        "contentType": event.content_type,
        "verified": event.verified,
        "receivedAt": base.millis(event.received_at),
    }


def delivery_body(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.webhook_id,
        "eventId": delivery.event.public_id if delivery.event else None,
        "destinationId": delivery.destination.public_id,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "lastStatusCode": delivery.last_status_code,
        "nextAttemptAt": base.millis(delivery.next_attempt_at),
        "createdAt": base.millis(delivery.created_at),
        "updatedAt": base.millis(delivery.updated_at),
    }


EVENT = {
    "id": "trq_9mK2xQ7pL4vW8nR3",
    "connectorId": "scl_7Hq2mV4kP9xR3tW8",
    "eventType": "push",
    "providerEventId": "0f3c9a40-…",
    "tenantId": "812345",
    "contentType": "application/json",
    "verified": True,
    "receivedAt": 1764662400000,
}
DELIVERY = {
    "id": "msg_2vL8kQ4xW7pN3mR9",
    "eventId": "trq_9mK2xQ7pL4vW8nR3",
    "destinationId": "dst_8vN3qL6pX1wK9mR2",
    "status": "succeeded",
    "attempts": 1,
    "lastStatusCode": 200,
    "nextAttemptAt": 1764662400000,
    "createdAt": 1764662400000,
    "updatedAt": 1764662401000,
}


def _events(team_id: int) -> Any:
    return InboundEvent.objects.for_team(team_id).select_related("connector").defer("body")


def _deliveries(team_id: int) -> Any:
    return (
        Delivery.objects.for_team(team_id)
        .select_related("event", "destination")
        .defer("event__body")
    )


class EventsView(ManagementView):
    @base.list_schema(
        operation_id="events_list",
        summary="List received webhooks",
        filtered_by=(
            ("connector", "Only this connector's (`scl_…` or uid)."),
            ("eventType", "Only this type (`push`, `message`, …)."),
            ("tenantId", "Only this tenant's."),
        ),
        page=("EventPage", "events", EventOut),
        example=EVENT,
    )
    def get(self, request: Request) -> Response:
        actor = self.actor(request, Action.VIEW)
        queryset = base.filtered(
            request,
            _events(actor.team_id),
            ("eventType", "event_type"),
            ("tenantId", "tenant_id"),
        )
        if connector := request.query_params.get("connector"):
            queryset = queryset.filter(connector=connector_in_team(actor.team_id, connector))
        return Response(base.page(request, queryset, key="events", render=event_body))


class EventView(ManagementView):
    @base.operation(
        "events_get", "A received webhook and where it went", responses={200: EventDetail}
    )
    def get(self, request: Request, event: str) -> Response:
        actor = self.actor(request, Action.VIEW)
        found = base.in_team(_events(actor.team_id), actor.team_id, event, "event")
        sent = found.deliveries.select_related("event", "destination").order_by("pk")
        return Response({**event_body(found), "deliveries": [delivery_body(d) for d in sent]})


class EventReplayView(ManagementView):
    @base.operation(
        "events_replay",
        "Deliver a webhook again",
        description="To every destination it went to, with the same `webhook-id` (receivers "
        "deduplicate on it).",
        request=None,
        responses={200: shapes.Replayed},
        answers={"Replayed": {"replayed": 2}},
    )
    def post(self, request: Request, event: str) -> Response:
        actor = self.actor(request, Action.CHANGE)
        found = base.in_team(_events(actor.team_id), actor.team_id, event, "event")
        return Response({"replayed": deliveries.event_replay(event=found, actor=actor.label)})


class DeliveriesView(ManagementView):
    @base.list_schema(
        operation_id="deliveries_list",
        summary="List deliveries",
        filtered_by=(
            ("eventId", "Only this event's (`trq_…`)."),
            ("destinationId", "Only this destination's (`dst_…`)."),
            ("status", "Only these.", DeliveryStatus.values),
        ),
        page=("DeliveryPage", "deliveries", DeliveryOut),
        example=DELIVERY,
    )
    def get(self, request: Request) -> Response:
        actor = self.actor(request, Action.VIEW)
        queryset = base.filtered(
            request,
            _deliveries(actor.team_id),
            ("eventId", "event__public_id"),
            ("destinationId", "destination__public_id"),
            ("status", "status", DeliveryStatus.values),
        )
        return Response(base.page(request, queryset, key="deliveries", render=delivery_body))


class DeliveryView(ManagementView):
    @base.operation(
        "deliveries_get", "A delivery and its attempts", responses={200: DeliveryDetail}
    )
    def get(self, request: Request, delivery: str) -> Response:
        actor = self.actor(request, Action.VIEW)
        found = _deliveries(actor.team_id).filter(webhook_id=delivery).first()
        if found is None:
            raise errors.NotFound("No such delivery in this team.")
        attempts = [
            {
                "startedAt": base.millis(a.started_at),
                "statusCode": a.status_code,
                "latencyMs": a.latency_ms,
                "error": a.error,
            }
            for a in found.attempt_log.order_by("pk")
        ]
        return Response({**delivery_body(found), "attemptLog": attempts})
