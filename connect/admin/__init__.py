"""The team-scoped admin. Importing this package registers every model admin on the site."""

from connect.admin import (  # noqa: F401
    audit,
    connectors,
    credentials,
    deliveries,
    installations,
    projects,
    proxy_calls,
    teams,
)
