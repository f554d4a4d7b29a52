"""What every management API view shares: a team API token, its team, the permission table."""

from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from connect import errors
from connect.api.authentication import ManagementRateThrottle, TeamTokenAuthentication
from connect.models import Role, Team
from connect.permissions import Action, least_role, role_allows
from connect.services.api_tokens import TeamActor


def team_actor(request: Request) -> TeamActor:
    actor = request.auth
    assert isinstance(actor, TeamActor)
    return actor


def check_team_scope(request: Request, actor: TeamActor) -> None:
    """``?teamId=`` or ``?slug=`` (Vercel's team scope) may only name the token's own team."""
    team_id = request.query_params.get("teamId")
    slug = request.query_params.get("slug")
    if team_id and slug:
        raise errors.InvalidRequest("Send teamId or slug, not both.")
    if not team_id and not slug:
        return
    team = Team.objects.filter(pk=actor.team_id).values("public_id", "slug").get()
    if (team_id and team_id != team["public_id"]) or (slug and slug != team["slug"]):
        raise errors.Forbidden("This token belongs to another team.")


def require(actor: TeamActor, action: Action) -> None:
    """Forbidden unless the token's effective role may do ``action`` (the admin's rule)."""
    if not role_allows(actor.role, action):
        raise errors.Forbidden(
            f"This token acts as a {actor.role}; this needs the {least_role(action)} role."
        )


class ManagementView(APIView):
    """A management endpoint: team API tokens only, in their own rate-limit bucket."""

    authentication_classes = [TeamTokenAuthentication]
    throttle_classes = [ManagementRateThrottle]
    permission_classes: list[Any] = []

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if isinstance(request.auth, TeamActor):
            check_team_scope(request, request.auth)

    def actor(self, request: Request, action: Action = Action.VIEW) -> TeamActor:
        actor = team_actor(request)
        require(actor, action)
        return actor


class WhoamiView(ManagementView):
    """The token's team and the role it acts with now."""

    @extend_schema(
        operation_id="whoami",
        summary="The token's team and role",
        responses={
            200: inline_serializer(
                name="Whoami",
                fields={
                    "team": inline_serializer(
                        name="WhoamiTeam",
                        fields={
                            "id": serializers.CharField(),
                            "slug": serializers.CharField(),
                            "name": serializers.CharField(),
                        },
                    ),
                    "token": inline_serializer(
                        name="WhoamiToken",
                        fields={
                            "id": serializers.CharField(),
                            "name": serializers.CharField(),
                            "role": serializers.ChoiceField(choices=Role.values),
                        },
                    ),
                },
            )
        },
        examples=[
            OpenApiExample(
                "Whoami",
                value={
                    "team": {"id": "team_2kW9xQ4pL7mN3vR8", "slug": "acme", "name": "Acme"},
                    "token": {"id": "tok_4kW9xQ2pL7mN3vR8", "name": "terraform", "role": "member"},
                },
                response_only=True,
            )
        ],
    )
    def get(self, request: Request) -> Response:
        actor = self.actor(request)
        team = Team.objects.get(pk=actor.team_id)
        return Response(
            {
                "team": {"id": team.public_id, "slug": team.slug, "name": team.name},
                "token": {"id": actor.token_public_id, "name": actor.name, "role": actor.role},
            }
        )
