from dataclasses import dataclass, field
from typing import Any

import requests
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from connect import errors, http, oidc
from connect.models import AuditEvent, Connector, Grant, Installation
from connect.models.activity import ActivityKind
from connect.providers.code_flow import TOKEN_AUTH_METHODS
from connect.providers.schema import ConnectorFields
from connect.services import activity, lifecycle
from connect.services.audit import Actor, audit_record
from connect.services.configuration import configuration_delete
from connect.services.installations import installation_remove
from connect.web_urls import UnsafeURL, check_web_url


@transaction.atomic
def connector_save(
    *, connector: Connector, actor: Actor, changed_secrets: list[str] | None = None
) -> Connector:
    """Save a connector (secrets already sealed on it) and give single-account types their
    one implicit installation.

    Every writer comes through here, so this is where secrets follow their URLs: a URL that
    receives a secret changed, and the secret was not entered again, clears it; grants keep a
    note of the URLs their tokens came from (see ``Grant.tokens_belong_to``).
    """
    created = connector.pk is None
    before = None if created else Connector.objects.select_for_update().get(pk=connector.pk)
    cleared: list[str] = []
    if before is not None:
        cleared = connector_secrets_redirected(connector=connector, before=before)
        for name in cleared:
            connector.seal(name, "")
        old_digest = before.grant_endpoints_digest()
        if old_digest != connector.grant_endpoints_digest():
            Grant.objects.filter(installation__connector=connector).record_endpoints_before_change(
                old_digest
            )
    # Types that sign JWT bearer assertions sign client assertions with the same key.
    if (
        connector.provider.jwt_bearer
        and (
            connector.config.get("tokenEndpointAuthMethod") == "private_key_jwt"
            or (connector.config.get("jwtBearer") or {}).get("enabled")
        )
        and not connector.has_secret("private_key")
    ):
        connector_assertion_key_create(connector=connector)
    connector.full_clean()
    connector.updated_at = timezone.now()
    connector.save()
    if connector.is_single_account:
        installation, made = Installation.objects.get_or_create(
            connector=connector,
            tenant_id=connector.public_id,
            defaults={"display_name": connector.name, "is_default": True},
        )
        if made:
            # Installed by saving (the connector's own audit row says so): the app is told and
            # the install counted like any other, so its grant.created never comes first.
            lifecycle.installation_attached(
                installation, connector=connector, created=True, was=None
            )
            activity.activity_count(connector=connector, kind=ActivityKind.INSTALL, label="added")
    audit_record(
        team=connector.team_id,
        type=AuditEvent.Type.CONNECTOR_CREATED if created else AuditEvent.Type.CONNECTOR_UPDATED,
        actor=actor,
        targets={"connectorId": connector.public_id},
        # Names of the secrets that changed, never their values.
        fields={
            "uid": connector.uid,
            "secretsChanged": changed_secrets or [],
            **({"secretsCleared": cleared} if cleared else {}),
        },
    )
    return connector


def _config_value(connector: Connector, key: str) -> object:
    config = connector.config
    return config.get(key) if isinstance(config, dict) else None


def connector_secrets_redirected(*, connector: Connector, before: Connector) -> list[str]:
    """The secrets ``connector`` holds that would now go to a URL other than the one they were
    entered for, unless entered again in this save: whoever points a token endpoint at their
    own server must know the secret to send it there (a member may write one, never read one).

    Another type gives every URL a new meaning, so all of them count as changed.
    """
    receivers = connector.url_config_keys()
    moved = [
        key
        for key in receivers
        if connector.type != before.type
        or _config_value(connector, key) != _config_value(before, key)
    ]
    sent = {name for key in moved for name in receivers[key]} & set(Connector.SEALED_FIELDS)
    # Sealing draws a fresh nonce, so a value entered in this save never equals the stored one.
    entered = {
        name
        for name in Connector.SEALED_FIELDS
        if getattr(connector, connector.sealed_column(name))
        != getattr(before, before.sealed_column(name))
    }
    return sorted(name for name in sent - entered if connector.has_secret(name))


