"""Proxied call records go after ``CONNECT_RETAIN_PROXY_CALLS_DAYS``, with the other logs."""

from datetime import timedelta

from django.utils import timezone

from connect.models import ProxyCall
from connect.services.retention import retention_prune
from tests.proxy.conftest import ProxyRig


def test_old_proxy_calls_are_pruned(rig: ProxyRig) -> None:
    now = timezone.now()
    rows = {}
    for name, age in (
        ("kept", timedelta(days=7) - timedelta(seconds=1)),
        ("gone", timedelta(days=7, seconds=1)),
    ):
        rows[name] = ProxyCall.objects.create(
            team=rig.team,
            connector=rig.connector,
            project=rig.project,
            environment="production",
            method="GET",
            path="/me",
            outcome=ProxyCall.Outcome.ANSWERED,
            status=200,
            latency_ms=5,
            created_at=now - age,
        )

    assert retention_prune(now=now)["proxy_calls"] == 1
    assert list(ProxyCall.objects.values_list("pk", flat=True)) == [rows["kept"].pk]
