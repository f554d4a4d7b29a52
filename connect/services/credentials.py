from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from connect.models import AuditEvent, DeploymentCredential
from connect.services.audit import Actor, audit_record


@transaction.atomic
def deployment_credential_create(*, credential: DeploymentCredential, actor: Actor) -> str:
    """Save a new credential and return its token, the only time it exists in clear."""
    token = credential.issue_token()
    credential.full_clean()
    credential.save()
    audit_record(
        team=credential.project.team_id,
        type=AuditEvent.Type.CREDENTIAL_CREATED,
        actor=actor,
        targets={"credentialId": credential.public_id, "projectId": credential.project.public_id},
        fields={"environment": credential.environment.slug},
    )
    return token


@transaction.atomic
def deployment_credentials_revoke(
    *, credentials: QuerySet[DeploymentCredential], actor: Actor
) -> int:
    """Revoke these credentials (their tokens stop working at once), each recorded; how
    many were revoked."""
    revoked = list(credentials.select_related("project"))
    now = timezone.now()
    for credential in revoked:
        credential.revoked_at = now
        credential.save(update_fields=["revoked_at"])
        audit_record(
            team=credential.project.team_id,
            type=AuditEvent.Type.CREDENTIAL_REVOKED,
            actor=actor,
            targets={"credentialId": credential.public_id},
        )
    return len(revoked)
