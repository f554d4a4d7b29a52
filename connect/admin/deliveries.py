import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from connect.admin import lists
from connect.admin.filters import (
    DestinationFilter,
    ExactIdSearch,
    StatusCodeFilter,
    TeamRelatedFilter,
)
from connect.admin.one_time import OneTimeSecret, OneTimeSecretsAdmin
from connect.admin.scoping import ReadOnlyInline, ReadOnlyTeamScopedAdmin, TeamScopedAdmin
from connect.models import (
    Delivery,
    DeliveryAttempt,
    InboundEvent,
    LifecycleEvent,
    TriggerDestination,
)
from connect.permissions import Action
from connect.services import deliveries, destinations, triggers

EVENT_FIELDS = (
    "public_id",
    "connector",
    "provider_event_id",
    "event_type",
    "tenant_id",
    "verified",
    "skipped",
    "received_at",
    "content_type",
    "headers_shown",
    "body_sha256",
    "body_text",
)
DELIVERY_INLINE_FIELDS = (
    "webhook_id",
    "destination",
    "status",
    "attempts",
    "last_status_code",
    "next_attempt_at",
)
ATTEMPT_FIELDS = ("started_at", "status_code", "latency_ms", "error")
DELIVERY_FIELDS = (
    "webhook_id",
    "event",
    "lifecycle_event",
    "destination",
    "status",
    "attempts",
    "next_attempt_at",
    "lease_until",
    "last_status_code",
    "created_at",
    "updated_at",
)


class ReplayPermission:
    """Replaying writes deliveries: members of the row's team may, viewers may not."""

    def has_replay_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        assert isinstance(self, TeamScopedAdmin)
        return self._may(request, Action.CHANGE, obj)


class DeliveryInline(ReadOnlyInline, admin.TabularInline):
    model = Delivery
    fields = DELIVERY_INLINE_FIELDS
    readonly_fields = DELIVERY_INLINE_FIELDS
    extra = 0
    show_change_link = True
    can_delete = False


class DeliveryAttemptInline(ReadOnlyInline, admin.TabularInline):
    model = DeliveryAttempt
    fields = ATTEMPT_FIELDS
    readonly_fields = ATTEMPT_FIELDS
    extra = 0
    can_delete = False


class EventLogAdmin(ExactIdSearch, ReplayPermission, ReadOnlyTeamScopedAdmin):
    """A log of events sent to the app (received triggers, lifecycle events): read-only, each
    with its body and its deliveries, replayable under the same webhook-id."""

    actions = ["replay"]
    show_full_result_count = False

    def send_again(self, event: Any, actor: Any) -> int:
        """Queue ``event``'s deliveries again; how many."""
        raise NotImplementedError

    def breadcrumb_parents(self, obj: Any) -> list[models.Model]:
        return [obj.connector]

    @admin.display(description="Body")
    def body_text(self, obj: Any) -> str:
        return bytes(obj.body).decode("utf-8", errors="replace")

    @admin.action(description="Replay to its destinations", permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        count = sum(
            self.send_again(event, request.user) for event in queryset.select_related("connector")
        )
        messages.success(request, f"Queued {count} delivery(ies) again.")


@admin.register(InboundEvent)
class InboundEventAdmin(EventLogAdmin):
    list_display = [
        "public_id",
        "connector",
        "event_type",
        "tenant_id",
        "verified",
        "forwarded",
        "received_at",
    ]
    list_filter = ["verified", "skipped", ("connector", TeamRelatedFilter)]
    list_select_related = ["connector"]
    exact_search = ("public_id", "provider_event_id", "body_sha256")
    fields = EVENT_FIELDS
    readonly_fields = EVENT_FIELDS
    inlines = [DeliveryInline]

    def send_again(self, event: InboundEvent, actor: Any) -> int:
        return deliveries.event_replay(event=event, actor=actor)

    @admin.display(description="Forwarded", boolean=True)
    def forwarded(self, obj: InboundEvent) -> bool:
        """False: received and skipped, the connector's events do not select its type."""
        return not obj.skipped

    @admin.display(description="Headers")
    def headers_shown(self, obj: InboundEvent) -> str:
        # Redacted again on the way out: rows stored before signatures were redacted, and a
        # custom connector whose signature header was renamed since, still show none.
        shown = triggers.redacted(
            obj.headers, also=triggers.signature_headers(obj.connector.config)
        )
        return json.dumps(shown, indent=2, sort_keys=True)


@admin.register(Delivery)
class DeliveryAdmin(ExactIdSearch, ReplayPermission, ReadOnlyTeamScopedAdmin):
    list_display = [
        "webhook_id",
        "source_event",
        "destination",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
    ]
    list_filter = ["status", ("destination", DestinationFilter)]
    list_select_related = ["event", "lifecycle_event", "destination__environment__project"]
    # webhook-id as a receiver logged it, whole or its start; the event's trq_ id whole.
    exact_search = ("event__public_id",)
    prefix_search = ("webhook_id",)

    def breadcrumb_parents(self, obj: Delivery) -> list[models.Model]:
        event = obj.event or obj.lifecycle_event
        return [event.connector, event] if event is not None else []

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Delivery], search_term: str
    ) -> tuple[QuerySet[Delivery], bool]:
        # One index per search: an OR of the two, across the join, read every delivery.
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.startswith("trq_"):
            return queryset.filter(event__public_id=term), False
        return queryset.filter(webhook_id__startswith=term), False

    readonly_fields = DELIVERY_FIELDS
    fields = DELIVERY_FIELDS
    inlines = [DeliveryAttemptInline]
    show_full_result_count = False

    @admin.display(description="Event")
    def source_event(self, obj: Delivery) -> Any:
        """The inbound or the lifecycle event delivered: one column, as a delivery has one."""
        return lists.cut(obj.event or obj.lifecycle_event or "—")


