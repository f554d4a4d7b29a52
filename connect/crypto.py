"""AES-256-GCM for secrets at rest.

A sealed value reads ``v1.<key id>.<base64url(nonce || ciphertext || tag)>``. The key id names the
key that sealed it, so several keys can be configured at once (the first seals, all open) and
``rotate_encryption_keys`` can tell which rows still need rewriting. The associated data binds a
value to its model, row and field: a ciphertext copied into another row or column fails to open.
"""

import base64
import binascii
import functools
import hashlib
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

VERSION = "v1"
NONCE_BYTES = 12


class DecryptionError(Exception):
    """A sealed value could not be opened: unknown key, tampering, or the wrong binding."""


@dataclass(frozen=True)
class Key:
    id: str
    aead: AESGCM


def key_id(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:8]


def generate_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


@functools.lru_cache(maxsize=4)
def _keyring(encoded_keys: tuple[str, ...]) -> tuple[Key, ...]:
    keys = []
    for encoded in encoded_keys:
        try:
            raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError) as exc:
            raise ImproperlyConfigured(
                "CONNECT_ENCRYPTION_KEYS holds a value that is not base64"
            ) from exc
        if len(raw) != 32:
            raise ImproperlyConfigured("each CONNECT_ENCRYPTION_KEYS entry must decode to 32 bytes")
        keys.append(Key(id=key_id(raw), aead=AESGCM(raw)))
    if not keys:
        raise ImproperlyConfigured("CONNECT_ENCRYPTION_KEYS is empty")
    return tuple(keys)


def keyring() -> tuple[Key, ...]:
    """The configured keys, newest (the one that seals) first."""
    return _keyring(tuple(settings.CONNECT_ENCRYPTION_KEYS))


def primary_key_id() -> str:
    return keyring()[0].id


def sealed_key_id(sealed: str) -> str:
    _, kid, _ = _split(sealed)
    return kid


def seal(plaintext: str, *, binding: str) -> str:
    key = keyring()[0]
    nonce = secrets.token_bytes(NONCE_BYTES)
    ciphertext = key.aead.encrypt(nonce, plaintext.encode(), binding.encode())
    body = base64.urlsafe_b64encode(nonce + ciphertext).decode().rstrip("=")
    return f"{VERSION}.{key.id}.{body}"


def open_sealed(sealed: str, *, binding: str) -> str:
    _, kid, body = _split(sealed)
    key = next((k for k in keyring() if k.id == kid), None)
    if key is None:
        raise DecryptionError(
            f"value was sealed with key id {kid!r}, which is not in CONNECT_ENCRYPTION_KEYS"
        )
    data = _decode_body(body)
    try:
        plaintext = key.aead.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], binding.encode())
    except (InvalidTag, ValueError) as exc:
        raise DecryptionError(f"value bound to {binding!r} failed authentication") from exc
    return plaintext.decode()


def _decode_body(body: str) -> bytes:
    """Strict base64url: a changed character never decodes to the same bytes.

    The lenient decoder skips stray characters and ignores the spare low bits of the last one,
    so an altered stored value could still open; only the canonical encoding is accepted.
    """
    try:
        data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError) as exc:
        raise DecryptionError("sealed value is not valid base64url") from exc
    if base64.urlsafe_b64encode(data).decode().rstrip("=") != body:
        raise DecryptionError("sealed value is not canonical base64url")
    return data


def _split(sealed: str) -> tuple[str, str, str]:
    parts = sealed.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        raise DecryptionError("not a sealed value")
    return parts[0], parts[1], parts[2]