def connector_assertion_key_create(*, connector: Connector) -> None:
    """Give an OAuth connector its own RS256 key for ``private_key_jwt`` client authentication.

    The private half is sealed on the connector; the public half is published at
    ``/connect/connectors/<id>/jwks.json`` for the authorization server to trust.
    """
    pem = oidc.rsa_private_key_pem()
    jwk = oidc.public_jwk(pem)
    connector.seal("private_key", pem)
    connector.config = {
        **connector.config,
        "clientAssertionKeyId": jwk["kid"],
        "clientAssertionJwk": jwk,
    }


DISCOVERY_PATHS = (".well-known/oauth-authorization-server", ".well-known/openid-configuration")
DISCOVERED_KEYS = {
    "authorization_endpoint": "authorizationEndpoint",
    "token_endpoint": "tokenEndpoint",
    "revocation_endpoint": "revocationEndpoint",
    "userinfo_endpoint": "userinfoEndpoint",
    "jwks_uri": "jwksUri",
    "issuer": "issuer",
}
#: RFC 9207: the server names itself in every authorization response (checked there).
ISS_PARAMETER_SUPPORTED = "authorizationResponseIssParameterSupported"


def same_issuer(claimed: object, issuer: str) -> bool:
    """RFC 8414 section 3.3 / OpenID Discovery 4.3: the metadata names the issuer it was fetched
    for. A trailing slash is the only difference forgiven (people type either form)."""
    return isinstance(claimed, str) and claimed.rstrip("/") == issuer.rstrip("/")


def connector_discover(*, issuer: str) -> dict[str, Any]:
    """Endpoints of an OAuth server from RFC 8414 metadata, or OpenID Connect discovery.

    Fetched through the outbound module, so the SSRF guard applies to the typed-in issuer.
    Metadata that names another issuer is refused: a server answering for someone else's
    issuer (a mix-up) would otherwise receive the codes and secrets meant for it.
    """
    try:
        check_web_url(issuer)
    except UnsafeURL as exc:
        raise errors.InvalidRequest(f"The issuer {exc}.") from exc
    base = issuer.rstrip("/")
    last_error = ""
    for path in DISCOVERY_PATHS:
        try:
            response = http.session().get(f"{base}/{path}", headers={"Accept": "application/json"})
        except requests.RequestException as exc:
            last_error = http.failure_reason(exc)
            continue
        if response.status_code != 200:
            last_error = f"{path} answered {response.status_code}"
            continue
        try:
            document = response.json()
        except ValueError:
            last_error = f"{path} is not JSON"
            continue
        if not isinstance(document, dict) or not document.get("token_endpoint"):
            last_error = f"{path} names no token endpoint"
            continue
        if not same_issuer(document.get("issuer"), issuer):
            raise errors.InvalidRequest(
                f"{issuer}'s metadata names another issuer ({str(document.get('issuer'))[:200]!r})"
                "; it must name the issuer it was fetched from."
            )
        config: dict[str, Any] = {
            ours: document[theirs] for theirs, ours in DISCOVERED_KEYS.items() if theirs in document
        }
        for theirs in DISCOVERED_KEYS:
            if theirs in document:
                try:
                    check_web_url(document[theirs])
                except UnsafeURL as exc:
                    raise errors.InvalidRequest(f"{issuer}'s {theirs} {exc}.") from exc
        methods = document.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        config["tokenEndpointAuthMethod"] = next(
            (m for m in TOKEN_AUTH_METHODS if m in methods), methods[0]
        )
        challenge_methods = document.get("code_challenge_methods_supported")
        config["pkce"] = challenge_methods is None or "S256" in challenge_methods
        if "authorization_response_iss_parameter_supported" in document:
            config[ISS_PARAMETER_SUPPORTED] = (
                document["authorization_response_iss_parameter_supported"] is True
            )
        return config
    raise errors.InvalidRequest(f"Could not discover {issuer}: {last_error}")


@dataclass(frozen=True)
class StaleGrant:
    """A grant whose scopes predate the connector's default scopes: who must consent again."""

    subject_type: str
    subject_id: str
    installation_name: str

    def __str__(self) -> str:
        return f"{self.subject_type}:{self.subject_id or self.installation_name}"


