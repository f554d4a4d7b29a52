"""Key rotation: every secret moves to the newest key, and values the app writes meanwhile win."""

import base64
import random
import threading
import time
from collections.abc import Callable, Iterator
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from connect import crypto
from connect.models import (
    AuthorizationRequest,
    Connector,
    Grant,
    Installation,
    Project,
    Team,
    TriggerDestination,
)
from connect.models.base import SealedSecrets
from connect.services.encryption import (
    encryption_keys_remaining,
    encryption_keys_rotate,
    sealed_models,
)

OLD_KEY = crypto.generate_key()
NEW_KEY = crypto.generate_key()
OLD_ID = crypto.key_id(base64.urlsafe_b64decode(OLD_KEY))
NEW_ID = crypto.key_id(base64.urlsafe_b64decode(NEW_KEY))

# (model, pk, secret name) → plaintext
Secrets = dict[tuple[type[SealedSecrets], int, str], str]


def stored_secrets() -> Iterator[tuple[SealedSecrets, str, str]]:
    """Every non-empty sealed column in the database: (row, secret name, stored ciphertext)."""
    for model in sealed_models():
        for row in model._default_manager.all():
            for name in model.SEALED_FIELDS:
                sealed = getattr(row, row.sealed_column(name))
                if sealed:
                    yield row, name, sealed


def assert_all_open_with_only_the_new_key(settings: Any, expected: Secrets) -> None:
    settings.CONNECT_ENCRYPTION_KEYS = [NEW_KEY]
    found: Secrets = {}
    for row, name, sealed in stored_secrets():
        assert crypto.sealed_key_id(sealed) == NEW_ID, (type(row).__name__, name)
        found[(type(row), row.pk, name)] = row.reveal(name)
    assert found == expected


@pytest.fixture
def seeded(
    settings: Any,
    make_team: Callable[..., Team],
    make_project: Callable[..., Project],
    make_connector: Callable[..., Connector],
    make_installation: Callable[..., Installation],
    make_grant: Callable[..., Grant],
    make_destination: Callable[..., TriggerDestination],
    make_authorization_request: Callable[..., AuthorizationRequest],
) -> Secrets:
    """Secrets in every kind of sealed model, all sealed under OLD_KEY."""
    settings.CONNECT_ENCRYPTION_KEYS = [OLD_KEY]
    team = make_team()
    project = make_project(team, environments=("production", "preview"))
    api_key = make_connector(team, uid="api-key/one", secrets={"api_key": "key-one"})
    oauth = make_connector(
        team,
        uid="slack/bot",
        type=Connector.Type.SLACK,
        secrets={"client_secret": "slack-client-secret", "trigger_signing_secret": "slack-sig"},
    )
    installation = make_installation(oauth, tenant_id="T123")
    app_grant = make_grant(
        installation, secrets={"access_token": "xoxb-app", "refresh_token": "xoxe-app"}
    )
    user_grant = make_grant(
        installation,
        subject_type=Grant.SubjectType.USER,
        subject_id="42",
        issuer=project.public_id,
        secrets={"access_token": "xoxp-user"},
    )
    destination = make_destination(oauth, project, "production")
    destination.seal("previous_signing_secret", "whsec_previous")
    destination.save()
    flow = make_authorization_request(oauth, pkce_verifier="pkce-verifier-value")
    untouched = make_authorization_request(oauth)  # no secret: nothing to rewrite

    expected: Secrets = {
        (Connector, api_key.pk, "api_key"): "key-one",
        (Connector, oauth.pk, "client_secret"): "slack-client-secret",
        (Connector, oauth.pk, "trigger_signing_secret"): "slack-sig",
        (Grant, app_grant.pk, "access_token"): "xoxb-app",
        (Grant, app_grant.pk, "refresh_token"): "xoxe-app",
        (Grant, user_grant.pk, "access_token"): "xoxp-user",
        (TriggerDestination, destination.pk, "signing_secret"): destination.reveal(
            "signing_secret"
        ),
        (TriggerDestination, destination.pk, "previous_signing_secret"): "whsec_previous",
        (AuthorizationRequest, flow.pk, "pkce_verifier"): "pkce-verifier-value",
    }
    assert expected[(TriggerDestination, destination.pk, "signing_secret")].startswith("whsec_")
    assert not untouched.has_secret("pkce_verifier")
    assert {crypto.sealed_key_id(sealed) for _, _, sealed in stored_secrets()} == {OLD_ID}
    assert len(list(stored_secrets())) == len(expected)
    return expected


