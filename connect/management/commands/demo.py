from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from connect.services import demo


class Command(BaseCommand):
    help = "Create (or bring back) the demo team, project and api-key connector. Idempotent."

    def handle(self, *args: Any, **options: Any) -> None:
        password = demo.demo_seed()
        self.stdout.write(f"Admin login: {demo.DEMO_USERNAME} / {password}")
        self.stdout.write(
            f"Demo connector: {demo.DEMO_CONNECTOR_UID} for project {demo.DEMO_PROJECT_SLUG} "
            f"(production, development) at {settings.PUBLIC_URL}"
        )