def connector_reconsent_needed(*, connector: Connector) -> list[StaleGrant]:
    """Grants issued before the connector's default scopes grew: their subjects must consent
    again to get the new scopes (existing grants are left as they are)."""
    wanted = {
        subject_type: set(scopes)
        for subject_type, scopes in (connector.default_scopes or {}).items()
        if scopes
    }
    if not wanted:
        return []  # no default scope that a grant could lack
    stale = []
    # 500 at most, of the subject types that have default scopes, read by installation, which
    # the connector's index serves (the model's order sorts through the team's name; newest
    # first walked every grant), as plain rows: not model instances, not their sealed tokens.
    rows = (
        Grant.objects.filter(
            installation__connector=connector,
            status=Grant.Status.ACTIVE,
            subject_type__in=list(wanted),
        )
        .order_by("installation_id", "pk")
        .values_list(
            "subject_type",
            "subject_id",
            "scopes",
            "installation__display_name",
            "installation__tenant_id",
        )[:500]
    )
    for subject_type, subject_id, scopes, display_name, tenant_id in rows:
        if scopes and not wanted[subject_type] <= set(scopes):
            stale.append(StaleGrant(subject_type, subject_id, display_name or tenant_id))
    return stale


@dataclass(frozen=True)
class ConnectorChanges:
    """What a management API write sets on a connector; None leaves a field as it is.

    ``fields`` comes from the type's ``from_data`` (the registry): its ``config`` is a patch
    (a None value removes the key), its ``secrets`` are sealed, never stored in clear."""

    name: str | None = None
    uid: str | None = None
    service: str | None = None
    icon_url: str | None = None
    background_color: str | None = None
    accent_color: str | None = None
    triggers_enabled: bool | None = None
    events: list[str] | None = None
    allowed_return_origins: list[str] | None = None
    fields: ConnectorFields | None = field(default=None, repr=False)


def _first_problem(exc: ValidationError) -> str:
    for name, messages in exc.message_dict.items():
        label = {
            "__all__": "",
            "config": "data",
            "triggers_enabled": "triggers",
            "allowed_return_origins": "returnOrigins",
        }.get(name, name)
        return f"{label}: {messages[0]}" if label else messages[0]
    return "Invalid connector."


@transaction.atomic
def connector_write(*, connector: Connector, changes: ConnectorChanges, actor: Actor) -> Connector:
    """Create (an unsaved ``connector``) or change a connector from the management API, with
    the admin's validation (``Connector.clean``, the type's config schema, fail-closed
    triggers); a uid another connector of the team has is a ``conflict``."""
    if changes.uid is not None:
        connector.uid = changes.uid
    taken = Connector.objects.filter(team_id=connector.team_id, uid=connector.uid)
    if connector.pk is not None:
        taken = taken.exclude(pk=connector.pk)
    if taken.exists():
        raise errors.Conflict(f"The uid {connector.uid!r} is taken in this team.")
    for name in (
        "name",
        "service",
        "icon_url",
        "background_color",
        "accent_color",
        "triggers_enabled",
        "events",
        "allowed_return_origins",
    ):
        value = getattr(changes, name)
        if value is not None:
            setattr(connector, name, value)
    entered: list[str] = []
    if changes.fields is not None:
        if changes.fields.client_id is not None:
            connector.client_id = changes.fields.client_id
        config = dict(connector.config or {})
        for key, value in changes.fields.config.items():
            if value is None:
                config.pop(key, None)
            else:
                config[key] = value
        connector.config = config
        for name, secret in changes.fields.secrets.items():
            connector.seal(name, secret)
            entered.append(name)
    try:
        return connector_save(connector=connector, actor=actor, changed_secrets=sorted(entered))
    except ValidationError as exc:
        raise errors.InvalidRequest(_first_problem(exc)) from exc


def connector_delete(*, connector: Connector, actor: Actor) -> int:
    """Delete a connector with its links, destinations and installations. Active
    installations are uninstalled first (their grants revoked at the provider where it can);
    returns how many were."""
    active = list(connector.installations.filter(status=Installation.Status.ACTIVE))
    for installation in active:
        installation_remove(installation=installation, actor=actor, delete=False)
    configuration_delete(obj=connector, actor=actor)
    return len(active)
