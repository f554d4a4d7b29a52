"""Ingest with the process-local connector cache and the gathered doorbell (issue 13, item 5):
at most four statements per event, still committed before the provider's 2xx."""

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from connect.models import ConnectorType, Delivery, InboundEvent
from tests.fixtures import webhook_body
from tests.triggers.conftest import Triggers, github_headers, post_raw
from tests.triggers.test_intake import TRANSACTION_CONTROL, ok_id

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.usefixtures("memory_broker")
@pytest.mark.parametrize("doorbell", ["sync", "batched"])
def test_ingest_takes_at_most_four_statements_per_event(
    client: Client,
    triggers: Triggers,
    settings: Any,
    doorbell: str,
) -> None:
    settings.CONNECT_LOCAL_CACHES = True
    settings.CONNECT_DOORBELL = doorbell
    connector = triggers.make(ConnectorType.GITHUB, secret="gh-secret")
    for path in ("/a", "/b", "/c"):
        triggers.destination(connector, path=path)
    counts: list[int] = []
    checks = 0
    for number in range(4):  # the first ones fill the cache
        body = webhook_body("github", "issues.opened").replace(
            b"}", f', "n": {number}}}'.encode(), 1
        )
        headers = github_headers("gh-secret", body, delivery=f"delivery-{number}")
        with CaptureQueriesContext(connection) as captured:
            event_id = ok_id(post_raw(client, connector, body, headers))
        # Durable: committed (this test runs outside a transaction) before the answer.
        assert InboundEvent.objects.filter(public_id=event_id).exists()
        assert Delivery.objects.filter(event__public_id=event_id).count() == 3
        statements = [
            q["sql"]
            for q in captured.captured_queries
            if not q["sql"].upper().startswith(TRANSACTION_CONTROL)
        ]
        # The generations read is at most once a second per process, not per event.
        checks += sum("connect_generation" in sql for sql in statements)
        counts.append(sum("connect_generation" not in sql for sql in statements))
    assert checks <= 2, checks
    assert max(counts) <= 4, counts
    assert counts[-1] <= 3, counts  # warm: the connector came from the cache
