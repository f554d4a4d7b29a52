"""``/v1/connect/credentials``: deployment credentials (the runtime API's static bearers)."""

from typing import Any

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from connect.api.management import ManagementView
from connect.api.resources import base
from connect.api.resources.projects import environment_of, project_in_team
from connect.models import DeploymentCredential
from connect.permissions import Action
from connect.services import credentials


class CredentialOut(serializers.Serializer):
    id = serializers.CharField(help_text="`dpc_…`")
    name = serializers.CharField(allow_blank=True)
    projectId = serializers.CharField()
    environment = serializers.CharField()
    prefix = serializers.CharField(help_text="The token starts `cdc_<prefix>_`.")
    createdAt = serializers.IntegerField()
    lastUsedAt = serializers.IntegerField(allow_null=True)
    revokedAt = serializers.IntegerField(allow_null=True)


class CredentialCreated(CredentialOut):
    token = serializers.CharField(help_text="The credential: shown in this answer only.")


class CredentialIn(serializers.Serializer):
    projectId = serializers.CharField(max_length=60, help_text="`prj_…` or the slug.")
    environment = serializers.CharField(max_length=60, help_text="`env_…` or the slug.")
    name = serializers.CharField(max_length=120, required=False, default="", allow_blank=True)


def credential_body(credential: DeploymentCredential) -> dict[str, Any]:
    return {
        "id": credential.public_id,
        "name": credential.name,
        "projectId": credential.project.public_id,
        "environment": credential.environment.slug,
        "prefix": credential.prefix,
        "createdAt": base.millis(credential.created_at),
        "lastUsedAt": base.millis(credential.last_used_at),
        "revokedAt": base.millis(credential.revoked_at),
    }


EXAMPLE = {
    "id": "dpc_5mW8qR2xK7pL3vN9",
    "name": "vercel production",
    "projectId": "prj_3kD9wQ1xV8mZ2pL5",
    "environment": "production",
    "prefix": "h3Kd92LmQx7a",
    "createdAt": 1764662400000,
    "lastUsedAt": None,
    "revokedAt": None,
}


class CredentialsView(ManagementView):
    @base.list_schema(
        operation_id="credentials_list",
        summary="List deployment credentials",
        filtered_by=(
            ("projectId", "Only this project's (`prj_…` or slug)."),
            ("status", "`active` or `revoked`; default both.", ("active", "revoked")),
        ),
        page=("CredentialPage", "credentials", CredentialOut),
        example=EXAMPLE,
    )
    def get(self, request: Request) -> Response:
        actor = self.actor(request, Action.VIEW)
        queryset = DeploymentCredential.objects.for_team(actor.team_id).select_related(
            "project", "environment"
        )
        if project := request.query_params.get("projectId"):
            queryset = queryset.filter(project=project_in_team(actor.team_id, project))
        status = request.query_params.get("status")
        if status in ("active", "revoked"):
            queryset = queryset.filter(revoked_at__isnull=status == "active")
        return Response(base.page(request, queryset, key="credentials", render=credential_body))

    @base.operation(
        "credentials_create",
        "Create a deployment credential",
        description="The answer carries `token`, the only time it is shown; it is stored as "
        "its SHA-256.",
        request=CredentialIn,
        responses={201: CredentialCreated},
        sends={"Create": {"projectId": "web", "environment": "production", "name": "vercel"}},
        answers={"Created": {**EXAMPLE, "token": "cdc_h3Kd92LmQx7a_Qm8v…"}},
    )
    def post(self, request: Request) -> Response:
        actor = self.actor(request, Action.ADD)
        data = base.parsed(CredentialIn, request.data)
        project = project_in_team(actor.team_id, data["projectId"])
        credential = DeploymentCredential(
            project=project,
            environment=environment_of(project, data["environment"]),
            name=data["name"],
        )
        token = credentials.deployment_credential_create(credential=credential, actor=actor.label)
        return Response({**credential_body(credential), "token": token}, status=201)


class CredentialView(ManagementView):
    @base.operation(
        "credentials_revoke",
        "Revoke a deployment credential",
        description="It stops working at once; the row stays, for the record.",
        responses={204: None},
    )
    def delete(self, request: Request, credential: str) -> Response:
        actor = self.actor(request, Action.CHANGE)
        found = base.in_team(
            DeploymentCredential.objects.all(), actor.team_id, credential, "credential"
        )
        if found.revoked_at is None:
            credentials.deployment_credentials_revoke(
                credentials=DeploymentCredential.objects.filter(pk=found.pk), actor=actor.label
            )
        return Response(status=204)
