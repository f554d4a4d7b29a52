"""Vercel's Connect management endpoints for team API tokens: connectors, project connections
and trigger destinations, with the paths, bodies, statuses and shapes ``@vercel/sdk`` expects
(see ``../shared/reference/vercel-management-shapes.md``). Thin: parse, call a service, render.
"""

import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils.text import slugify
from rest_framework.request import Request
from rest_framework.response import Response

from connect import errors
from connect.api.management import ManagementView, check_team_scope, require
from connect.api.pagination import Ordering, keyset_page, paginated
from connect.api.resources.installations import connector_in_team
from connect.api.resources.projects import project_in_team
from connect.api.serializers import millis
from connect.models import (
    Connector,
    Environment,
    Installation,
    Project,
    ProjectLink,
    TriggerDestination,
)
from connect.models.connectors import COLOR_PATTERN, UID_PATTERN
from connect.models.destinations import DestinationKind
from connect.models.projects import STANDARD_ENVIRONMENTS
from connect.permissions import Action
from connect.providers import PROVIDERS, UnknownConnectorType, provider_for_wire
from connect.providers.schema import ConfigInvalid, ConnectorFields
from connect.services import connectors as connector_services
from connect.services import destinations, links
from connect.services.api_tokens import TeamActor
from connect.services.connectors import ConnectorChanges
from connect.web_urls import UnsafeURL, check_web_url, web_url_or_empty

#: Vercel refuses these uid prefixes (they read as ids of its own objects).
RESERVED_UID_PREFIXES = ("scl_", "sca_", "store_", "ir_")
SHA1 = re.compile(r"^[0-9a-f]{40}$")
CONNECTOR_ORDERINGS = {
    "name": Ordering("name", "name"),
    "createdAt": Ordering("createdAt", "created_at", descending=True),
    "updatedAt": Ordering("updatedAt", "updated_at", descending=True),
}
LINK_ORDERING = Ordering("link", "created_at")


# Shapes ----------------------------------------------------------------------------------------


def _environment_ref(environment: Environment) -> dict[str, str]:
    """Vercel names built-in environments by slug and custom ones by id."""
    if environment.slug in STANDARD_ENVIRONMENTS:
        return {}
    return {"customEnvironmentId": environment.public_id}


@dataclass(frozen=True)
class ConnectorExtras:
    """What the view shows beyond the row: read for a page of connectors in two queries."""

    default_installation: dict[int, str]
    destinations: dict[int, list[dict[str, str]]]

    @classmethod
    def of(cls, connectors: list[Connector]) -> "ConnectorExtras":
        ids = [c.pk for c in connectors]
        defaults = dict(
            Installation.objects.filter(
                connector_id__in=ids, status=Installation.Status.ACTIVE, is_default=True
            ).values_list("connector_id", "public_id")
        )
        destinations_out: dict[int, list[dict[str, str]]] = {pk: [] for pk in ids}
        for d in (
            TriggerDestination.objects.filter(
                connector_id__in=ids, enabled=True, kind=DestinationKind.TRIGGER
            )
            .select_related("project", "environment")
            .order_by("created_at", "pk")
        ):
            destinations_out[d.connector_id].append(
                {
                    "projectId": d.project.public_id,
                    **_environment_ref(d.environment),
                    "path": d.path,
                }
            )
        return cls(default_installation=defaults, destinations=destinations_out)


