"""``/v1/connect/trusted-issuers``: external OIDC issuers whose tokens act as a deployment."""

from typing import Any

from django.db import transaction
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from connect.api.management import ManagementView
from connect.api.resources import base
from connect.api.resources.projects import environment_of, project_in_team
from connect.api.schema import error_responses
from connect.models import TrustedIssuer, TrustedIssuerRule
from connect.permissions import Action
from connect.services import configuration


class RuleOut(serializers.Serializer):
    id = serializers.CharField(help_text="`tir_…`")
    requiredClaims = serializers.DictField(child=serializers.CharField())
    projectId = serializers.CharField()
    environment = serializers.CharField()


class IssuerOut(serializers.Serializer):
    id = serializers.CharField(help_text="`tis_…`")
    issuer = serializers.CharField()
    jwksUrl = serializers.CharField()
    audience = serializers.CharField()
    createdAt = serializers.IntegerField()
    rules = RuleOut(many=True)


class RuleIn(serializers.Serializer):
    requiredClaims = serializers.DictField(
        child=serializers.CharField(max_length=500),
        help_text='Claims that must all match, e.g. {"repository": "acme/web"}.',
    )
    projectId = serializers.CharField(max_length=60)
    environment = serializers.CharField(max_length=60)


class IssuerIn(serializers.Serializer):
    issuer = serializers.CharField(max_length=200)
    jwksUrl = serializers.CharField(max_length=200)
    audience = serializers.CharField(
        max_length=255, required=False, help_text="Default: your team's own audience."
    )
    rules = serializers.ListField(child=RuleIn(), max_length=50)


def issuer_body(issuer: TrustedIssuer) -> dict[str, Any]:
    return {
        "id": issuer.public_id,
        "issuer": issuer.issuer,
        "jwksUrl": issuer.jwks_url,
        "audience": issuer.audience,
        "createdAt": base.millis(issuer.created_at),
        "rules": [
            {
                "id": rule.public_id,
                "requiredClaims": rule.required_claims,
                "projectId": rule.project.public_id,
                "environment": rule.environment.slug,
            }
            for rule in issuer.rules.all()
        ],
    }


EXAMPLE = {
    "id": "tis_2nV8kQ5xW3pL9mR7",
    "issuer": "https://token.actions.githubusercontent.com",
    "jwksUrl": "https://token.actions.githubusercontent.com/.well-known/jwks",
    "audience": "https://connect.example.com/teams/team_8xK2",
    "createdAt": 1764662400000,
    "rules": [
        {
            "id": "tir_6qW3xL8kP2vN9mR4",
            "requiredClaims": {"repository": "acme/web"},
            "projectId": "prj_3kD9wQ1xV8mZ2pL5",
            "environment": "preview",
        }
    ],
}


@transaction.atomic
def _create(team_id: int, data: dict[str, Any], actor: str) -> TrustedIssuer:
    issuer = TrustedIssuer(
        team_id=team_id, issuer=data["issuer"], jwks_url=data["jwksUrl"], audience=""
    )
    issuer.audience = data.get("audience") or issuer.team.workload_audience
    issuer.full_clean()
    configuration.configuration_save(obj=issuer, actor=actor)
    for raw in data["rules"]:
        project = project_in_team(team_id, raw["projectId"])
        rule = TrustedIssuerRule(
            trusted_issuer=issuer,
            required_claims=raw["requiredClaims"],
            project=project,
            environment=environment_of(project, raw["environment"]),
        )
        rule.full_clean()
        configuration.configuration_save(obj=rule, actor=actor)
    return issuer


def _issuer(team_id: int, ref: str) -> TrustedIssuer:
    found: TrustedIssuer = base.in_team(TrustedIssuer.objects.all(), team_id, ref, "trusted issuer")
    return found


class TrustedIssuersView(ManagementView):
    @base.list_schema(
        operation_id="trusted_issuers_list",
        summary="List trusted issuers",
        page=("TrustedIssuerPage", "trustedIssuers", IssuerOut),
    )
    def get(self, request: Request) -> Response:
        actor = self.actor(request, Action.VIEW)
        queryset = TrustedIssuer.objects.for_team(actor.team_id).prefetch_related(
            "rules__project", "rules__environment"
        )
        return Response(base.page(request, queryset, key="trustedIssuers", render=issuer_body))

    @base.operation(
        "trusted_issuers_create",
        "Trust an OIDC issuer",
        description="Its tokens act as a project and environment when every claim of a rule "
        "matches. The issuer and JWKS URL are checked as the admin checks them.",
        request=IssuerIn,
        responses={201: IssuerOut, **error_responses(409)},
        answers={"Created": EXAMPLE},
    )
    def post(self, request: Request) -> Response:
        actor = self.actor(request, Action.ADD)
        data = base.parsed(IssuerIn, request.data)
        with base.model_checked():
            issuer = _create(actor.team_id, data, actor.label)
        return Response(issuer_body(issuer), status=201)


class TrustedIssuerView(ManagementView):
    @base.operation("trusted_issuers_get", "A trusted issuer", responses={200: IssuerOut})
    def get(self, request: Request, issuer: str) -> Response:
        actor = self.actor(request, Action.VIEW)
        return Response(issuer_body(_issuer(actor.team_id, issuer)))

    @base.operation("trusted_issuers_delete", "Stop trusting an issuer", responses={204: None})
    def delete(self, request: Request, issuer: str) -> Response:
        actor = self.actor(request, Action.DELETE)
        configuration.configuration_delete(obj=_issuer(actor.team_id, issuer), actor=actor.label)
        return Response(status=204)
