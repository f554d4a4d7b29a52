"""The link check every runtime endpoint makes: a caller's project uses a connector only
through a project link that includes the caller's environment."""

from connect import errors
from connect.callers import Caller
from connect.kinds import Subject, SubjectType
from connect.models import Connector
from connect.services import resolution
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
