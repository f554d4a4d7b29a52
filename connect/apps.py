from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig


class ConnectConfig(AppConfig):
    name = "connect"
    verbose_name = "Connect"
    default_auto_field = "django.db.models.BigAutoField"


class ConnectAdminConfig(AdminConfig):
    """Replaces Django's default admin site with the team-scoped one."""

    default_site = "connect.admin.site.ConnectAdminSite"
