"""The OpenAPI description of the Vercel-shaped connector endpoints (``connect/api/connectors.py``),
kept here so those views stay as they are: the shapes ``@vercel/sdk`` 1.28.35 reads
(``../shared/reference/vercel-management-shapes.md``)."""

from typing import Any

from drf_spectacular.extensions import OpenApiViewExtension
from drf_spectacular.utils import (
    OpenApiParameter,
    PolymorphicProxySerializer,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers

from connect.api import shapes
from connect.api.resources.base import operation, page_of, page_parameters
from connect.api.schema import error_responses


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


def _documented(target: str, **methods: Any) -> None:
    """Describe the methods of the view at dotted path ``target``, which stays as it is."""

    def view_replacement(self: OpenApiViewExtension) -> type:
        view: type = self.target_class  # type: ignore[assignment]  # loaded by now
        return extend_schema_view(**methods)(type(view.__name__, (view,), {}))

    members = {"target_class": target, "view_replacement": view_replacement}
    type(target.rpartition(".")[2] + "Docs", (OpenApiViewExtension,), members)


VIEWS = "connect.api.connectors."
_documented(
    VIEWS + "ConnectorsView",
    post=operation(
        "connectors_create",
        "Create a connector (Vercel's createConnector)",
        request=FREE_BODY,
        responses={201: ManagementConnector, **error_responses(409, 422, 502)},
    ),
)
_documented(
    VIEWS + "ConnectorListView",
    get=operation(
        "connectors_list",
        "List connectors (Vercel's listConnectors)",
        parameters=[
            *page_parameters(default=20),
            OpenApiParameter("service", str, description="Comma list."),
            OpenApiParameter("type", str, description="Comma list."),
            OpenApiParameter("search", str, description="Name, uid or service."),
            OpenApiParameter("projectId", str),
            OpenApiParameter("sort", str, enum=["name", "createdAt", "updatedAt"]),
        ],
        responses={200: page_of("ConnectorPage", "connectors", ManagementConnector)},
    ),
)
_documented(
    VIEWS + "ConnectorUpdateView",
    patch=operation(
        "connectors_update",
        "Update a connector (Vercel's updateConnector)",
        request=FREE_BODY,
        responses={200: UpdateResult, **error_responses(409, 422, 502)},
    ),
)
_documented(
    VIEWS + "ConnectorLinkView",
    post=operation(
        "project_connections_upsert",
        "Link a project (Vercel's upsertConnectorProjectConnection)",
        description="200 even when it creates the link; the environments replace the old set.",
        request=LINK_BODY,
        responses={200: ProjectConnection},
    ),
    get=operation(
        "project_connections_get", "A project connection", responses={200: ProjectConnection}
    ),
    delete=operation("project_connections_delete", "Unlink a project", responses={204: None}),
)
_documented(
    VIEWS + "ConnectorLinkEnvironmentView",
    delete=operation(
        "project_connections_environment_delete",
        "Remove one environment from a project connection",
        responses={204: None},
    ),
)
_documented(
    VIEWS + "ConnectorLinksView",
    get=operation(
        "project_connections_list",
        "A connector's project connections",
        parameters=page_parameters(),
        responses={200: page_of("ProjectConnectionPage", "projects", ProjectConnection)},
    ),
)
_documented(
    VIEWS + "ProjectLinksView",
    get=operation(
        "project_connectors_list",
        "A project's connector connections",
        description="The key is `connectors`, the items project connections (as in Vercel's API).",
        parameters=page_parameters(),
        responses={200: page_of("ProjectConnectorPage", "connectors", ProjectConnection)},
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
