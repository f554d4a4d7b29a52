from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig


class ConnectConfig(AppConfig):
    name = "connect"
    verbose_name = "Connect"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from connect import (
            checks,  # noqa: F401  (registers the system checks)
            generations,  # noqa: F401  (publishes generation changes on commit)
        )


class ConnectAdminConfig(AdminConfig):
    """Replaces Django's default admin site with the team-scoped one.

    The site class lives outside ``connect/admin/``: importing it must not import that package,
    whose modules register on ``admin.site`` while the lazy site is still being built (the
    registrations would land on a throwaway instance).
    """

    default_site = "connect.admin_site.ConnectAdminSite"
