from django.contrib import admin

from connect.admin.scoping import ReadOnlyTeamScopedAdmin
from connect.models import Delivery, DeliveryAttempt, InboundEvent

EVENT_FIELDS = (
    "public_id",
    "connector",
    "installation",
    "provider_event_id",
    "event_type",
    "verified",
    "received_at",
    "content_type",
    "headers",
    "body_text",
)


@admin.register(InboundEvent)
class InboundEventAdmin(ReadOnlyTeamScopedAdmin):
    list_display = ["public_id", "connector", "event_type", "verified", "received_at"]
    list_filter = ["verified", ("connector", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["connector"]
    search_fields = ["public_id", "provider_event_id"]
    fields = EVENT_FIELDS
    readonly_fields = EVENT_FIELDS
    show_full_result_count = False

    @admin.display(description="Body")
    def body_text(self, obj: InboundEvent) -> str:
        return bytes(obj.body).decode("utf-8", errors="replace")


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyTeamScopedAdmin):
    list_display = [
        "webhook_id",
        "destination",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
    ]
    list_filter = ["status", ("destination", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["destination__environment__project"]
    search_fields = ["webhook_id", "event__public_id"]
    show_full_result_count = False


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(ReadOnlyTeamScopedAdmin):
    list_display = ["delivery", "started_at", "status_code", "latency_ms", "error"]
    list_select_related = ["delivery"]
    show_full_result_count = False
