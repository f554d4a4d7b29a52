"""Received webhooks and their deliveries: filters, detail, replay."""

from connect.models import Delivery
from connect.models.deliveries import DeliveryStatus
from tests.resources.conftest import Api, World

V = "/v1/connect"


def test_list_filter_get_and_replay(api: Api, acme: World) -> None:
    events = api.get(f"{V}/events?eventType=push", acme.viewer).body["events"]
    assert [e["id"] for e in events] == [acme.event.public_id]
    assert api.get(f"{V}/events?eventType=issues", acme.viewer).body["events"] == []
    detail = api.get(f"{V}/events/{acme.event.public_id}", acme.viewer).body
    assert [d["id"] for d in detail["deliveries"]] == [acme.delivery.webhook_id]
    assert "body" not in detail

    Delivery.objects.filter(pk=acme.delivery.pk).update(status=DeliveryStatus.FAILED, attempts=3)
    failed = api.get(f"{V}/deliveries?status=failed", acme.viewer).body["deliveries"]
    assert [d["id"] for d in failed] == [acme.delivery.webhook_id]
    replayed = api.post(f"{V}/events/{acme.event.public_id}/replay", acme.member)
    assert replayed.status == 200
    assert replayed.body == {"replayed": 1}
    acme.delivery.refresh_from_db()
    assert acme.delivery.status == DeliveryStatus.PENDING
    assert acme.delivery.attempts == 0
    one = api.get(f"{V}/deliveries/{acme.delivery.webhook_id}", acme.viewer).body
    assert one["attemptLog"] == []
    assert one["status"] == "pending"
