"""AES-256-GCM sealing: key ids, associated data, several keys, strict configuration."""

import base64
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from connect import crypto

OLD_KEY = crypto.generate_key()
NEW_KEY = crypto.generate_key()


def key_id_of(encoded: str) -> str:
    return crypto.key_id(base64.urlsafe_b64decode(encoded))


def body_of(sealed: str) -> bytes:
    body = sealed.split(".")[2]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def with_body(sealed: str, data: bytes) -> str:
    version, kid, _ = sealed.split(".")
    return f"{version}.{kid}.{base64.urlsafe_b64encode(data).decode().rstrip('=')}"


@pytest.fixture
def one_key(settings: Any) -> str:
    settings.CONNECT_ENCRYPTION_KEYS = [OLD_KEY]
    return OLD_KEY


def test_round_trip(one_key: str) -> None:
    sealed = crypto.seal("xoxb-123-secret", binding="connect.connector:scl_a:api_key")

    assert "xoxb-123-secret" not in sealed
    version, kid, _ = sealed.split(".")
    assert (version, kid) == ("v1", key_id_of(one_key))
    assert crypto.sealed_key_id(sealed) == key_id_of(one_key)
    assert crypto.open_sealed(sealed, binding="connect.connector:scl_a:api_key") == (
        "xoxb-123-secret"
    )


def test_every_seal_uses_a_fresh_nonce(one_key: str) -> None:
    first = crypto.seal("same", binding="b")
    second = crypto.seal("same", binding="b")

    assert first != second
    assert body_of(first)[: crypto.NONCE_BYTES] != body_of(second)[: crypto.NONCE_BYTES]


def test_unicode_and_empty_plaintexts_round_trip(one_key: str) -> None:
    for plaintext in ["", "ünïcødé 🔑", "x" * 10_000]:
        assert crypto.open_sealed(crypto.seal(plaintext, binding="b"), binding="b") == plaintext


@pytest.mark.parametrize("position", [0, crypto.NONCE_BYTES, crypto.NONCE_BYTES + 3, -1])
def test_a_flipped_byte_fails(one_key: str, position: int) -> None:
    """Nonce, ciphertext or tag: any change is caught by the GCM tag."""
    sealed = crypto.seal("hunter2", binding="b")
    data = bytearray(body_of(sealed))
    data[position] ^= 0x01

    with pytest.raises(crypto.DecryptionError, match="failed authentication"):
        crypto.open_sealed(with_body(sealed, bytes(data)), binding="b")


def test_a_truncated_value_fails(one_key: str) -> None:
    sealed = crypto.seal("hunter2", binding="b")
    data = body_of(sealed)

    for cut in (data[:-1], data[: crypto.NONCE_BYTES], b""):
        with pytest.raises(crypto.DecryptionError):
            crypto.open_sealed(with_body(sealed, cut), binding="b")


@pytest.mark.parametrize(
    "other_binding",
    [
        "connect.connector:scl_other:api_key",  # another row
        "connect.connector:scl_a:client_secret",  # another field
        "connect.grant:scl_a:api_key",  # another model
    ],
)
def test_a_value_moved_elsewhere_fails(one_key: str, other_binding: str) -> None:
    sealed = crypto.seal("hunter2", binding="connect.connector:scl_a:api_key")

    with pytest.raises(crypto.DecryptionError, match="failed authentication"):
        crypto.open_sealed(sealed, binding=other_binding)


def test_a_value_moved_to_another_row_or_field_of_a_model_fails(
    one_key: str, make_team: Any, make_connector: Any
) -> None:
    """The same through the model accessors: copying the column does not copy the secret."""
    team = make_team()
    source = make_connector(team, uid="api-key/source", secrets={"api_key": "the-real-key"})
    target = make_connector(team, uid="api-key/target")

    target.api_key_sealed = source.api_key_sealed
    target.save()
    target.refresh_from_db()
    with pytest.raises(crypto.DecryptionError):
        target.reveal("api_key")

    source.client_secret_sealed = source.api_key_sealed
    with pytest.raises(crypto.DecryptionError):
        source.reveal("client_secret")
    assert source.reveal("api_key") == "the-real-key"


def test_an_unknown_key_id_names_the_key(settings: Any) -> None:
    settings.CONNECT_ENCRYPTION_KEYS = [OLD_KEY]
    sealed = crypto.seal("hunter2", binding="b")
    settings.CONNECT_ENCRYPTION_KEYS = [NEW_KEY]

    with pytest.raises(crypto.DecryptionError) as caught:
        crypto.open_sealed(sealed, binding="b")
    message = str(caught.value)
    assert key_id_of(OLD_KEY) in message
    assert "CONNECT_ENCRYPTION_KEYS" in message