def test_rotation_rewrites_everything_and_the_old_key_can_go(
    settings: Any, seeded: Secrets
) -> None:
    before = {(type(row), row.pk, name): sealed for row, name, sealed in stored_secrets()}
    settings.CONNECT_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]

    report = encryption_keys_rotate(batch_size=2)

    assert report.rewritten == len(seeded) == 9
    assert report.already_current == 0
    assert report.changed_meanwhile == 0
    assert {label: n for label, n in report.per_model.items() if n} == {
        "connect.Connector": 3,
        "connect.Grant": 3,
        "connect.TriggerDestination": 2,
        "connect.AuthorizationRequest": 1,
    }
    after = {(type(row), row.pk, name): sealed for row, name, sealed in stored_secrets()}
    assert after.keys() == before.keys()
    assert all(after[where] != before[where] for where in before)
    assert_all_open_with_only_the_new_key(settings, seeded)


def test_rotation_touches_only_the_sealed_columns(settings: Any, seeded: Secrets) -> None:
    def snapshot() -> dict[str, list[dict[str, Any]]]:
        return {
            model._meta.label: [
                {k: v for k, v in row.items() if not k.endswith("_sealed")}
                for row in model._default_manager.order_by("pk").values()
            ]
            for model in sealed_models()
        }

    before = snapshot()
    settings.CONNECT_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    encryption_keys_rotate()

    assert snapshot() == before


def test_a_second_rotation_has_nothing_to_do(settings: Any, seeded: Secrets) -> None:
    settings.CONNECT_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    encryption_keys_rotate()
    after_first = sorted(sealed for _, _, sealed in stored_secrets())

    report = encryption_keys_rotate()

    assert (report.rewritten, report.already_current, report.changed_meanwhile) == (0, 9, 0)
    assert sorted(sealed for _, _, sealed in stored_secrets()) == after_first


def test_rotation_walks_past_the_batch_size(
    settings: Any, make_team: Callable[..., Team], make_connector: Callable[..., Connector]
) -> None:
    settings.CONNECT_ENCRYPTION_KEYS = [OLD_KEY]
    team = make_team()
    expected: Secrets = {}
    for n in range(7):
        connector = make_connector(team, uid=f"api-key/c{n}", secrets={"api_key": f"key-{n}"})
        expected[(Connector, connector.pk, "api_key")] = f"key-{n}"
    settings.CONNECT_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]

    report = encryption_keys_rotate(batch_size=3)

    assert report.rewritten == 7
    assert_all_open_with_only_the_new_key(settings, expected)


def test_the_command_reports_how_many_it_rewrote(settings: Any, seeded: Secrets) -> None:
    settings.CONNECT_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    out = StringIO()

    call_command("rotate_encryption_keys", "--batch-size", "1", stdout=out)

    output = out.getvalue()
    assert f"Rewrote 9 secret(s) under key {NEW_ID}" in output
    assert "0 already current" in output
    assert "connect.Grant: 3" in output
    for plaintext in seeded.values():
        assert plaintext not in output
    assert_all_open_with_only_the_new_key(settings, seeded)

    out = StringIO()
    call_command("rotate_encryption_keys", stdout=out)
    assert "Rewrote 0 secret(s)" in out.getvalue()
    assert "9 already current" in out.getvalue()