def connector_view(connector: Connector, extras: ConnectorExtras | None = None) -> dict[str, Any]:
    """The management view of a connector (Vercel's ``ConnectConnector``): never a secret."""
    provider = connector.provider
    extras = extras or ConnectorExtras.of([connector])
    default = extras.default_installation.get(connector.pk)
    destinations_out = extras.destinations.get(connector.pk, [])
    icon = web_url_or_empty(connector.icon_url)
    return {
        "id": connector.public_id,
        "uid": connector.uid,
        "type": provider.wire_name,
        "name": connector.name,
        "displayName": connector.name,
        "typeName": provider.label,
        "service": connector.service,
        "description": connector.description,
        "createdAt": millis(connector.created_at),
        "updatedAt": millis(connector.updated_at),
        "supportedSubjectTypes": sorted(provider.subject_types),
        # Vercel's enum of strings: icons here are URLs, not uploads it could render.
        "supportsIcon": "false",
        "supportsInstallation": not provider.single_account,
        "supportsRevocation": bool(connector.config.get("revocationEndpoint"))
        or provider.key in ("slack", "github", "linear"),
        "supportsTriggers": provider.webhook_key is not None,
        "creationMode": "manual",
        "triggers": {"enabled": connector.triggers_enabled},
        "triggerDestinations": destinations_out,
        "events": list(connector.events or []),
        # Origins a consent flow's returnUrl may point at (the admin's Allowed return origins).
        "returnOrigins": list(connector.allowed_return_origins or []),
        "icon": icon or None,
        "backgroundColor": connector.background_color,
        "accentColor": connector.accent_color,
        "clientUrl": None,
        "redirectUri": f"{settings.PUBLIC_URL}/connect/callback",
        "defaultInstallationId": default,
        # Public configuration under Vercel's names (the registry's to_data): no secrets.
        "data": provider.to_data(connector.client_id, connector.config or {}),
    }


def connection_view(link: ProjectLink) -> dict[str, Any]:
    """A project connection (Vercel's ``ConnectProjectConnection``)."""
    project = link.project
    environments = {env.slug: env for env in project.environments.all()}
    custom = [env for env in environments.values() if env.slug not in STANDARD_ENVIRONMENTS]
    return {
        "connectorId": link.connector.public_id,
        "project": {
            "id": project.public_id,
            "name": project.name,
            "customEnvironments": [{"id": env.public_id, "slug": env.slug} for env in custom],
        },
        "enabledEnvironments": [
            slug
            if slug in STANDARD_ENVIRONMENTS or slug not in environments
            else environments[slug].public_id
            for slug in link.environments
        ],
        "createdAt": millis(link.created_at),
        "updatedAt": millis(link.updated_at),
    }


# Request parsing -----------------------------------------------------------------------------


def _body(request: Request) -> dict[str, Any]:
    data = request.data
    if data is None or (data == {} and not request.body):
        return {}
    if not isinstance(data, dict):
        raise errors.InvalidRequest("The body must be a JSON object.")
    return dict(data)


def _string(body: dict[str, Any], name: str, *, limit: int = 255) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise errors.InvalidRequest(f"{name}: A string of at most {limit} characters.")
    return value


def _strings(body: dict[str, Any], name: str, *, limit: int = 200) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) > limit
        or not all(isinstance(v, str) and 0 < len(v) <= 255 for v in value)
    ):
        raise errors.InvalidRequest(f"{name}: A list of at most {limit} strings.")
    return list(dict.fromkeys(value))


def _uid(value: str) -> str:
    if value.startswith(RESERVED_UID_PREFIXES) or not re.match(UID_PATTERN, value):
        raise errors.InvalidRequest(
            "uid: service/name in lowercase letters, digits, '.', '_' and '-' "
            "(e.g. slack/acme-bot), not starting with scl_, sca_, store_ or ir_."
        )
    return value


def _color(body: dict[str, Any], name: str) -> str | None:
    value = _string(body, name, limit=7)
    if value is not None and not re.match(COLOR_PATTERN, value):
        raise errors.InvalidRequest(f"{name}: A colour as #RRGGBB.")
    return value


def _icon(body: dict[str, Any]) -> str | None:
    value = _string(body, "icon", limit=2000)
    if value is None:
        return None
    if SHA1.match(value):
        raise errors.InvalidRequest(
            "icon: Connect has no file uploads; send the icon's https URL instead."
        )
    if value:
        try:
            check_web_url(value)
        except UnsafeURL as exc:
            raise errors.InvalidRequest(f"icon: The icon URL {exc}.") from exc
    return value


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _normalized_data(data: Any) -> Any:
    """``@vercel/sdk`` sends ``serverConfig`` in snake_case unless ``data`` holds a key it
    does not know: accept both spellings."""
    if isinstance(data, dict) and isinstance(data.get("serverConfig"), dict):
        data = {**data, "serverConfig": {_camel(k): v for k, v in data["serverConfig"].items()}}
    return data


