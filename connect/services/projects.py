from collections.abc import Sequence

from django.db import transaction

from connect import errors
from connect.models import AuditEvent, Environment, Project, ProjectLink
from connect.services.audit import Actor, audit_record
from connect.services.configuration import configuration_save


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


@transaction.atomic
def project_create(
    *, team_id: int, name: str, slug: str, environments: Sequence[str], actor: Actor
) -> Project:
    """A project and its environments, each recorded as the admin records them. A slug taken
    in the team is a conflict."""
    if Project.objects.filter(team_id=team_id, slug=slug).exists():
        raise errors.Conflict(f"The slug {slug} is taken in this team.")
    project = Project(team_id=team_id, name=name, slug=slug)
    project.full_clean()
    configuration_save(obj=project, actor=actor)
    for environment_slug in dict.fromkeys(environments):
        environment_add(project=project, slug=environment_slug, base_url="", actor=actor)
    return project


def environment_add(*, project: Project, slug: str, base_url: str, actor: Actor) -> Environment:
    """A new environment of ``project``; its base URL checked as the admin checks it (an
    absolute https:// URL, outside production http:// too). A slug taken is a conflict."""
    if project.environments.filter(slug=slug).exists():
        raise errors.Conflict(f"The project already has an environment {slug}.")
    environment = Environment(project=project, slug=slug, base_url=base_url)
    environment.full_clean()
    configuration_save(obj=environment, actor=actor)
    return environment
