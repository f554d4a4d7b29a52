"""``/v1/connect/grants``: who has authorized what, revoking one, and importing grants made
elsewhere (the only way to import app and jwt-bearer grants)."""

from typing import Any

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from connect.api import serializers as wire
from connect.api import shapes
from connect.api.management import ManagementView
from connect.api.resources import base
from connect.api.resources.installations import connector_in_team
from connect.api.resources.projects import project_in_team
from connect.models import Grant
from connect.models.installations import GrantStatus, SubjectType
from connect.permissions import Action
from connect.services import grants, installations


class GrantOut(serializers.Serializer):
    id = serializers.CharField(help_text="`sgr_…`")
    connectorId = serializers.CharField()
    installationId = serializers.CharField()
    subject = shapes.Subject()
    externalSubject = serializers.CharField(allow_blank=True)
    projectId = serializers.CharField(allow_null=True, help_text="The project that made it.")
    scopes = serializers.ListField(child=serializers.CharField())
    status = serializers.ChoiceField(choices=GrantStatus.values)
    expiresAt = serializers.IntegerField(allow_null=True)
    createdAt = serializers.IntegerField()
    updatedAt = serializers.IntegerField()


class ImportIn(serializers.Serializer):
    connector = serializers.CharField(max_length=200, help_text="`scl_…` or uid.")
    projectId = serializers.CharField(
        max_length=60,
        required=False,
        help_text="Import for this project's users (their issuer defaults to it).",
    )
    tokens = serializers.ListField(
        child=serializers.DictField(), allow_empty=False, max_length=1000
    )


def grant_body(grant: Grant) -> dict[str, Any]:
    subject: dict[str, Any] = {"type": grant.subject_type}
    if grant.subject_id:
        subject["id"] = grant.subject_id
    if grant.issuer:
        subject["issuer"] = grant.issuer
    return {
        "id": grant.public_id,
        "connectorId": grant.installation.connector.public_id,
        "installationId": grant.installation.public_id,
        "subject": subject,
        "externalSubject": grant.external_subject,
        "projectId": grant.project.public_id if grant.project else None,
        "scopes": list(grant.scopes or []),
        "status": grant.status,
        "expiresAt": base.millis(grant.access_expires_at),
        "createdAt": base.millis(grant.created_at),
        "updatedAt": base.millis(grant.updated_at),
    }


EXAMPLE = {
    "id": "sgr_1xP7kW4qL9mN2vR8",
    "connectorId": "scl_7Hq2mV4kP9xR3tW8",
    "installationId": "sci_4fJ8kQ2mN7pL1xZ9",
    "subject": {"type": "user", "id": "u_42", "issuer": "prj_3kD9wQ1xV8mZ2pL5"},
    "externalSubject": "octocat",
    "projectId": "prj_3kD9wQ1xV8mZ2pL5",
    "scopes": ["repo"],
    "status": "active",
    "expiresAt": 1764748800000,
    "createdAt": 1764662400000,
    "updatedAt": 1764662400000,
}


def _grants(team_id: int) -> Any:
    return Grant.objects.for_team(team_id).select_related("installation__connector", "project")


class GrantsView(ManagementView):
    @base.list_schema(
        operation_id="grants_list",
        summary="List grants",
        description='Filter by subject to answer "what has this user authorized?".',
        filtered_by=(
            ("subjectType", "Only this subject type.", SubjectType.values),
            ("subjectId", "Only this subject's (a user id, or a jwt-bearer `sub`)."),
            ("issuer", "Only user ids under this issuer."),
            ("connector", "Only this connector's (`scl_…` or uid)."),
            ("installationId", "Only this installation's."),
            ("status", "Only these.", GrantStatus.values),
        ),
        page=("GrantPage", "grants", GrantOut),
        example=EXAMPLE,
    )
    def get(self, request: Request) -> Response:
        actor = self.actor(request, Action.VIEW)
        queryset = base.filtered(
            request,
            _grants(actor.team_id),
            ("subjectType", "subject_type", SubjectType.values),
            ("subjectId", "subject_id"),
            ("issuer", "issuer"),
            ("installationId", "installation__public_id"),
            ("status", "status", GrantStatus.values),
        )
        if connector := request.query_params.get("connector"):
            found = connector_in_team(actor.team_id, connector)
            queryset = queryset.filter(installation__connector=found)
        return Response(base.page(request, queryset, key="grants", render=grant_body))


class GrantView(ManagementView):
    @base.operation("grants_get", "A grant", responses={200: GrantOut}, answers={"Grant": EXAMPLE})
    def get(self, request: Request, grant: str) -> Response:
        actor = self.actor(request, Action.VIEW)
        found = base.in_team(_grants(actor.team_id), actor.team_id, grant, "grant")
        return Response(grant_body(found))

    @base.operation(
        "grants_revoke",
        "Revoke a grant",
        description="Its tokens are revoked at the provider where they may go (only to the "
        "URLs they came from), then cleared; the grant stays, `revoked`.",
        responses={204: None},
    )
    def delete(self, request: Request, grant: str) -> Response:
        actor = self.actor(request, Action.CHANGE)
        found = base.in_team(_grants(actor.team_id), actor.team_id, grant, "grant")
        if found.status != GrantStatus.REVOKED:
            installations.grant_revoke(grant=found, actor=actor.label)
        return Response(status=204)


class GrantsImportView(ManagementView):
    @base.operation(
        "grants_import",
        "Import grants made elsewhere",
        description="Each item succeeds or fails alone, as in the runtime import; a team "
        "token (member or owner) may also import app and jwt-bearer grants, which serve every "
        "linked project. An import never replaces another project's active grant.",
        request=ImportIn,
        responses={200: shapes.ImportResponse},
        sends={
            "App grant": {
                "connector": "slack/acme-bot",
                "tokens": [
                    {
                        "subject": {"type": "app"},
                        "installationId": "sci_4fJ8kQ2mN7pL1xZ9",
                        "accessToken": "xoxb-…",
                    }
                ],
            }
        },
    )
    def post(self, request: Request) -> Response:
        actor = self.actor(request, Action.ADD)
        data = base.parsed(ImportIn, request.data)
        project = (
            project_in_team(actor.team_id, data["projectId"]) if data.get("projectId") else None
        )
        result = grants.grants_import(
            importer=grants.Importer.team_token(
                team_id=actor.team_id, label=actor.label, project=project
            ),
            connector=connector_in_team(actor.team_id, data["connector"]),
            items=data["tokens"],
        )
        return Response(wire.import_body(result))