def _fields(provider: Any, data: Any, *, partial: bool) -> ConnectorFields:
    """``data`` through the connector type's own schema, with the admin's messages."""
    try:
        return provider.from_data(_normalized_data(data), partial=partial)
    except ConfigInvalid as exc:
        name, messages = next(iter(exc.errors.items()))
        raise errors.InvalidRequest(
            f"data.{name}: {messages[0]}", vendor={"fields": exc.errors}
        ) from exc


def _secrets(provider: Any, raw: Any) -> dict[str, str]:
    """``triggerVerificationInput``: the type's secrets by their ``data`` names, sealed."""
    if raw is None or raw == {}:
        return {}
    if not isinstance(raw, dict):
        raise errors.InvalidRequest("triggerVerificationInput: A JSON object.")
    names = {s.data_name: s.sealed for s in provider.secrets if s.data_name}
    secrets: dict[str, str] = {}
    for key, value in raw.items():
        if key not in names:
            raise errors.InvalidRequest(
                f"triggerVerificationInput.{key}: Not a secret of {provider.label} connectors."
            )
        if not isinstance(value, str) or not value:
            raise errors.InvalidRequest(f"triggerVerificationInput.{key}: A non-empty string.")
        secrets[names[key]] = value
    return secrets


def _destination_spec(actor: TeamActor, raw: Any, where: str) -> destinations.DestinationSpec:
    """Vercel's ``{projectId, branch | customEnvironmentId, path}`` (neither: production) or
    ours, ``{projectId, environment, path}``."""
    if not isinstance(raw, dict):
        raise errors.InvalidRequest(f"{where}: An object with a projectId.")
    project_ref = raw.get("projectId")
    if not isinstance(project_ref, str) or not project_ref:
        raise errors.InvalidRequest(f"{where}.projectId: This field is required.")
    if raw.get("branch") is not None:
        raise errors.InvalidRequest(
            f"{where}.branch: Connect forwards per environment, not per branch; send "
            "customEnvironmentId (an env_ id or slug) or environment instead."
        )
    project = project_in_team(actor.team_id, project_ref)
    path = raw.get("path", "/") or "/"
    if not isinstance(path, str) or len(path) > 500:
        raise errors.InvalidRequest(f"{where}.path: A path of at most 500 characters.")
    env_ref = raw.get("customEnvironmentId") or raw.get("environment") or "production"
    if not isinstance(env_ref, str):
        raise errors.InvalidRequest(f"{where}.customEnvironmentId: A string.")
    [slug] = links.environments_resolve(project=project, items=[env_ref])
    return destinations.DestinationSpec(
        project_public_id=project.public_id, environment=slug, path=path
    )


def destinations_replace(actor: TeamActor, connector: Connector, raw: Any) -> None:
    if not isinstance(raw, list):
        raise errors.InvalidRequest("destinations: A list (empty to remove them all).")
    specs = [_destination_spec(actor, item, f"destinations[{i}]") for i, item in enumerate(raw)]
    destinations.destinations_replace(connector=connector, specs=specs, actor=actor.label)


# Views -----------------------------------------------------------------------------------------


