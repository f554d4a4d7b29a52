from django.db import transaction

from connect.models import TriggerDestination
from connect.models.destinations import new_signing_secret
from connect.services.audit import Actor, audit_record


@transaction.atomic
def destination_save(*, destination: TriggerDestination, actor: Actor) -> TriggerDestination:
    """Save a destination; a new one gets its own ``whsec_`` signing secret."""
    if not destination.has_secret("signing_secret"):
        destination.seal("signing_secret", new_signing_secret())
    destination.full_clean()
    destination.save()
    audit_record(
        team=destination.connector.team_id,
        type="destination.saved",
        actor=actor,
        targets={
            "connectorId": destination.connector.public_id,
            "destinationId": destination.public_id,
        },
    )
    return destination
