from django.db import transaction

from connect.models import AuditEvent, Environment, Project, ProjectLink
from connect.services.audit import Actor, audit_record


@transaction.atomic
def environment_delete(*, environment: Environment, actor: Actor) -> None:
    """Delete an environment and strip it from links; a link left with none is removed."""
    project = environment.project
    for link in ProjectLink.objects.select_for_update().filter(project=project):
        remaining = [slug for slug in link.environments if slug != environment.slug]
        if not remaining:
            link.delete()
        elif remaining != link.environments:
            link.environments = remaining
            link.save(update_fields=["environments"])
    audit_record(
        team=project.team_id,
        type=AuditEvent.Type.ENVIRONMENT_DELETED,
        actor=actor,
        targets={"projectId": project.public_id, "environment": environment.slug},
    )
    environment.delete()


@transaction.atomic
def project_delete(*, project: Project, actor: Actor) -> None:
    """Delete a project (its environments, links and credentials go with it), recorded."""
    audit_record(
        team=project.team_id,
        type=AuditEvent.Type.PROJECT_DELETED,
        actor=actor,
        targets={"projectId": project.public_id},
    )
    project.delete()