def wait_for_a_blocked_backend(timeout: float = 10.0) -> None:
    """Return once another PostgreSQL backend waits on a lock (the rotation, on our row)."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock' "
                "AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.01)
    raise AssertionError("the rotation never waited on the row the app was writing")


@pytest.mark.django_db(transaction=True)
def test_a_value_written_while_rotating_keeps_the_write(
    require_postgres: None,
    settings: Any,
    make_team: Callable[..., Team],
    make_connector: Callable[..., Connector],
) -> None:
    """The app holds a row while it writes a new secret; the rotation, which read the old value
    before the write committed, reaches that row and must not put the old secret back."""
    settings.CONNECT_ENCRYPTION_KEYS = [OLD_KEY]
    team = make_team()
    connectors = [
        make_connector(team, uid=f"api-key/c{n}", secrets={"api_key": f"old-{n}"}) for n in range(5)
    ]
    target = connectors[2]
    settings.CONNECT_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]  # the app already seals with NEW_KEY
    locked = threading.Event()
    failures: list[BaseException] = []

    def app_writes() -> None:
        try:
            with transaction.atomic():
                row = Connector.objects.select_for_update().get(pk=target.pk)
                locked.set()
                wait_for_a_blocked_backend()
                row.seal("api_key", "written-by-the-app")
                row.save(update_fields=["api_key_sealed"])
        except BaseException as exc:
            failures.append(exc)
            locked.set()
        finally:
            connection.close()

    writer = threading.Thread(target=app_writes)
    writer.start()
    assert locked.wait(10)
    report = encryption_keys_rotate(batch_size=2)
    writer.join(10)

    assert not writer.is_alive()
    assert failures == []
    assert report.changed_meanwhile == 1
    assert report.rewritten == 4
    expected: Secrets = {(Connector, c.pk, "api_key"): f"old-{n}" for n, c in enumerate(connectors)}
    expected[(Connector, target.pk, "api_key")] = "written-by-the-app"
    assert_all_open_with_only_the_new_key(settings, expected)


@pytest.mark.django_db(transaction=True)
def test_concurrent_writes_during_a_rotation_all_survive(
    require_postgres: None, settings: Any, make_team: Callable[..., Team]
) -> None:
    """Writers hammer rows while the rotation runs in small batches; every row ends up with
    what its writer wrote last (or its original value), and opens with only the new key."""
    settings.CONNECT_ENCRYPTION_KEYS = [OLD_KEY]
    team = make_team()
    rows = []
    for n in range(300):
        connector = Connector(
            team=team, uid=f"api-key/c{n}", type=Connector.Type.API_KEY, service="api-key"
        )
        connector.seal("api_key", f"original-{n}")
        rows.append(connector)
    Connector.objects.bulk_create(rows)
    pks = list(Connector.objects.order_by("pk").values_list("pk", flat=True))
    original = {pk: f"original-{n}" for n, pk in enumerate(pks)}
    settings.CONNECT_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]

    done = threading.Event()
    failures: list[BaseException] = []
    last_written: dict[int, str] = {}
    writes_during_rotation = [0]

    def writer(number: int, own: list[int]) -> None:
        # Each writer owns its rows, so "the last write" of a row is well defined.
        rng = random.Random(number)
        count = 0
        try:
            while not done.is_set():
                pk = rng.choice(own)
                count += 1
                value = f"writer-{number}-{count}"
                row = Connector.objects.get(pk=pk)
                row.seal("api_key", value)
                row.save(update_fields=["api_key_sealed"])
                last_written[pk] = value
                writes_during_rotation[0] += 1
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    writers = [threading.Thread(target=writer, args=(n, pks[n::2])) for n in range(2)]
    for thread in writers:
        thread.start()
    try:
        report = encryption_keys_rotate(batch_size=5)
    finally:
        done.set()
        for thread in writers:
            thread.join(10)

    assert failures == []
    assert writes_during_rotation[0] > 0
    assert report.rewritten + report.already_current + report.changed_meanwhile == len(pks)
    expected: Secrets = {
        (Connector, pk, "api_key"): last_written.get(pk, original[pk]) for pk in pks
    }
    assert_all_open_with_only_the_new_key(settings, expected)


def test_the_command_says_when_old_keys_can_go(settings: Any, seeded: Secrets) -> None:
    settings.CONNECT_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    connector = Connector.objects.get(pk=next(pk for (m, pk, _) in seeded if m is Connector))
    stale = Connector.objects.get(pk=connector.pk)  # loaded before the rotation finishes
    settings.CONNECT_ENCRYPTION_KEYS = [OLD_KEY]
    stale.seal("api_key", "written-late")  # a process still on the old key list
    settings.CONNECT_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]

    out = StringIO()
    call_command("rotate_encryption_keys", stdout=out)
    assert "older keys can be removed" in out.getvalue()

    # A save that began before the rotation writes an old-key value back after it.
    stale.save()
    out = StringIO()
    call_command("rotate_encryption_keys", stdout=out)
    # The rotation itself rewrote it in this run, so it is safe again.
    assert "Rewrote 1 secret(s)" in out.getvalue()
    assert "older keys can be removed" in out.getvalue()

    stale.save()  # and once more, after the command, with nothing rotating it
    assert encryption_keys_remaining() == 1
    settings.CONNECT_ENCRYPTION_KEYS = [NEW_KEY]
    with pytest.raises(crypto.DecryptionError):
        Connector.objects.get(pk=connector.pk).reveal("api_key")