LIFECYCLE_FIELDS = (
    "public_id",
    "type",
    "connector",
    "installation_public_id",
    "grant_public_id",
    "created_at",
    "body_text",
)


class LifecycleDeliveryInline(DeliveryInline):
    fk_name = "lifecycle_event"


@admin.register(LifecycleEvent)
class LifecycleEventAdmin(EventLogAdmin):
    """What the app was told about its connections, and how each delivery went."""

    list_display = ["public_id", "type", "connector", "grant_public_id", "created_at"]
    list_filter = ["type", ("connector", TeamRelatedFilter)]
    list_select_related = ["connector"]
    exact_search = ("public_id", "installation_public_id", "grant_public_id")
    fields = LIFECYCLE_FIELDS
    readonly_fields = LIFECYCLE_FIELDS
    inlines = [LifecycleDeliveryInline]

    def send_again(self, event: LifecycleEvent, actor: Any) -> int:
        return deliveries.lifecycle_event_replay(event=event, actor=actor)


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(ReadOnlyTeamScopedAdmin):
    list_display = ["delivery", "started_at", "status_code", "latency_ms", "error"]
    list_filter = [StatusCodeFilter]
    list_select_related = ["delivery"]
    show_full_result_count = False


@admin.register(TriggerDestination)
class TriggerDestinationAdmin(ReplayPermission, OneTimeSecretsAdmin, TeamScopedAdmin):
    """Destinations are edited on their connector's page; here they are operated."""

    list_display = [
        # Its name is project/environment/path: those three as columns said it twice.
        "__str__",
        "connector",
        "kind",
        "enabled",
        "disabled_reason",
    ]
    list_filter = ["enabled", "kind", "disabled_reason", ("connector", TeamRelatedFilter)]
    list_select_related = ["connector", "project", "environment__project"]
    fields = [
        "connector",
        "kind",
        "project",
        "environment",
        "path",
        "enabled",
        "disabled_reason",
        "disabled_at",
        "failing_since",
        "slow_until",
        "has_previous_secret",
    ]
    readonly_fields = [
        "connector",
        "kind",
        "project",
        "environment",
        "path",
        "disabled_reason",
        "disabled_at",
        "failing_since",
        "slow_until",
        "has_previous_secret",
    ]
    actions = ["replay_failed", "rotate_secret"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: TriggerDestination, form: forms.ModelForm, change: bool
    ) -> None:
        if change and not form.has_changed():
            return  # nothing to save or audit
        # Through the service: turning a destination the app disabled back on clears why.
        destinations.destination_save(destination=obj, actor=request.user)

    @admin.display(boolean=True, description="Previous secret still signing")
    def has_previous_secret(self, obj: TriggerDestination) -> bool:
        return obj.has_secret("previous_signing_secret")

    @admin.action(description="Replay failed deliveries", permissions=["replay"])
    def replay_failed(self, request: HttpRequest, queryset: QuerySet[TriggerDestination]) -> None:
        count = sum(
            deliveries.destination_replay_failed(destination=d, actor=request.user)
            for d in queryset.select_related("connector")
        )
        messages.success(request, f"Queued {count} failed delivery(ies) again.")

    @admin.action(
        description="Rotate signing secret (old one signs for 24 h)", permissions=["change"]
    )
    def rotate_secret(
        self, request: HttpRequest, queryset: QuerySet[TriggerDestination]
    ) -> HttpResponse:
        secrets = [
            OneTimeSecret(
                label=f"New signing secret for {destination}",
                value=destinations.destination_rotate_secret(
                    destination=destination, actor=request.user
                ),
            )
            for destination in queryset.select_related("connector")
        ]
        # Shown once, to the member who asked for it, on a page of its own (see ``one_time``).
        return self.show_once(
            request, secrets=secrets, next_url=request.get_full_path(), title="New signing secrets"
        )
