from django.contrib import admin

from connect.admin.filters import TeamRelatedFilter
from connect.admin.scoping import ReadOnlyTeamScopedAdmin
from connect.models import AuditEvent, AuthorizationRequest


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyTeamScopedAdmin):
    list_display = ["type", "actor", "team", "created_at"]
    list_filter = ["type", ("team", TeamRelatedFilter)]
    list_select_related = ["team"]
    search_fields = ["type", "actor"]
    show_full_result_count = False


@admin.register(AuthorizationRequest)
class AuthorizationRequestAdmin(ReadOnlyTeamScopedAdmin):
    list_display = ["public_id", "kind", "connector", "outcome", "expires_at", "created_at"]
    list_filter = ["kind", "outcome"]
    list_select_related = ["connector"]
    search_fields = ["public_id", "subject_id"]
    exclude = ["verifier_sha256", "state", "pkce_verifier_sealed"]
