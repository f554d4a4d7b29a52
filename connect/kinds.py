"""The kinds every layer names: whom a token is for, and what a browser flow does.

Django-free, so provider drivers import them as well as the models (whose ``TextChoices`` take
their values from here) and the services.
"""

from dataclasses import dataclass
from enum import StrEnum

from connect import errors


class SubjectType(StrEnum):
    APP = "app"
    USER = "user"
    #: RFC 7523: a user asserted by the calling app, no consent screen (custom OAuth only).
    JWT_BEARER = "jwt-bearer"


class AuthorizationKind(StrEnum):
    #: An administrator installs the app into a workspace, organization or tenant.
    INSTALL = "install"
    #: A user shares their own account with the app.
    CONSENT = "consent"


@dataclass(frozen=True)
class Subject:
    """Whom a token is for: the app, a user (by id, under an issuer), or an asserted user."""

    type: str
    id: str = ""
    issuer: str = ""

    @classmethod
    def parse(cls, *, type: str, id: str, issuer: str) -> "Subject":
        """A subject from what a request names; its id is required where the type has one."""
        if type == SubjectType.APP:
            return cls(type=SubjectType.APP)
        if type == SubjectType.USER:
            if not id:
                raise errors.InvalidRequest("A user subject needs an id.")
            return cls(type=SubjectType.USER, id=id, issuer=issuer)
        if type == SubjectType.JWT_BEARER:
            if not id:
                raise errors.InvalidRequest("A jwt-bearer subject needs `sub`.")
            return cls(type=SubjectType.JWT_BEARER, id=id, issuer=issuer)
        raise errors.InvalidRequest(f"Subject type {type!r} is not supported by this connector.")
