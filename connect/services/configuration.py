"""Configuration changes, each recorded in the team's audit log (SPEC §10, "configuration
changed").

The rows a team configures by hand — the team and its members' roles, projects and their
environments, connectors' project links and destinations, deployment credentials, trusted
issuers and their rules, installations and grants edited in the admin — are saved and deleted
through here unless a service of their own records the change (``connector_save``,
``destination_save``, ``project_delete``, ``membership_add`` …). One event per row changed,
naming the actor and the row by its public id. Fields are named, never their values, except
the few in ``RECORDED`` that say where things go and who may do what (a base URL, a JWKS URL,
a role): none of them is a secret.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from django.db import models, transaction

from connect.models import (
    AuditEvent,
    Connector,
    DeploymentCredential,
    Environment,
    Grant,
    Installation,
    LifecycleDestination,
    Membership,
    Project,
    ProjectLink,
    Team,
    TeamApiToken,
    TriggerDestination,
    TrustedIssuer,
    TrustedIssuerRule,
)
from connect.models.base import TeamScopedQuerySet
from connect.services.audit import Actor, audit_record

Change = Literal["created", "updated", "deleted"]


@dataclass(frozen=True)
class Audited:
    #: The event type of each change made through here (the others have services of their own).
    types: dict[Change, AuditEvent.Type]
    #: The row (and its parent) by public id, as the event's targets.
    targets: Callable[[Any], dict[str, str]]
    #: Fields whose values the event records, before and after: where things go, who may act.
    recorded: tuple[str, ...] = field(default=())


AUDITED: dict[type[models.Model], Audited] = {
    # Teams are made by team_create (or a superuser here); a deleted team's log goes with it.
    Team: Audited(
        {"created": AuditEvent.Type.TEAM_CREATED, "updated": AuditEvent.Type.TEAM_UPDATED},
        lambda team: {"teamId": team.public_id},
        ("name",),
    ),
    # Members are added and removed by services.teams (which invites new ones).
    Membership: Audited(
        {"updated": AuditEvent.Type.MEMBER_ROLE_CHANGED},
        lambda membership: {"userId": str(membership.user_id)},
        ("role",),
    ),
    # project_delete and environment_delete also strip the links that name them.
    Project: Audited(
        {"created": AuditEvent.Type.PROJECT_CREATED, "updated": AuditEvent.Type.PROJECT_UPDATED},
        lambda project: {"projectId": project.public_id},
        ("name", "slug"),
    ),
    Environment: Audited(
        {
            "created": AuditEvent.Type.ENVIRONMENT_CREATED,
            "updated": AuditEvent.Type.ENVIRONMENT_UPDATED,
        },
        lambda environment: {
            "projectId": environment.project.public_id,
            "environment": environment.slug,
        },
        ("slug", "base_url"),
    ),
    # Saved by connector_save, which sees their secrets.
    Connector: Audited(
        {"deleted": AuditEvent.Type.CONNECTOR_DELETED},
        lambda connector: {"connectorId": connector.public_id},
        ("uid",),
    ),
    ProjectLink: Audited(
        {
            "created": AuditEvent.Type.LINK_CREATED,
            "updated": AuditEvent.Type.LINK_UPDATED,
            "deleted": AuditEvent.Type.LINK_DELETED,
        },
        lambda link: {"connectorId": link.connector.public_id, "projectId": link.project.public_id},
        ("environments",),
    ),
    # Saved by destination_save, which gives a new one its secret.
    TriggerDestination: Audited(
        {"deleted": AuditEvent.Type.DESTINATION_DELETED},
        lambda destination: {
            "connectorId": destination.connector.public_id,
            "destinationId": destination.public_id,
        },
        ("path",),
    ),
    # Installed by flows and webhooks, removed by installation_remove.
    Installation: Audited(
        {"updated": AuditEvent.Type.INSTALLATION_UPDATED},
        lambda installation: {
            "connectorId": installation.connector.public_id,
            "installationId": installation.public_id,
        },
        ("status", "is_default"),
    ),
    # Ended (revoked, or deleted from the admin) by installations.grant_revoke.
    Grant: Audited(
        {"updated": AuditEvent.Type.GRANT_UPDATED},
        lambda grant: {
            "connectorId": grant.installation.connector.public_id,
            "installationId": grant.installation.public_id,
            "grantId": grant.public_id,
        },
        ("status",),
    ),
    # Created by deployment_credential_create, revoked by deployment_credentials_revoke.
    DeploymentCredential: Audited(
        {
            "updated": AuditEvent.Type.CREDENTIAL_UPDATED,
            "deleted": AuditEvent.Type.CREDENTIAL_DELETED,
        },
        lambda credential: {
            "credentialId": credential.public_id,
            "projectId": credential.project.public_id,
        },
        ("name",),
    ),
    TrustedIssuer: Audited(
        {
            "created": AuditEvent.Type.TRUSTED_ISSUER_CREATED,
            "updated": AuditEvent.Type.TRUSTED_ISSUER_UPDATED,
            "deleted": AuditEvent.Type.TRUSTED_ISSUER_DELETED,
        },
        lambda issuer: {"trustedIssuerId": issuer.public_id},
        ("issuer", "jwks_url", "audience"),
    ),
    # Created by api_token_create, revoked by api_tokens_revoke; only the name changes.
    TeamApiToken: Audited(
        {"updated": AuditEvent.Type.API_TOKEN_UPDATED},
        lambda token: {"apiTokenId": token.public_id},
        ("name",),
    ),
    TrustedIssuerRule: Audited(
        {
            "created": AuditEvent.Type.TRUSTED_ISSUER_RULE_CREATED,
            "updated": AuditEvent.Type.TRUSTED_ISSUER_RULE_UPDATED,
            "deleted": AuditEvent.Type.TRUSTED_ISSUER_RULE_DELETED,
        },
        lambda rule: {
            "trustedIssuerId": rule.trusted_issuer.public_id,
            "ruleId": rule.public_id,
        },
        ("required_claims",),
    ),
}
# The lifecycle kind of destination, as the connector page edits it: the same row and events.
AUDITED[LifecycleDestination] = AUDITED[TriggerDestination]


def _team_id(obj: models.Model) -> int:
    queryset = type(obj)._default_manager.all()
    assert isinstance(queryset, TeamScopedQuerySet)
    return queryset.team_id_of(obj)


def _record(obj: models.Model, change: Change, *, actor: Actor, fields: dict[str, Any]) -> None:
    audited = AUDITED[type(obj)]
    audit_record(
        team=_team_id(obj),
        type=audited.types[change],
        actor=actor,
        targets=audited.targets(obj),
        fields=fields,
    )


@transaction.atomic
def configuration_save(
    *,
    obj: models.Model,
    actor: Actor,
    changed: Sequence[str] = (),
    update_fields: Sequence[str] | None = None,
) -> None:
    """Save a configuration row; record it created, or updated when ``changed`` names the
    fields that changed (a save that changed nothing records nothing)."""
    created = obj._state.adding
    recorded = [name for name in AUDITED[type(obj)].recorded if created or name in changed]
    before = (
        {}
        if created or not recorded
        else type(obj)._default_manager.filter(pk=obj.pk).values(*recorded).get()
    )
    obj.save(update_fields=update_fields)
    if not created and not changed:
        return
    fields: dict[str, Any] = {} if created else {"changed": sorted(changed)}
    if before:
        fields["before"] = before
    if recorded:
        fields["after"] = {name: getattr(obj, name) for name in recorded}
    _record(obj, "created" if created else "updated", actor=actor, fields=fields)


@transaction.atomic
def configuration_delete(*, obj: models.Model, actor: Actor) -> None:
    """Delete a configuration row and record it deleted, with the recorded fields' last
    values."""
    recorded = AUDITED[type(obj)].recorded
    before = {name: getattr(obj, name) for name in recorded}
    _record(obj, "deleted", actor=actor, fields={"before": before} if before else {})
    obj.delete()
