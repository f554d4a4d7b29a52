from django.contrib import admin

from connect.admin.filters import ExactIdSearch, TeamRelatedFilter
from connect.admin.scoping import ReadOnlyTeamScopedAdmin
from connect.models import AuditEvent, AuthorizationRequest


@admin.register(AuditEvent)
class AuditEventAdmin(ExactIdSearch, ReadOnlyTeamScopedAdmin):
    list_display = ["type", "actor", "team", "created_at"]
    # The type's choices are the enum's: a fixed list, no DISTINCT over the log.
    list_filter = ["type", ("team", TeamRelatedFilter)]
    list_select_related = ["team"]
    exact_search = ("type", "actor")
    show_full_result_count = False


@admin.register(AuthorizationRequest)
class AuthorizationRequestAdmin(ExactIdSearch, ReadOnlyTeamScopedAdmin):
    list_display = ["public_id", "kind", "connector", "outcome", "expires_at", "created_at"]
    list_filter = ["kind", "outcome"]
    list_select_related = ["connector"]
    exact_search = ("public_id", "subject_id")
    exclude = ["verifier_sha256", "state", "pkce_verifier_sealed"]
