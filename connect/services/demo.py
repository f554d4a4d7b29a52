import secrets

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from connect.kinds import SubjectType
from connect.models import (
    Connector,
    Environment,
    Membership,
    Project,
    ProjectLink,
    Role,
    Team,
)
from connect.models.projects import STANDARD_ENVIRONMENTS
from connect.providers.api_key import ApiKeyProvider
from connect.services.connectors import connector_save
from connect.var_files import read_or_create

DEMO_TEAM_SLUG = "demo"
DEMO_USERNAME = "demo"
DEMO_PROJECT_SLUG = "demo-app"
DEMO_CONNECTOR_UID = "api-key/demo"
DEMO_API_KEY = "demo-secret-key"


DEMO_APP_URL = "http://127.0.0.1:3000"


def demo_password() -> str:
    """Generated once into var/ and reused, so every run prints the same working login."""
    return read_or_create(settings.VAR_DIR / "demo_password", lambda: secrets.token_urlsafe(12))


@transaction.atomic
def demo_seed() -> str:
    """Create or restore the demo data; returns the owner's password."""
    password = demo_password()
    team, _ = Team.objects.get_or_create(slug=DEMO_TEAM_SLUG, defaults={"name": "Demo"})
    user, _ = User.objects.get_or_create(
        username=DEMO_USERNAME, defaults={"email": "demo@example.com"}
    )
    if not user.check_password(password):
        user.set_password(password)
        user.save(update_fields=["password"])
    Membership.objects.update_or_create(team=team, user=user, defaults={"role": Role.OWNER})

    project, _ = Project.objects.get_or_create(
        team=team, slug=DEMO_PROJECT_SLUG, defaults={"name": "Demo app"}
    )
    for slug in STANDARD_ENVIRONMENTS:
        # Your app, running locally: destinations need a base URL to deliver to.
        environment, _ = Environment.objects.get_or_create(
            project=project, slug=slug, defaults={"base_url": DEMO_APP_URL}
        )
        if not environment.base_url:
            environment.base_url = DEMO_APP_URL
            environment.save(update_fields=["base_url"])

    connector = Connector.objects.filter(team=team, uid=DEMO_CONNECTOR_UID).first()
    if connector is None:
        connector = Connector(
            team=team,
            uid=DEMO_CONNECTOR_UID,
            type=ApiKeyProvider.key,
            service=ApiKeyProvider.key,
            name="Demo API key",
            default_scopes={SubjectType.APP.value: []},
        )
    if connector.reveal("api_key") != DEMO_API_KEY:
        connector.seal("api_key", DEMO_API_KEY)
        connector_save(connector=connector, actor="cli:demo", changed_secrets=["api_key"])
    ProjectLink.objects.update_or_create(
        connector=connector,
        project=project,
        defaults={"environments": ["production", "development"]},
    )
    return password
