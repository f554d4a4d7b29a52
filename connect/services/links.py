"""The link check every runtime endpoint makes: a caller's project uses a connector only
through a project link that includes the caller's environment."""

from django.db import transaction

from connect import errors
from connect.callers import Caller
from connect.kinds import Subject, SubjectType
from connect.models import Connector, Project, ProjectLink, TriggerDestination
from connect.services import resolution
from connect.services.audit import Actor
from connect.services.configuration import configuration_delete, configuration_save
from connect.services.resolution import Resolution


def link_check(*, caller: Caller, resolved: Resolution | None) -> Resolution:
    """``resolved`` if the caller may use its connector: it exists in the caller's team (else
    ``not_found``), is linked to the caller's project, and the link includes its environment."""
    if resolved is None:
        raise errors.NotFound("No such connector.")
    if resolved.link is None:
        raise errors.ClientNotLinkedToProject(
            "This project is not linked to the connector; add a project link in the admin."
        )
    if not resolved.link.allows(caller.environment):
        raise errors.ClientNotEnabledForEnvironment(
            f"The project link does not include the {caller.environment!r} environment."
        )
    return resolved


def linked_connector(*, caller: Caller, connector_ref: str) -> Connector:
    """The connector ``connector_ref`` names (its id or uid), complete, if the caller's project
    may use it (``link_check``)."""
    resolved = link_check(
        caller=caller,
        resolved=resolution.resolve(
            team_id=caller.team_id,
            project_id=caller.project_id,
            connector_ref=connector_ref,
            subject=Subject(type=SubjectType.APP),
            installation_ref=None,
            complete=True,
        ),
    )
    return resolved.connector


def environments_resolve(*, project: Project, items: list[str]) -> list[str]:
    """Environment slugs of ``project`` from Vercel's items (``production``, ``preview``,
    ``development``, an ``env_…`` id, or a slug of ours), duplicates dropped, order kept.
    An item naming no environment of the project is an invalid request."""
    known = {env.slug: env for env in project.environments.all()}
    by_id = {env.public_id: env.slug for env in known.values()}
    slugs: list[str] = []
    for item in items:
        slug = by_id.get(item) or (item if item in known else None)
        if slug is None:
            raise errors.InvalidRequest(
                f"environments: {item!r} is not an environment of project {project.slug!r}."
            )
        if slug not in slugs:
            slugs.append(slug)
    return slugs


@transaction.atomic
def link_upsert(
    *, connector: Connector, project: Project, environments: list[str], actor: Actor
) -> tuple[ProjectLink, bool]:
    """Link ``project`` to ``connector`` in exactly ``environments`` (slugs), replacing the
    set of an existing link; (the link, whether it was created). Audited."""
    if not environments:
        raise errors.InvalidRequest("environments: Name one or more environments.")
    if project.team_id != connector.team_id:
        raise errors.NotFound("No such project.")
    link = ProjectLink.objects.select_for_update().filter(connector=connector, project=project)
    existing = link.first()
    created = existing is None
    row = existing or ProjectLink(connector=connector, project=project)
    changed = created or row.environments != environments
    row.environments = environments
    if changed:
        configuration_save(obj=row, actor=actor, changed=() if created else ["environments"])
    return row, created


def link_delete(*, link: ProjectLink, actor: Actor) -> None:
    """Remove a project link: the project's deployments lose the connector (its trigger
    destinations stay, as on Vercel)."""
    configuration_delete(obj=link, actor=actor)


@transaction.atomic
def link_environment_remove(*, link: ProjectLink, environment: str, actor: Actor) -> None:
    """Take one environment (a slug) out of a link; the connector's destinations for that
    environment of the project stop receiving events, and a link left with none is removed.
    Removing an environment the link lacks changes nothing."""
    if environment not in link.environments:
        return
    TriggerDestination.objects.filter(
        connector_id=link.connector_id, project_id=link.project_id, environment__slug=environment
    ).update(enabled=False)
    remaining = [slug for slug in link.environments if slug != environment]
    if not remaining:
        configuration_delete(obj=link, actor=actor)
        return
    link.environments = remaining
    configuration_save(obj=link, actor=actor, changed=["environments"])