class ConnectorsView(ManagementView):
    """``POST /v1/connect/connectors`` (create, 201)."""

    def post(self, request: Request) -> Response:
        actor = self.actor(request, Action.ADD)
        body = _body(request)
        if body.get("connectionMethod") is not None and body.get("type") is None:
            raise errors.InvalidRequest(
                "connectionMethod: Connect has no managed presets over the API; send type "
                "and data (the admin's 'Add from preset' fills both)."
            )
        kind = _string(body, "type", limit=40)
        if not kind:
            raise errors.InvalidRequest("type: This field is required.")
        try:
            provider = provider_for_wire(kind)
        except UnknownConnectorType:
            known = ", ".join(sorted(p.wire_name for p in PROVIDERS.values()))
            raise errors.InvalidRequest(f"type: One of {known}.") from None
        if "data" not in body:
            raise errors.InvalidRequest("data: This field is required.")
        fields = _fields(provider, body["data"], partial=False)
        name = (_string(body, "name", limit=120) or "").strip()
        project = None
        project_ref = _string(body, "projectId", limit=60)
        if project_ref:
            project = project_in_team(actor.team_id, project_ref)
        environments = _strings(body, "environments", limit=20)
        if environments is not None and project is None:
            raise errors.InvalidRequest("environments: Needs projectId.")
        if not name and project is None:
            raise errors.InvalidRequest("name: Send a name or a projectId.")
        name = name or (project.name if project else "")
        service = (_string(body, "service", limit=60) or "").strip() or provider.key
        uid_text = _string(body, "uid", limit=120)
        uid = _uid(uid_text) if uid_text else self._free_uid(actor, service, name)
        triggers = body.get("triggers")
        if triggers is not None and not isinstance(triggers, bool):
            raise errors.InvalidRequest("triggers: true or false.")
        destination = body.get("triggerDestination")
        if destination is not None and not triggers:
            raise errors.InvalidRequest("triggerDestination: Needs triggers: true.")
        spec = None
        if destination is not None:
            raw = dict(destination) if isinstance(destination, dict) else destination
            if isinstance(raw, dict) and not raw.get("projectId") and project is not None:
                raw["projectId"] = project.public_id
            spec = _destination_spec(actor, raw, "triggerDestination")
        connector = Connector(team_id=actor.team_id, type=provider.key, uid=uid)
        changes = ConnectorChanges(
            name=name,
            service=slugify(service)[:60] or provider.key,
            icon_url=_icon(body),
            background_color=_color(body, "backgroundColor"),
            accent_color=_color(body, "accentColor"),
            triggers_enabled=bool(triggers),
            events=_strings(body, "events"),
            allowed_return_origins=_strings(body, "returnOrigins", limit=50),
            fields=fields,
        )
        connector = connector_services.connector_write(
            connector=connector, changes=changes, actor=actor.label
        )
        if project is not None:
            slugs = links.environments_resolve(
                project=project,
                items=environments
                or [
                    slug
                    for slug in STANDARD_ENVIRONMENTS
                    if project.environments.filter(slug=slug).exists()
                ],
            )
            links.link_upsert(
                connector=connector, project=project, environments=slugs, actor=actor.label
            )
        if spec is not None:
            destinations.destinations_replace(connector=connector, specs=[spec], actor=actor.label)
        return Response(connector_view(connector), status=201)

    @staticmethod
    def _free_uid(actor: TeamActor, service: str, name: str) -> str:
        base = f"{slugify(service)[:40] or 'connector'}/{slugify(name)[:60] or 'default'}"
        uid, n = base, 1
        while Connector.objects.filter(team_id=actor.team_id, uid=uid).exists():
            n += 1
            uid = f"{base}-{n}"
        return uid


class ConnectorListView(ManagementView):
    """``GET /v2/connect/connectors``: filters ``service``, ``type``, ``search``,
    ``projectId``; ``sort``; ``limit``/``cursor``."""

    def get(self, request: Request) -> Response:
        actor = self.actor(request, Action.VIEW)
        params = request.query_params
        queryset: QuerySet[Connector] = Connector.objects.filter(team_id=actor.team_id)
        services = [s for s in params.get("service", "").split(",") if s]
        if services:
            queryset = queryset.filter(service__in=services)
        types = [t for t in params.get("type", "").split(",") if t]
        if types:
            keys = [p.key for p in PROVIDERS.values() if p.wire_name in types or p.key in types]
            queryset = queryset.filter(type__in=keys)
        search = params.get("search", "")
        if len(search) > 100:
            raise errors.InvalidRequest("search: At most 100 characters.")
        if search:
            queryset = queryset.filter(
                Q(name__icontains=search) | Q(uid__icontains=search) | Q(service__icontains=search)
            )
        if params.get("projectId"):
            project = Project.objects.filter(
                Q(public_id=params["projectId"]) | Q(slug=params["projectId"]),
                team_id=actor.team_id,
            ).first()
            queryset = queryset.filter(links__project=project) if project else queryset.none()
        sort = params.get("sort") or "createdAt"
        if sort not in CONNECTOR_ORDERINGS:
            raise errors.InvalidRequest("sort: One of name, createdAt, updatedAt.")
        rows, next_cursor = keyset_page(
            queryset, request, ordering=CONNECTOR_ORDERINGS[sort], default_limit=20
        )
        extras = ConnectorExtras.of(list(rows))
        views = [connector_view(c, extras) for c in rows]
        return Response(paginated("connectors", views, next_cursor))


