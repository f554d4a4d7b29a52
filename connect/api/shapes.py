"""The wire shapes of the hand-parsed runtime API, written down for the OpenAPI schema.

The runtime views parse their bodies by hand (the token request is the hot path) and render
dicts, so drf-spectacular cannot read their shapes off a serializer. These serializers are the
description only: no view validates with them. ``tests/api/test_openapi.py`` and the
Schemathesis run hold them to what the views really send.
"""

from typing import Any

from rest_framework import serializers

from connect.kinds import SubjectType
from connect.models.authorizations import AuthorizationKind, AuthorizationOutcome
from connect.models.deliveries import DeliveryStatus
from connect.models.installations import GrantStatus, InstallationStatus
from connect.providers import PROVIDERS

#: The closed enums of the wire, named in SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].
CONNECTOR_TYPES = sorted(p.wire_name for p in PROVIDERS.values())
SUBJECT_TYPES = [t.value for t in SubjectType]
INSTALLATION_STATUSES = InstallationStatus.values
GRANT_STATUSES = GrantStatus.values
DELIVERY_STATUSES = DeliveryStatus.values
AUTHORIZATION_OUTCOMES = AuthorizationOutcome.values


class Error(serializers.Serializer):
    code = serializers.CharField(
        help_text="Pick the error from this: `not_found`, `unauthorized`, `forbidden`, "
        "`rate_limited`, `invalid_request`, … (SPEC section 3)."
    )
    message = serializers.CharField(help_text="For people; may change.")
    vendor = serializers.DictField(
        required=False, help_text="What the provider answered, when it was the provider."
    )


class ErrorEnvelope(serializers.Serializer):
    """Every error, whatever the status."""

    error = Error()


class Subject(serializers.Serializer):
    """Whom a token is for: ``{"type": "app"}``, ``{"type": "user", "id"}`` or
    ``{"type": "jwt-bearer", "sub"}``."""

    type = serializers.ChoiceField(choices=SUBJECT_TYPES)
    id = serializers.CharField(required=False, max_length=255, help_text="A user's id.")
    issuer = serializers.CharField(
        required=False, max_length=255, help_text="Defaults to the calling project's id."
    )
    sub = serializers.CharField(required=False, max_length=255, help_text="`id`, JWT spelling.")
    iss = serializers.CharField(required=False, max_length=255, help_text="`issuer`, likewise.")


class ConnectorRef(serializers.Serializer):
    id = serializers.CharField(help_text="`scl_…`")
    uid = serializers.CharField(help_text="`service/name`")
    type = serializers.ChoiceField(choices=CONNECTOR_TYPES)
    name = serializers.CharField()
    service = serializers.CharField()


class TokenRequest(serializers.Serializer):
    subject = Subject()
    installationId = serializers.CharField(
        required=False,
        allow_null=True,
        max_length=64,
        help_text="`sci_…`, or `*` for any installation holding a grant.",
    )
    scopes = serializers.ListField(
        child=serializers.CharField(max_length=2000),
        required=False,
        allow_null=True,
        max_length=100,
        help_text='Absent or `["*"]`: the connector\'s defaults. A string is read as one scope.',
    )
    resources = serializers.ListField(
        child=serializers.CharField(max_length=2000), required=False, allow_null=True, max_length=20
    )
    audience = serializers.ListField(
        child=serializers.CharField(max_length=2000), required=False, allow_null=True, max_length=20
    )
    authorizationDetails = serializers.ListField(
        child=serializers.DictField(), required=False, allow_null=True, max_length=20
    )


class IssuedToken(serializers.Serializer):
    token = serializers.CharField(help_text="The provider's access token. Never stored by you.")
    tokenId = serializers.CharField(help_text="`stk_…`, for the audit log.")
    expiresAt = serializers.IntegerField(allow_null=True, help_text="Epoch milliseconds.")
    connector = ConnectorRef()
    installationId = serializers.CharField()
    tenantId = serializers.CharField(allow_blank=True)
    externalSubject = serializers.CharField(allow_null=True)
    name = serializers.CharField(allow_blank=True)
    metadata = serializers.DictField()
    claims = serializers.DictField()


class ImportItem(serializers.Serializer):
    subject = Subject()
    accessToken = serializers.CharField()
    refreshToken = serializers.CharField(required=False, allow_null=True)
    expiresAt = serializers.IntegerField(required=False, allow_null=True)
    refreshTokenExpiresAt = serializers.IntegerField(required=False, allow_null=True)
    installationId = serializers.CharField(required=False, allow_null=True)
    scopes = serializers.ListField(child=serializers.CharField(), required=False)


class ImportRequest(serializers.Serializer):
    tokens = serializers.ListField(child=ImportItem(), allow_empty=False, max_length=1000)


class ImportedItem(serializers.Serializer):
    """The item as sent, without its tokens, and whether it was stored."""

    succeeded = serializers.BooleanField()
    error = serializers.CharField(required=False)


