"""The OpenAPI description of the Vercel-shaped connector endpoints (``connect/api/connectors.py``),
kept here so those views stay as they are: the shapes ``@vercel/sdk`` 1.28.35 reads
(``../shared/reference/vercel-management-shapes.md``)."""

from typing import Any

from drf_spectacular.extensions import OpenApiViewExtension
from drf_spectacular.utils import (
    OpenApiParameter,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers

from connect.api import shapes
from connect.api.resources.base import Pagination
from connect.api.schema import error_responses

TEAM = [
    OpenApiParameter("teamId", str, description="The token's own team, or leave out."),
    OpenApiParameter("slug", str, description="The token's own team's slug, or leave out."),
]
PAGE = [
    OpenApiParameter("limit", int, description="1 to 100."),
    OpenApiParameter("cursor", str, description="The previous page's `pagination.next`."),
]


class CustomEnvironment(serializers.Serializer):
    id = serializers.CharField()
    slug = serializers.CharField()


class ConnectionProject(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    customEnvironments = CustomEnvironment(many=True)


class ProjectConnection(serializers.Serializer):
    connectorId = serializers.CharField(help_text="Always the `scl_` id.")
    project = ConnectionProject()
    enabledEnvironments = serializers.ListField(child=serializers.CharField())
    createdAt = serializers.IntegerField()
    updatedAt = serializers.IntegerField()


class ManagementConnector(serializers.Serializer):
    """Vercel's ``ConnectConnector``: what a team token sees. Never a secret."""

    id = serializers.CharField()
    uid = serializers.CharField()
    type = serializers.ChoiceField(choices=shapes.CONNECTOR_TYPES)
    name = serializers.CharField()
    displayName = serializers.CharField()
    typeName = serializers.CharField()
    service = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    createdAt = serializers.IntegerField()
    updatedAt = serializers.IntegerField()
    supportedSubjectTypes = serializers.ListField(child=serializers.CharField())
    supportsIcon = serializers.ChoiceField(choices=["true", "false", "maybe"])
    supportsInstallation = serializers.BooleanField()
    supportsRevocation = serializers.BooleanField()
    supportsTriggers = serializers.BooleanField()
    creationMode = serializers.ChoiceField(choices=["managed", "manual"])
    triggers = shapes.Triggers()
    triggerDestinations = serializers.ListField(child=serializers.DictField())
    events = serializers.ListField(child=serializers.CharField())
    returnOrigins = serializers.ListField(
        child=serializers.CharField(), help_text="Origins a consent's returnUrl may point at."
    )
    icon = serializers.CharField(allow_null=True)
    backgroundColor = serializers.CharField(allow_blank=True)
    accentColor = serializers.CharField(allow_blank=True)
    clientUrl = serializers.CharField(allow_null=True)
    redirectUri = serializers.CharField()
    defaultInstallationId = serializers.CharField(allow_null=True)
    # DRF's metaclass takes declared fields out of the class, so ``data`` names a field here.
    data = serializers.DictField(help_text="Public configuration.")  # type: ignore[assignment]


class UpdateResult(serializers.Serializer):
    connector = ManagementConnector()
    reinstallNeeded = serializers.BooleanField(required=False)
    reconsentNeeded = serializers.DictField(required=False)
    serviceSync = serializers.DictField(required=False)


def _page(name: str, key: str, item: Any) -> Any:
    return inline_serializer(name=name, fields={key: item(many=True), "pagination": Pagination()})


FREE_BODY = inline_serializer(
    name="ConnectorBody",
    fields={
        "type": serializers.CharField(required=False),
        "name": serializers.CharField(required=False),
        "uid": serializers.CharField(required=False),
        "data": serializers.DictField(required=False),
        "projectId": serializers.CharField(required=False),
        "environments": serializers.ListField(child=serializers.CharField(), required=False),
        "triggers": serializers.BooleanField(required=False),
        "events": serializers.ListField(child=serializers.CharField(), required=False),
        "returnOrigins": serializers.ListField(child=serializers.CharField(), required=False),
    },
)
LINK_BODY = inline_serializer(
    name="ProjectConnectionBody",
    fields={"environments": serializers.ListField(child=serializers.CharField())},
)


def _replaced(target: Any, **methods: Any) -> type:
    return extend_schema_view(**methods)(type(target.__name__, (target,), {}))


class ConnectorsDocs(OpenApiViewExtension):
    target_class = "connect.api.connectors.ConnectorsView"

    def view_replacement(self) -> type:
        return _replaced(
            self.target_class,
            post=extend_schema(
                operation_id="connectors_create",
                summary="Create a connector (Vercel's createConnector)",
                parameters=TEAM,
                request=FREE_BODY,
                responses={201: ManagementConnector, **error_responses(409, 422, 502)},
            ),
        )


class ConnectorListDocs(OpenApiViewExtension):
    target_class = "connect.api.connectors.ConnectorListView"

    def view_replacement(self) -> type:
        return _replaced(
            self.target_class,
            get=extend_schema(
                operation_id="connectors_list",
                summary="List connectors (Vercel's listConnectors)",
                parameters=[
                    *PAGE,
                    *TEAM,
                    OpenApiParameter("service", str, description="Comma list."),
                    OpenApiParameter("type", str, description="Comma list."),
                    OpenApiParameter("search", str, description="Name, uid or service."),
                    OpenApiParameter("projectId", str),
                    OpenApiParameter("sort", str, enum=["name", "createdAt", "updatedAt"]),
                ],
                responses={200: _page("ConnectorPage", "connectors", ManagementConnector)},
            ),
        )


class ConnectorUpdateDocs(OpenApiViewExtension):
    target_class = "connect.api.connectors.ConnectorUpdateView"

    def view_replacement(self) -> type:
        return _replaced(
            self.target_class,
            patch=extend_schema(
                operation_id="connectors_update",
                summary="Update a connector (Vercel's updateConnector)",
                parameters=TEAM,
                request=FREE_BODY,
                responses={200: UpdateResult, **error_responses(409, 422, 502)},
            ),
        )


class ConnectorLinkDocs(OpenApiViewExtension):
    target_class = "connect.api.connectors.ConnectorLinkView"

    def view_replacement(self) -> type:
        return _replaced(
            self.target_class,
            post=extend_schema(
                operation_id="project_connections_upsert",
                summary="Link a project (Vercel's upsertConnectorProjectConnection)",
                description="200 even when it creates the link; the environments replace the "
                "old set.",
                parameters=TEAM,
                request=LINK_BODY,
                responses={200: ProjectConnection},
            ),
            get=extend_schema(
                operation_id="project_connections_get",
                summary="A project connection",
                parameters=TEAM,
                responses={200: ProjectConnection},
            ),
            delete=extend_schema(
                operation_id="project_connections_delete",
                summary="Unlink a project",
                parameters=TEAM,
                responses={204: None},
            ),
        )


class ConnectorLinkEnvironmentDocs(OpenApiViewExtension):
    target_class = "connect.api.connectors.ConnectorLinkEnvironmentView"

    def view_replacement(self) -> type:
        return _replaced(
            self.target_class,
            delete=extend_schema(
                operation_id="project_connections_environment_delete",
                summary="Remove one environment from a project connection",
                parameters=TEAM,
                responses={204: None},
            ),
        )


class ConnectorLinksDocs(OpenApiViewExtension):
    target_class = "connect.api.connectors.ConnectorLinksView"

    def view_replacement(self) -> type:
        return _replaced(
            self.target_class,
            get=extend_schema(
                operation_id="project_connections_list",
                summary="A connector's project connections",
                parameters=[*PAGE, *TEAM],
                responses={200: _page("ProjectConnectionPage", "projects", ProjectConnection)},
            ),
        )


class ProjectLinksDocs(OpenApiViewExtension):
    target_class = "connect.api.connectors.ProjectLinksView"

    def view_replacement(self) -> type:
        return _replaced(
            self.target_class,
            get=extend_schema(
                operation_id="project_connectors_list",
                summary="A project's connector connections",
                description="The key is `connectors`, the items project connections (as in "
                "Vercel's API).",
                parameters=[*PAGE, *TEAM],
                responses={200: _page("ProjectConnectorPage", "connectors", ProjectConnection)},
            ),
        )


#: The shared paths answer a team token with the management view, a deployment with its own.
CONNECTOR_EITHER = PolymorphicProxySerializer(
    component_name="ConnectorForCaller",
    serializers=[ManagementConnector, shapes.RuntimeConnector],
    resource_type_field_name=None,
)
DESTINATIONS_EITHER = PolymorphicProxySerializer(
    component_name="DestinationsForCaller",
    serializers=[ManagementConnector, shapes.DestinationsResponse],
    resource_type_field_name=None,
)
