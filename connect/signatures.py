"""Webhook signature schemes: pure functions over raw bytes, constant-time, never raising on
malformed input (they answer False instead).

They fail closed: an empty secret (or key) verifies nothing. Anyone can compute an HMAC under
the empty key, so a connector whose secret was never set would otherwise accept any body.
"""

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

STANDARD_TOLERANCE_SECONDS = 300


class EmptyKey(ValueError):
    """An HMAC was asked for under the empty key."""


def hmac_sha256(secret: bytes, message: bytes) -> bytes:
    if not secret:
        raise EmptyKey("refusing to compute an HMAC with an empty key")
    return hmac.new(secret, message, hashlib.sha256).digest()


def within(timestamp: str | int | float | None, now: float, tolerance: float) -> bool:
    try:
        moment = float(timestamp)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return False
    return abs(now - moment) <= tolerance


def text_equal(expected: str, given: str) -> bool:
    """Constant-time equality that, unlike ``compare_digest`` on str, accepts non-ASCII input
    (header bytes arrive latin-1 decoded) instead of raising TypeError."""
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


def hex_matches(expected: bytes, given: str | None, prefix: str = "") -> bool:
    if not given or not given.startswith(prefix):
        return False
    return text_equal(expected.hex(), given[len(prefix) :].strip().lower())


def slack_v0(
    *, secret: str, body: bytes, timestamp: str | None, signature: str | None, now: float
) -> bool:
    """Slack: ``v0=`` hex HMAC-SHA256 of ``v0:<ts>:<body>``, five-minute window."""
    if not secret or not timestamp or not within(timestamp, now, 300):
        return False
    expected = hmac_sha256(secret.encode(), b"v0:" + timestamp.encode() + b":" + body)
    return hex_matches(expected, signature, "v0=")


def github_sha256(*, secret: str, body: bytes, signature: str | None) -> bool:
    """GitHub: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>``."""
    if not secret:
        return False
    return hex_matches(hmac_sha256(secret.encode(), body), signature, "sha256=")


def linear(
    *, secret: str, body: bytes, signature: str | None, timestamp_ms: object, now: float
) -> bool:
    """Linear: hex HMAC-SHA256 of the body; ``webhookTimestamp`` (ms, in the body) within 60 s."""
    if not secret:
        return False
    if isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, int | float):
        return False
    # Compared in milliseconds: dividing a huge integer from the body would raise OverflowError.
    if not within(timestamp_ms, now * 1000, 60_000):
        return False
    return hex_matches(hmac_sha256(secret.encode(), body), signature)


def ed25519(
    *, public_key_hex: str, body: bytes, timestamp: str | None, signature: str | None, now: float
) -> bool:
    """Discord: Ed25519 over ``timestamp + body``; we also bound the timestamp to five minutes."""
    if not public_key_hex:
        return False
    if not timestamp or not signature or not within(timestamp, now, STANDARD_TOLERANCE_SECONDS):
        return False
    try:
        VerifyKey(bytes.fromhex(public_key_hex)).verify(
            timestamp.encode() + body, bytes.fromhex(signature)
        )
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


def standard_secret_bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def standard_sign(*, secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` Standard Webhooks signature."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac_sha256(standard_secret_bytes(secret), signed)).decode()


def standard_signature_header(
    *, secrets: Iterable[str], message_id: str, timestamp: int, body: bytes
) -> str:
    """Space-separated signatures, one per secret (both during a rotation)."""
    return " ".join(
        standard_sign(secret=s, message_id=message_id, timestamp=timestamp, body=body)
        for s in secrets
    )


def standard_verify(
    *,
    secret: str,
    body: bytes,
    message_id: str | None,
    timestamp: str | None,
    signature: str | None,
    now: float,
) -> bool:
    """Standard Webhooks: any ``v1`` entry matching HMAC-SHA256 of ``id.ts.body``, ±5 minutes."""
    if not message_id or not timestamp or not signature:
        return False
    if not timestamp.isdigit() or not within(timestamp, now, STANDARD_TOLERANCE_SECONDS):
        return False
    try:
        key = standard_secret_bytes(secret)
    except (binascii.Error, ValueError):
        return False
    if not key:  # "" or a bare "whsec_"
        return False
    expected = hmac_sha256(key, f"{message_id}.{timestamp}.".encode() + body)
    for entry in signature.split(" "):
        version, _, value = entry.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(expected, given):
            return True
    return False


def generic_hmac(
    *, secret: str, body: bytes, signature: str | None, prefix: str = "", encoding: str = "hex"
) -> bool:
    """A plain HMAC-SHA256 of the body in a header, hex or base64, with an optional prefix."""
    if not secret or not signature or not signature.startswith(prefix):
        return False
    expected = hmac_sha256(secret.encode(), body)
    given = signature[len(prefix) :].strip()
    if encoding == "base64":
        return text_equal(base64.b64encode(expected).decode(), given)
    return text_equal(expected.hex(), given.lower())