class ImportResponse(serializers.Serializer):
    accepted = serializers.IntegerField()
    imported = serializers.IntegerField()
    tokens = ImportedItem(many=True)


class RevokeRequest(serializers.Serializer):
    subject = Subject(
        required=False, allow_null=True, help_text="Absent: every subject (a team member only)."
    )
    installationId = serializers.CharField(required=False, allow_null=True, max_length=64)


class RevokeCounts(serializers.Serializer):
    tokensFound = serializers.IntegerField()
    deleted = serializers.IntegerField()
    providerRevoked = serializers.IntegerField()
    providerSkipped = serializers.IntegerField()
    providerFailed = serializers.IntegerField()


class Triggers(serializers.Serializer):
    enabled = serializers.BooleanField()


class RuntimeConnector(ConnectorRef):
    """What a deployment learns of a connector: public configuration only."""

    displayName = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    createdAt = serializers.IntegerField()
    updatedAt = serializers.IntegerField()
    # DRF's metaclass takes declared fields out of the class, so ``data`` names a field here.
    data = serializers.DictField(  # type: ignore[assignment]
        help_text="Public configuration; never a secret."
    )
    supportedSubjectTypes = serializers.ListField(child=serializers.CharField())
    supportsInstallation = serializers.BooleanField()
    supportsRevocation = serializers.BooleanField()
    supportsTriggers = serializers.BooleanField()
    supportsRefresh = serializers.BooleanField()
    icon = serializers.CharField(allow_null=True)
    backgroundColor = serializers.CharField(allow_blank=True)
    accentColor = serializers.CharField(allow_blank=True)
    triggers = Triggers()
    defaultScopes = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Per subject type.",
    )


class DestinationSpec(serializers.Serializer):
    projectId = serializers.CharField(max_length=40)
    environment = serializers.SlugField(max_length=60)
    path = serializers.CharField(max_length=500, required=False, default="/")


class DestinationsRequest(serializers.Serializer):
    destinations = DestinationSpec(many=True)


class Destination(serializers.Serializer):
    id = serializers.CharField(help_text="`tds_…`")
    projectId = serializers.CharField()
    environment = serializers.CharField()
    path = serializers.CharField()
    enabled = serializers.BooleanField()
    signingSecret = serializers.CharField(
        required=False, help_text="`whsec_…`, only in the answer that created the destination."
    )


class DestinationsResponse(serializers.Serializer):
    destinations = Destination(many=True)


class Replayed(serializers.Serializer):
    replayed = serializers.IntegerField(help_text="Deliveries queued again.")


class FlowRequest(serializers.Serializer):
    scopes = serializers.ListField(
        child=serializers.CharField(max_length=2000),
        required=False,
        allow_null=True,
        max_length=100,
    )
    returnUrl = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=2000,
        help_text="An absolute https:// URL of an allowed origin.",
    )
    expiresInMs = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    installationId = serializers.CharField(required=False, allow_null=True, max_length=64)


class AuthorizeRequest(FlowRequest):
    subject = Subject()


class InstallRequest(FlowRequest):
    tenantId = serializers.CharField(required=False, allow_null=True, max_length=255)


class StartedFlow(serializers.Serializer):
    url = serializers.URLField(help_text="Send the user here.")
    request = serializers.CharField(help_text="`sca_…`")
    verifier = serializers.CharField(help_text="Poll `GET /v1/connect/result/{verifier}`.")
    expiresAt = serializers.IntegerField()
    connector = ConnectorRef()


class ResultSubject(serializers.Serializer):
    type = serializers.CharField(allow_blank=True)
    id = serializers.CharField(allow_null=True)


class FlowResult(serializers.Serializer):
    status = serializers.ChoiceField(choices=AuthorizationOutcome.values)
    request = serializers.CharField()
    kind = serializers.ChoiceField(choices=AuthorizationKind.values)
    connector = ConnectorRef()
    installationId = serializers.CharField(allow_null=True)
    tenantId = serializers.CharField(allow_null=True, allow_blank=True)
    subject = ResultSubject()


class Ok(serializers.Serializer):
    ok = serializers.BooleanField()


class Check(serializers.Serializer):
    ok = serializers.BooleanField()
    detail = serializers.CharField(required=False)
    lastSeen = serializers.DateTimeField(required=False)


class Health(serializers.Serializer):
    """``{"ok": true}``; with ``?deep=1`` also what failed and each check."""

    ok = serializers.BooleanField()
    failed = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="With `deep=1` only."
    )
    checks = serializers.DictField(child=Check(), required=False, help_text="With `deep=1` only.")


def example_connector_ref() -> dict[str, Any]:
    return {
        "id": "scl_7Hq2mV4kP9xR3tW8",
        "uid": "github/acme-bot",
        "type": "github",
        "name": "Acme bot",
        "service": "github",
    }
