from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from connect.admin.scoping import TeamScopedAdmin, TeamScopedInline
from connect.models import Environment, Project
from connect.services import projects


class EnvironmentInline(TeamScopedInline, admin.TabularInline):
    model = Environment
    fields = ["slug", "base_url"]
    extra = 0


@admin.register(Project)
class ProjectAdmin(TeamScopedAdmin):
    list_display = ["name", "slug", "team", "public_id"]
    list_filter = [("team", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "slug", "public_id"]
    readonly_fields = ["public_id", "created_at"]
    inlines = [EnvironmentInline]

    def get_prepopulated_fields(self, request: HttpRequest, obj: Any = None) -> dict[str, Any]:
        return {"slug": ("name",)}

    def delete_inline(self, request: HttpRequest, obj: Any) -> None:
        """An environment goes through its service, which also takes it off the links."""
        if isinstance(obj, Environment):
            projects.environment_delete(environment=obj, actor=request.user)
        else:
            super().delete_inline(request, obj)

    def delete_model(self, request: HttpRequest, obj: Project) -> None:
        projects.project_delete(project=obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for project in queryset:
            projects.project_delete(project=project, actor=request.user)


@admin.register(Environment)
class EnvironmentAdmin(TeamScopedAdmin):
    """Reached from projects; registered so autocompletes and links resolve."""

    list_display = ["slug", "project", "base_url"]
    search_fields = ["slug", "project__slug"]
    list_select_related = ["project"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: Environment) -> None:
        projects.environment_delete(environment=obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for environment in queryset:
            projects.environment_delete(environment=environment, actor=request.user)