def test_several_keys_the_first_seals_and_all_open(settings: Any) -> None:
    settings.CONNECT_ENCRYPTION_KEYS = [OLD_KEY]
    old_sealed = crypto.seal("old secret", binding="b")

    settings.CONNECT_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    new_sealed = crypto.seal("new secret", binding="b")

    assert crypto.primary_key_id() == key_id_of(NEW_KEY)
    assert crypto.sealed_key_id(new_sealed) == key_id_of(NEW_KEY)
    assert crypto.sealed_key_id(old_sealed) == key_id_of(OLD_KEY)
    assert crypto.open_sealed(old_sealed, binding="b") == "old secret"
    assert crypto.open_sealed(new_sealed, binding="b") == "new secret"
    assert [key.id for key in crypto.keyring()] == [key_id_of(NEW_KEY), key_id_of(OLD_KEY)]

    # Once the old key is gone, only what it sealed stops opening.
    settings.CONNECT_ENCRYPTION_KEYS = [NEW_KEY]
    assert crypto.open_sealed(new_sealed, binding="b") == "new secret"
    with pytest.raises(crypto.DecryptionError, match=key_id_of(OLD_KEY)):
        crypto.open_sealed(old_sealed, binding="b")


def test_keys_may_be_written_without_padding(settings: Any) -> None:
    settings.CONNECT_ENCRYPTION_KEYS = [OLD_KEY.rstrip("=")]

    assert crypto.primary_key_id() == key_id_of(OLD_KEY)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ([], "empty"),
        (["not base64 at all!"], "32 bytes"),
        ([base64.urlsafe_b64encode(b"short").decode()], "32 bytes"),
        ([base64.urlsafe_b64encode(bytes(64)).decode()], "32 bytes"),
        ([NEW_KEY, "A"], "base64"),
    ],
)
def test_bad_key_configuration_is_improperly_configured(
    settings: Any, keys: list[str], message: str
) -> None:
    settings.CONNECT_ENCRYPTION_KEYS = keys

    with pytest.raises(ImproperlyConfigured, match=message):
        crypto.seal("x", binding="b")


@pytest.mark.parametrize(
    "sealed",
    ["", "plaintext", "v1.abc", "v2.abcdef12.AAAA", "v1.abcdef12.AAAA.extra"],
)
def test_values_that_are_not_sealed_fail_clearly(one_key: str, sealed: str) -> None:
    with pytest.raises(crypto.DecryptionError):
        crypto.open_sealed(sealed, binding="b")


# Whatever key the settings hold (generated into var/ for tests) is fine for the properties.


@hypothesis_settings(deadline=None)
@given(plaintext=st.text(), binding=st.text())
def test_any_plaintext_round_trips(plaintext: str, binding: str) -> None:
    sealed = crypto.seal(plaintext, binding=binding)

    assert crypto.open_sealed(sealed, binding=binding) == plaintext


@hypothesis_settings(deadline=None)
@given(plaintext=st.text(), data=st.data())
def test_any_single_byte_change_to_the_body_fails(plaintext: str, data: st.DataObject) -> None:
    sealed = crypto.seal(plaintext, binding="b")
    body = bytearray(body_of(sealed))
    position = data.draw(st.integers(min_value=0, max_value=len(body) - 1), label="position")
    new_byte = data.draw(
        st.integers(min_value=0, max_value=255).filter(lambda b: b != body[position]),
        label="byte",
    )
    body[position] = new_byte

    with pytest.raises(crypto.DecryptionError):
        crypto.open_sealed(with_body(sealed, bytes(body)), binding="b")


@hypothesis_settings(deadline=None)
@given(plaintext=st.text(), data=st.data())
def test_any_single_character_change_to_the_stored_text_fails(
    plaintext: str, data: st.DataObject
) -> None:
    """Also at the text level: a stored value that was altered in any way never opens.

    (A lenient base64 decoder skips stray characters and the spare bits of the last one.)
    """
    sealed = crypto.seal(plaintext, binding="b")
    prefix_length = len(sealed) - len(sealed.split(".")[2])
    position = data.draw(
        st.integers(min_value=prefix_length, max_value=len(sealed) - 1), label="position"
    )
    alphabet = st.sampled_from(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/! é"
    )
    edit = data.draw(st.sampled_from(["replace", "insert"]), label="edit")
    char = data.draw(alphabet.filter(lambda c: c != sealed[position]), label="char")
    if edit == "replace":
        altered = sealed[:position] + char + sealed[position + 1 :]
    else:
        altered = sealed[:position] + char + sealed[position:]

    with pytest.raises(crypto.DecryptionError):
        crypto.open_sealed(altered, binding="b")
