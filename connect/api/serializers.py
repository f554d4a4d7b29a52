"""Request validation and response shapes of the runtime API (camelCase, epoch milliseconds)."""

from datetime import datetime
from typing import Any

from rest_framework import serializers

from connect import errors
from connect.callers import Caller
from connect.kinds import Subject
from connect.models import AuthorizationRequest, Connector
from connect.services.authorizations import StartedFlow
from connect.services.destinations import DestinationsReplaced
from connect.services.grants import ImportResult
from connect.services.tokens import IssuedToken, TokenAsk
from connect.web_urls import validate_web_url, web_url_or_empty


def millis(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


class StringOrList(serializers.ListField):
    """The SDKs send some fields as a string or a list of strings."""

    child = serializers.CharField(max_length=2000)

    def to_internal_value(self, data: Any) -> list[str]:
        return super().to_internal_value([data] if isinstance(data, str) else data)


# The token request is parsed by hand: it is the hot path, and a DRF serializer (deep-copying
# its fields on every instantiation) cost more than the database work of the request.


def _strings(data: dict[str, Any], name: str, *, limit: int) -> tuple[str, ...] | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if (
        not isinstance(value, list)
        or len(value) > limit
        or not all(isinstance(v, str) and len(v) <= 2000 for v in value)
    ):
        raise errors.InvalidRequest(f"{name}: A string, or a list of at most {limit} strings.")
    return tuple(value)


def subject_from(raw: Any, caller: Caller) -> Subject:
    """``{"type": "app"}``, ``{"type": "user", "id", "issuer"?}`` or
    ``{"type": "jwt-bearer", "sub", "iss"?}``; unknown keys are ignored."""
    if not isinstance(raw, dict):
        raise errors.InvalidRequest("subject: An object with a type.")
    kind = raw.get("type")
    if not isinstance(kind, str) or not kind:
        raise errors.InvalidRequest("subject.type: This field is required.")
    for key in ("id", "issuer", "sub", "iss"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > 255):
            raise errors.InvalidRequest(f"subject.{key}: A string of at most 255 characters.")
    return caller.subject(
        type=kind,
        id=raw.get("id") or raw.get("sub") or "",
        issuer=raw.get("issuer") or raw.get("iss") or "",
    )


def token_ask(data: Any, caller: Caller) -> TokenAsk:
    if not isinstance(data, dict):
        raise errors.InvalidRequest("The body must be a JSON object.")
    if "subject" not in data:
        raise errors.InvalidRequest("subject: This field is required.")
    subject = subject_from(data["subject"], caller)
    installation = data.get("installationId")
    if installation is not None and (not isinstance(installation, str) or len(installation) > 64):
        raise errors.InvalidRequest("installationId: A string of at most 64 characters.")
    details = data.get("authorizationDetails")
    if details is not None and (
        not isinstance(details, list)
        or len(details) > 20
        or not all(isinstance(d, dict) for d in details)
    ):
        raise errors.InvalidRequest("authorizationDetails: A list of at most 20 objects.")
    return TokenAsk(
        subject=subject,
        installation_ref=installation or None,
        scopes=_strings(data, "scopes", limit=100),
        resources=_strings(data, "resources", limit=20) or (),
        audience=_strings(data, "audience", limit=20) or (),
        authorization_details=tuple(details or ()),
    )


class RevokeRequestSerializer(serializers.Serializer):
    subject = serializers.JSONField(required=False, allow_null=True)
    installationId = serializers.CharField(max_length=64, required=False, allow_null=True)

    def revoked_subject(self, caller: Caller) -> Subject | None:
        raw = self.validated_data.get("subject")
        return None if raw is None else subject_from(raw, caller)


class ImportRequestSerializer(serializers.Serializer):
    tokens = serializers.ListField(
        child=serializers.DictField(), allow_empty=False, max_length=1000
    )


def connector_ref(connector: Connector) -> dict[str, Any]:
    return {
        "id": connector.public_id,
        "uid": connector.uid,
        # Vercel's closed type enum: the stored "microsoft" is "microsoft-entra" on the wire.
        "type": connector.provider.wire_name,
        "name": connector.name,
        "service": connector.service,
    }


def token_body(issued: IssuedToken) -> dict[str, Any]:
    installation, grant = issued.installation, issued.grant
    return {
        "token": issued.token,
        "tokenId": issued.issue.public_id,
        "expiresAt": millis(issued.expires_at),
        "connector": connector_ref(issued.connector),
        "installationId": installation.public_id,
        "tenantId": installation.tenant_id,
        "externalSubject": grant.external_subject or grant.subject_id or None,
        "name": installation.display_name or issued.connector.name,
        "metadata": dict(installation.metadata or {}),
        "claims": {},
    }


def connector_body(connector: Connector) -> dict[str, Any]:
    provider = connector.provider
    return {
        **connector_ref(connector),
        "displayName": connector.name,
        "description": connector.description,
        "createdAt": millis(connector.created_at),
        "updatedAt": millis(connector.updated_at),
        # Public configuration only: secrets live in sealed columns, never in `config`.
        "data": {"clientId": connector.client_id, **connector.config}
        if connector.client_id
        else dict(connector.config),
        "supportedSubjectTypes": sorted(provider.subject_types),
        "supportsInstallation": not provider.single_account,
        "supportsRevocation": bool(connector.config.get("revocationEndpoint")),
        "supportsTriggers": connector.triggers_enabled,
        "supportsRefresh": True,  # every type has a driver that renews its tokens
        "icon": web_url_or_empty(connector.icon_url) or None,
        "backgroundColor": connector.background_color,
        "accentColor": connector.accent_color,
        "triggers": {"enabled": connector.triggers_enabled},
        "defaultScopes": connector.default_scopes,
    }


def import_body(result: ImportResult) -> dict[str, Any]:
    return {
        "accepted": result.accepted,
        "imported": result.imported,
        "tokens": [
            {
                **item.echo,
                "succeeded": item.grant is not None,
                **({"error": item.error} if item.error else {}),
            }
            for item in result.items
        ],
    }


class DestinationSerializer(serializers.Serializer):
    projectId = serializers.CharField(max_length=40)
    environment = serializers.SlugField(max_length=60)
    path = serializers.CharField(max_length=500, default="/")


class DestinationsRequestSerializer(serializers.Serializer):
    destinations = DestinationSerializer(many=True)


def destinations_body(replaced: DestinationsReplaced) -> dict[str, Any]:
    return {
        "destinations": [
            {
                "id": d.public_id,
                "projectId": d.project.public_id,
                "environment": d.environment.slug,
                "path": d.path,
                "enabled": d.enabled,
                # Shown once, when the destination is created; rotate it in the admin.
                **(
                    {"signingSecret": replaced.new_secrets[d.pk]}
                    if d.pk in replaced.new_secrets
                    else {}
                ),
            }
            for d in replaced.destinations
        ]
    }


class FlowRequestSerializer(serializers.Serializer):
    """Fields shared by authorize (consent) and install; unknown fields are ignored."""

    scopes = StringOrList(required=False, allow_null=True, max_length=100)
    returnUrl = serializers.CharField(
        max_length=2000,
        required=False,
        allow_null=True,
        allow_blank=True,
        validators=[validate_web_url],
    )
    expiresInMs = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    installationId = serializers.CharField(max_length=64, required=False, allow_null=True)


class AuthorizeRequestSerializer(FlowRequestSerializer):
    subject = serializers.JSONField()


class InstallRequestSerializer(FlowRequestSerializer):
    tenantId = serializers.CharField(max_length=255, required=False, allow_null=True)


def flow_body(started: StartedFlow) -> dict[str, Any]:
    return {
        "url": started.url,
        "request": started.flow.public_id,
        "verifier": started.verifier,
        "expiresAt": millis(started.flow.expires_at),
        "connector": connector_ref(started.flow.connector),
    }


def result_body(flow: AuthorizationRequest) -> dict[str, Any]:
    installation = flow.installation
    return {
        "status": flow.outcome,
        "request": flow.public_id,
        "kind": flow.kind,
        "connector": connector_ref(flow.connector),
        "installationId": installation.public_id if installation else None,
        "tenantId": installation.tenant_id if installation else None,
        "subject": {"type": flow.subject_type, "id": flow.subject_id or None},
    }
