"""``/v1/connect/api-tokens``: team API tokens, managed by owners (with an owner's token)."""

from datetime import UTC, datetime
from typing import Any

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from connect import errors
from connect.api.management import ManagementView
from connect.api.resources import base
from connect.models.api_tokens import TeamApiToken
from connect.models.base import ROLE_RANK, Role
from connect.permissions import Action
from connect.services import api_tokens


class ApiTokenOut(serializers.Serializer):
    id = serializers.CharField(help_text="`tok_…`")
    name = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.values)
    prefix = serializers.CharField(help_text="The token starts `cat_<prefix>_`.")
    createdAt = serializers.IntegerField()
    expiresAt = serializers.IntegerField(allow_null=True)
    lastUsedAt = serializers.IntegerField(allow_null=True)
    revokedAt = serializers.IntegerField(allow_null=True)


class ApiTokenCreated(ApiTokenOut):
    token = serializers.CharField(help_text="The token: shown in this answer only.")


class ApiTokenIn(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    role = serializers.ChoiceField(choices=Role.values)
    expiresAt = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=253402300799000,
        help_text="Epoch milliseconds; absent or null: until revoked.",
    )


def token_body(token: TeamApiToken) -> dict[str, Any]:
    return {
        "id": token.public_id,
        "name": token.name,
        "role": token.role,
        "prefix": token.prefix,
        "createdAt": base.millis(token.created_at),
        "expiresAt": base.millis(token.expires_at),
        "lastUsedAt": base.millis(token.last_used_at),
        "revokedAt": base.millis(token.revoked_at),
    }


EXAMPLE = {
    "id": "tok_4kW9xQ2pL7mN3vR8",
    "name": "terraform",
    "role": "member",
    "prefix": "Qx7a2LmK9d3h",
    "createdAt": 1764662400000,
    "expiresAt": None,
    "lastUsedAt": 1764666000000,
    "revokedAt": None,
}


class ApiTokensView(ManagementView):
    @base.list_schema(
        operation_id="api_tokens_list",
        summary="List team API tokens",
        description="Owners only. Secrets are never shown again; `lastUsedAt` is updated at "
        "most once a minute.",
        page=("ApiTokenPage", "apiTokens", ApiTokenOut),
        example=EXAMPLE,
    )
    def get(self, request: Request) -> Response:
        actor = self.actor(request, Action.MANAGE_TOKENS)
        queryset = TeamApiToken.objects.for_team(actor.team_id)
        return Response(base.page(request, queryset, key="apiTokens", render=token_body))

    @base.operation(
        "api_tokens_create",
        "Create a team API token",
        description="Owners only. The answer carries `token`, the only time it is shown. The "
        "new token answers to the same person as the one creating it, and never acts above "
        "that person's role.",
        request=ApiTokenIn,
        responses={201: ApiTokenCreated},
        sends={"Create": {"name": "terraform", "role": "member"}},
        answers={"Created": {**EXAMPLE, "token": "cat_Qx7a2LmK9d3h_…"}},
    )
    def post(self, request: Request) -> Response:
        actor = self.actor(request, Action.MANAGE_TOKENS)
        data = base.parsed(ApiTokenIn, request.data)
        role = Role(data["role"])
        if ROLE_RANK[role] > ROLE_RANK[actor.role]:
            raise errors.Forbidden("A token cannot make a token with a role above its own.")
        parent = TeamApiToken.objects.select_related("created_by").get(pk=actor.token_id)
        expires = data.get("expiresAt")
        token = TeamApiToken(
            team_id=actor.team_id,
            name=data["name"],
            role=role,
            expires_at=None if expires is None else datetime.fromtimestamp(expires / 1000, UTC),
        )
        secret = api_tokens.api_token_create(
            token=token, created_by=parent.created_by, actor=actor.label
        )
        return Response({**token_body(token), "token": secret}, status=201)


class ApiTokenView(ManagementView):
    @base.operation(
        "api_tokens_revoke",
        "Revoke a team API token",
        description="Owners only. It stops working at once.",
        responses={204: None},
    )
    def delete(self, request: Request, token: str) -> Response:
        actor = self.actor(request, Action.MANAGE_TOKENS)
        found = base.in_team(TeamApiToken.objects.all(), actor.team_id, token, "API token")
        api_tokens.api_tokens_revoke(
            tokens=TeamApiToken.objects.filter(pk=found.pk), actor=actor.label
        )
        return Response(status=204)