class ConnectorUpdateView(ManagementView):
    """``PATCH /v2/connect/connectors/{connector}``: 200 with ``{connector, …}``."""

    def patch(self, request: Request, connector: str) -> Response:
        actor = self.actor(request, Action.CHANGE)
        found = connector_in_team(actor.team_id, connector)
        body = _body(request)
        known = {
            "name",
            "uid",
            "icon",
            "backgroundColor",
            "accentColor",
            "triggers",
            "events",
            "data",
            "triggerVerificationInput",
            "returnOrigins",
        }
        unknown = sorted(set(body) - known)
        if unknown:
            raise errors.InvalidRequest(f"{unknown[0]}: Not a field of a connector update.")
        if not body:
            raise errors.InvalidRequest("Send at least one field to change.")
        name = _string(body, "name", limit=120)
        if name is not None and not name.strip():
            raise errors.InvalidRequest("name: May not be blank.")
        uid = _string(body, "uid", limit=120)
        triggers = body.get("triggers")
        if triggers is not None and not isinstance(triggers, bool):
            raise errors.InvalidRequest("triggers: true or false.")
        provider = found.provider
        fields = _fields(provider, body["data"], partial=True) if "data" in body else None
        secrets = _secrets(provider, body.get("triggerVerificationInput"))
        if secrets:
            fields = ConnectorFields(
                client_id=fields.client_id if fields else None,
                config=fields.config if fields else {},
                secrets={**(fields.secrets if fields else {}), **secrets},
            )
        old_scopes = {k: list(v or []) for k, v in (found.default_scopes or {}).items()}
        updated = connector_services.connector_write(
            connector=found,
            changes=ConnectorChanges(
                name=name.strip() if name is not None else None,
                uid=_uid(uid) if uid is not None else None,
                icon_url=_icon(body),
                background_color=_color(body, "backgroundColor"),
                accent_color=_color(body, "accentColor"),
                triggers_enabled=triggers,
                events=_strings(body, "events"),
                allowed_return_origins=_strings(body, "returnOrigins", limit=50),
                fields=fields,
            ),
            actor=actor.label,
        )
        result: dict[str, Any] = {"connector": connector_view(updated), "reinstallNeeded": False}
        if updated.default_scopes != old_scopes and connector_services.connector_reconsent_needed(
            connector=updated
        ):
            result["reconsentNeeded"] = {"scope": "user"}
        return Response(result)


