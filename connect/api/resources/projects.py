"""``/v1/connect/projects``: projects and their environments."""

from typing import Any

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from connect.api.management import ManagementView
from connect.api.resources import base
from connect.api.schema import error_responses
from connect.models import Environment, Project
from connect.models.projects import STANDARD_ENVIRONMENTS
from connect.permissions import Action
from connect.services import projects


class EnvironmentOut(serializers.Serializer):
    id = serializers.CharField(help_text="`env_…`")
    slug = serializers.CharField()
    baseUrl = serializers.CharField(allow_blank=True)


class ProjectOut(serializers.Serializer):
    id = serializers.CharField(help_text="`prj_…`")
    name = serializers.CharField()
    slug = serializers.CharField()
    createdAt = serializers.IntegerField()
    environments = EnvironmentOut(many=True)


class ProjectIn(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    slug = serializers.SlugField(max_length=60)
    environments = serializers.ListField(
        child=serializers.SlugField(max_length=60),
        max_length=20,
        default=list(STANDARD_ENVIRONMENTS),
        help_text="Default: production, preview, development.",
    )


class EnvironmentIn(serializers.Serializer):
    slug = serializers.SlugField(max_length=60)
    baseUrl = serializers.CharField(
        max_length=200,
        required=False,
        default="",
        allow_blank=True,
        help_text="Where forwarded triggers for this environment go: an absolute https:// URL.",
    )


def environment_body(environment: Environment) -> dict[str, Any]:
    return {"id": environment.public_id, "slug": environment.slug, "baseUrl": environment.base_url}


def project_body(project: Project) -> dict[str, Any]:
    return {
        "id": project.public_id,
        "name": project.name,
        "slug": project.slug,
        "createdAt": base.millis(project.created_at),
        "environments": [environment_body(e) for e in project.environments.all()],
    }


def project_in_team(team_id: int, ref: str) -> Project:
    """By ``prj_`` id or by slug."""
    return base.by_ref(
        Project.objects.for_team(team_id),
        ref,
        prefix="prj_",
        or_field="slug",
        missing="No such project in this team.",
    )


def environment_of(project: Project, ref: str) -> Environment:
    """By ``env_`` id or by slug."""
    return base.by_ref(
        project.environments.all(),
        ref,
        prefix="env_",
        or_field="slug",
        missing="No such environment in this project.",
    )


EXAMPLE = {
    "id": "prj_3kD9wQ1xV8mZ2pL5",
    "name": "Web",
    "slug": "web",
    "createdAt": 1764662400000,
    "environments": [
        {"id": "env_7pQ2xW9kL4mN8vR3", "slug": "production", "baseUrl": "https://acme.test"}
    ],
}


class ProjectsView(ManagementView):
    @base.list_schema(
        operation_id="projects_list",
        summary="List projects",
        page=("ProjectPage", "projects", ProjectOut),
        example=EXAMPLE,
    )
    def get(self, request: Request) -> Response:
        actor = self.actor(request, Action.VIEW)
        queryset = Project.objects.for_team(actor.team_id).prefetch_related("environments")
        return Response(base.page(request, queryset, key="projects", render=project_body))

    @base.operation(
        "projects_create",
        "Create a project with its environments",
        request=ProjectIn,
        responses={201: ProjectOut, **error_responses(409)},
        sends={"Create": {"name": "Web", "slug": "web", "environments": ["production"]}},
        answers={"Created": EXAMPLE},
    )
    def post(self, request: Request) -> Response:
        actor = self.actor(request, Action.ADD)
        data = base.parsed(ProjectIn, request.data)
        with base.model_checked():
            project = projects.project_create(
                team_id=actor.team_id,
                name=data["name"],
                slug=data["slug"],
                environments=data["environments"],
                actor=actor.label,
            )
        return Response(project_body(project), status=201)


class ProjectView(ManagementView):
    @base.operation(
        "projects_get", "A project", responses={200: ProjectOut}, answers={"Project": EXAMPLE}
    )
    def get(self, request: Request, project: str) -> Response:
        actor = self.actor(request, Action.VIEW)
        return Response(project_body(project_in_team(actor.team_id, project)))

    @base.operation(
        "projects_delete",
        "Delete a project",
        description="Its environments, links, destinations and credentials go with it.",
        responses={204: None},
    )
    def delete(self, request: Request, project: str) -> Response:
        actor = self.actor(request, Action.DELETE)
        projects.project_delete(project=project_in_team(actor.team_id, project), actor=actor.label)
        return Response(status=204)


class EnvironmentsView(ManagementView):
    @base.operation(
        "environments_list",
        "A project's environments",
        responses={
            200: inline_serializer(
                name="EnvironmentList", fields={"environments": EnvironmentOut(many=True)}
            )
        },
    )
    def get(self, request: Request, project: str) -> Response:
        actor = self.actor(request, Action.VIEW)
        found = project_in_team(actor.team_id, project)
        return Response({"environments": [environment_body(e) for e in found.environments.all()]})

    @base.operation(
        "environments_create",
        "Add an environment",
        request=EnvironmentIn,
        responses={201: EnvironmentOut, **error_responses(409)},
        sends={"Staging": {"slug": "staging", "baseUrl": "https://staging.acme.test"}},
    )
    def post(self, request: Request, project: str) -> Response:
        actor = self.actor(request, Action.CHANGE)
        found = project_in_team(actor.team_id, project)
        data = base.parsed(EnvironmentIn, request.data)
        with base.model_checked():
            environment = projects.environment_add(
                project=found, slug=data["slug"], base_url=data["baseUrl"], actor=actor.label
            )
        return Response(environment_body(environment), status=201)


class EnvironmentView(ManagementView):
    @base.operation(
        "environments_delete",
        "Remove an environment",
        description="Links lose it; a link left with none is removed (as in the admin).",
        responses={204: None},
    )
    def delete(self, request: Request, project: str, environment: str) -> Response:
        actor = self.actor(request, Action.CHANGE)
        found = environment_of(project_in_team(actor.team_id, project), environment)
        projects.environment_delete(environment=found, actor=actor.label)
        return Response(status=204)
