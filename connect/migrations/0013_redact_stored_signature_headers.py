"""Redact the signature headers of webhooks stored before they were redacted on the way in.

A stored signature lets whoever reads the log send the request again while it verifies (for
GitHub and plain HMACs, which sign no timestamp: forever). The names are copied here rather
than imported, so that this migration keeps doing what it did when the code moves on.
"""

from typing import Any

from django.db import migrations
from django.db.models import Q

SIGNATURE_HEADERS = frozenset(
    {
        "x-hub-signature-256",
        "x-hub-signature",
        "x-slack-signature",
        "linear-signature",
        "x-signature-ed25519",
        "webhook-signature",
        "svix-signature",
    }
)
BATCH = 1000


def redact_signatures(apps: Any, schema_editor: Any) -> None:
    Connector = apps.get_model("connect", "Connector")
    InboundEvent = apps.get_model("connect", "InboundEvent")
    custom = {
        pk: name
        for pk, config in Connector.objects.filter(config__has_key="signatureHeader").values_list(
            "pk", "config"
        )
        if (name := str(config.get("signatureHeader") or "").strip().lower())
    }
    rows = InboundEvent.objects.filter(
        Q(headers__has_any_keys=sorted(SIGNATURE_HEADERS)) | Q(connector_id__in=list(custom))
    ).only("pk", "connector_id", "headers")
    changed = []
    for event in rows.iterator(chunk_size=BATCH):
        hidden = SIGNATURE_HEADERS | {custom.get(event.connector_id, "")}
        headers = {
            name: "[redacted]" if name.lower() in hidden else value
            for name, value in event.headers.items()
        }
        if headers != event.headers:
            event.headers = headers
            changed.append(event)
        if len(changed) >= BATCH:
            InboundEvent.objects.bulk_update(changed, ["headers"])
            changed = []
    InboundEvent.objects.bulk_update(changed, ["headers"])


class Migration(migrations.Migration):
    dependencies = [("connect", "0012_destination_disabling_and_event_body_hash")]

    operations = [
        # What was redacted cannot come back: going backwards leaves it redacted.
        migrations.RunPython(redact_signatures, migrations.RunPython.noop, elidable=True),
    ]