class ConnectorLinkView(ManagementView):
    """``POST|GET|DELETE /v1/connect/connectors/{connector}/projects/{projectId}``."""

    def post(self, request: Request, connector: str, project_id: str) -> Response:
        actor = self.actor(request, Action.CHANGE)
        found = connector_in_team(actor.team_id, connector)
        project = project_in_team(actor.team_id, project_id)
        body = _body(request)
        if "environments" not in body:
            raise errors.InvalidRequest("environments: This field is required.")
        items = _strings(body, "environments", limit=20) or []
        slugs = links.environments_resolve(project=project, items=items)
        link, _ = links.link_upsert(
            connector=found, project=project, environments=slugs, actor=actor.label
        )
        return Response(connection_view(link))  # 200 even when it created the link

    def get(self, request: Request, connector: str, project_id: str) -> Response:
        actor = self.actor(request, Action.VIEW)
        return Response(connection_view(self._link(actor, connector, project_id)))

    def delete(self, request: Request, connector: str, project_id: str) -> Response:
        actor = self.actor(request, Action.CHANGE)
        links.link_delete(link=self._link(actor, connector, project_id), actor=actor.label)
        return Response(status=204)

    @staticmethod
    def _link(actor: TeamActor, connector: str, project_id: str) -> ProjectLink:
        found = connector_in_team(actor.team_id, connector)
        project = project_in_team(actor.team_id, project_id)
        link = (
            ProjectLink.objects.select_related("connector", "project")
            .filter(connector=found, project=project)
            .first()
        )
        if link is None:
            raise errors.NotFound("This project is not connected to the connector.")
        return link


class ConnectorLinkEnvironmentView(ManagementView):
    """``DELETE …/projects/{projectId}/environments/{environment}``: idempotent, 204."""

    def delete(
        self, request: Request, connector: str, project_id: str, environment: str
    ) -> Response:
        actor = self.actor(request, Action.CHANGE)
        found = connector_in_team(actor.team_id, connector)
        project = project_in_team(actor.team_id, project_id)
        [slug] = links.environments_resolve(project=project, items=[environment])
        link = ProjectLink.objects.filter(connector=found, project=project).first()
        if link is not None:
            links.link_environment_remove(link=link, environment=slug, actor=actor.label)
        return Response(status=204)


class ConnectorLinksView(ManagementView):
    """``GET /v2/connect/connectors/{connector}/projects``."""

    def get(self, request: Request, connector: str) -> Response:
        actor = self.actor(request, Action.VIEW)
        found = connector_in_team(actor.team_id, connector)
        return _links_page(request, ProjectLink.objects.filter(connector=found), key="projects")


class ProjectLinksView(ManagementView):
    """``GET /v2/connect/projects/{projectId}/connectors``: project connections, under the
    key ``connectors`` as Vercel names it."""

    def get(self, request: Request, project_id: str) -> Response:
        actor = self.actor(request, Action.VIEW)
        project = project_in_team(actor.team_id, project_id)
        return _links_page(request, ProjectLink.objects.filter(project=project), key="connectors")


def _links_page(request: Request, found: QuerySet[ProjectLink], *, key: str) -> Response:
    """A page of project connections under ``key``, in Vercel's order and shape."""
    queryset = found.select_related("connector", "project")
    rows, next_cursor = keyset_page(queryset, request, ordering=LINK_ORDERING)
    return Response(paginated(key, [connection_view(r) for r in rows], next_cursor))


def management_get(request: Request, actor: TeamActor, connector: str) -> Response:
    """``GET /v1/connect/connectors/{connector}`` for a team token: the management view."""
    check_team_scope(request, actor)
    require(actor, Action.VIEW)
    return Response(connector_view(connector_in_team(actor.team_id, connector)))


def management_delete(request: Request, actor: TeamActor, connector: str) -> Response:
    """``DELETE /v1/connect/connectors/{connector}``: 204; active installations are
    uninstalled first (provider revocation included), counted in a header."""
    check_team_scope(request, actor)
    require(actor, Action.DELETE)
    uninstalled = connector_services.connector_delete(
        connector=connector_in_team(actor.team_id, connector), actor=actor.label
    )
    response = Response(status=204)
    response["Connect-Uninstalled-Installations"] = str(uninstalled)
    return response


def management_destinations(request: Request, actor: TeamActor, connector: str) -> Response:
    """``PATCH …/trigger-destinations`` for a team token: Vercel's answer, the connector."""
    check_team_scope(request, actor)
    require(actor, Action.CHANGE)
    found = connector_in_team(actor.team_id, connector)
    body = _body(request)
    if "destinations" not in body:
        raise errors.InvalidRequest("destinations: This field is required.")
    destinations_replace(actor, found, body["destinations"])
    return Response(connector_view(found))
