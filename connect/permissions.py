"""Who may do what in a team: one table of actions and the least role each needs.

The admin (``connect.admin.scoping``) and the management API (``connect.api.management``) both
ask ``role_allows`` with the role the user or team API token holds in the row's own team, so a
change of rule here changes both at once.
"""

from enum import StrEnum

from connect.models.base import ROLE_RANK, Role


class Action(StrEnum):
    #: Read configuration, records and logs.
    VIEW = "view"
    #: Create configuration: connectors, projects, links, destinations, credentials.
    ADD = "add"
    #: Change it, and remove what hangs off a connector (a project link, a destination).
    CHANGE = "change"
    #: Delete a row of its own (a connector, a project, an installation).
    DELETE = "delete"
    #: Add and remove members, change their roles.
    MANAGE_MEMBERS = "manage_members"
    #: Create, list and revoke team API tokens.
    MANAGE_TOKENS = "manage_tokens"
    #: Change the team itself.
    MANAGE_TEAM = "manage_team"


ACTION_ROLES: dict[Action, Role] = {
    Action.VIEW: Role.VIEWER,
    Action.ADD: Role.MEMBER,
    Action.CHANGE: Role.MEMBER,
    Action.DELETE: Role.OWNER,
    Action.MANAGE_MEMBERS: Role.OWNER,
    Action.MANAGE_TOKENS: Role.OWNER,
    Action.MANAGE_TEAM: Role.OWNER,
}


def role_allows(role: Role | str | None, action: Action | str) -> bool:
    """Whether ``role`` (a member's, or a token's effective role; None for none) may do
    ``action``. An unknown action is allowed to nobody."""
    if role is None:
        return False
    try:
        needed = ACTION_ROLES[Action(action)]
    except ValueError:
        return False
    return ROLE_RANK[Role(role)] >= ROLE_RANK[needed]


def least_role(action: Action | str) -> Role:
    """The least role that may do ``action``."""
    return ACTION_ROLES[Action(action)]
