"""The signature schemes, pure: published vectors, the providers' own libraries, and properties.

Every verifier takes ``now`` explicitly, so the windows are tested without a clock.
"""

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey
from slack_sdk.signature import Clock, SignatureVerifier
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from connect import signatures
from tests.fixtures import webhook_body

NOW = 1_700_000_000
# NOW in Arabic-Indic digits: str.isdigit() and float() accept them.
ARABIC_INDIC_DIGITS = "\u0661\u0667" + "\u0660" * 8

# Secrets as text: no NUL (HMAC pads short keys with zero bytes, so "a" and "a\0" are the same
# key by design) and at most 16 characters (64 UTF-8 bytes; longer keys are hashed first).
text_secrets = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=16
)
# Standard Webhooks secrets: 24 to 64 random bytes (the spec's minimum; HMAC's block size).
key_bytes = st.binary(min_size=24, max_size=64)
bodies = st.binary(max_size=512)
# Anything a header can hold: text of any script, garbage, None (absent); plus what a WSGI
# server hands Django for arbitrary header bytes (latin-1 decoded).
header_values = st.one_of(
    st.none(),
    st.text(),
    st.binary(max_size=80).map(lambda b: b.decode("latin-1")),
    st.sampled_from(
        [
            "",
            " ",
            "v0=",
            "sha256=",
            "v1,",
            "v1,é",
            "v0=é",
            "sha256=\u00e9" * 32,
            "nan",
            "inf",
            "-inf",
            "1e400",
            "0x10",
            ARABIC_INDIC_DIGITS,
            "²",
            "v1,=== v1,A",
            "v1 v1,, ,",
        ]
    ),
)


def whsec(key: bytes) -> str:
    return "whsec_" + base64.b64encode(key).decode()


def slack_sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
    return "v0=" + digest.hexdigest()


def hex_hmac(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def linear_body(timestamp_ms: int, title: str = "") -> bytes:
    changes = {"webhookTimestamp": timestamp_ms, "data.title": title}
    return webhook_body("linear", "Issue.create", changes)


def discord_sign(key: SigningKey, timestamp: str, body: bytes) -> str:
    return key.sign(timestamp.encode() + body).signature.hex()


class FixedClock(Clock):
    def __init__(self, now: float) -> None:
        self.moment = now

    def now(self) -> float:
        return self.moment


# --- Published known-answer vectors -------------------------------------------------------------

GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_BODY = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
STANDARD_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
STANDARD_TS = 1614265330
STANDARD_BODY = b'{"test": 2432232314}'
STANDARD_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

# Slack's documented example (docs.slack.dev, "Verifying requests from Slack").
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_TS = "1531420618"
SLACK_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
    b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
    b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands"
    b"%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
    b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def test_github_documented_vector() -> None:
    assert signatures.github_sha256(
        secret=GITHUB_SECRET, body=GITHUB_BODY, signature=GITHUB_SIGNATURE
    )
    assert not signatures.github_sha256(
        secret=GITHUB_SECRET, body=b"Hello, World?", signature=GITHUB_SIGNATURE
    )
    assert not signatures.github_sha256(
        secret="It's a secret to everybody", body=GITHUB_BODY, signature=GITHUB_SIGNATURE
    )
    # The prefix is part of the format: a bare digest, or the SHA-1 header's prefix, fails.
    bare = GITHUB_SIGNATURE.removeprefix("sha256=")
    assert not signatures.github_sha256(secret=GITHUB_SECRET, body=GITHUB_BODY, signature=bare)
    assert not signatures.github_sha256(
        secret=GITHUB_SECRET, body=GITHUB_BODY, signature="sha1=" + bare
    )


def test_standard_webhooks_documented_vector() -> None:
    assert (
        signatures.standard_sign(
            secret=STANDARD_SECRET,
            message_id=STANDARD_ID,
            timestamp=STANDARD_TS,
            body=STANDARD_BODY,
        )
        == STANDARD_SIGNATURE
    )
    assert signatures.standard_verify(
        secret=STANDARD_SECRET,
        body=STANDARD_BODY,
        message_id=STANDARD_ID,
        timestamp=str(STANDARD_TS),
        signature=STANDARD_SIGNATURE,
        now=STANDARD_TS,
    )
    # The same request, checked today: far outside the five-minute window.
    assert not signatures.standard_verify(
        secret=STANDARD_SECRET,
        body=STANDARD_BODY,
        message_id=STANDARD_ID,
        timestamp=str(STANDARD_TS),
        signature=STANDARD_SIGNATURE,
        now=NOW,
    )


def test_standard_verify_accepts_any_matching_entry() -> None:
    """During a rotation the header carries several signatures; one match is enough."""
    other = whsec(b"\x01" * 32)
    header = signatures.standard_signature_header(
        secrets=[other, STANDARD_SECRET],
        message_id=STANDARD_ID,
        timestamp=STANDARD_TS,
        body=STANDARD_BODY,
    )
    assert header.split(" ")[1] == STANDARD_SIGNATURE
    assert len(header.split(" ")) == 2
    for secret in (other, STANDARD_SECRET):
        assert signatures.standard_verify(
            secret=secret,
            body=STANDARD_BODY,
            message_id=STANDARD_ID,
            timestamp=str(STANDARD_TS),
            signature=header,
            now=STANDARD_TS,
        )
    # Entries of other versions are ignored, even when their value would match.
    assert not signatures.standard_verify(
        secret=STANDARD_SECRET,
        body=STANDARD_BODY,
        message_id=STANDARD_ID,
        timestamp=str(STANDARD_TS),
        signature="v1a," + STANDARD_SIGNATURE[3:],
        now=STANDARD_TS,
    )


def test_slack_documented_vector() -> None:
    now = int(SLACK_TS) + 10
    assert signatures.slack_v0(
        secret=SLACK_SECRET,
        body=SLACK_BODY,
        timestamp=SLACK_TS,
        signature=SLACK_SIGNATURE,
        now=now,
    )
    assert not signatures.slack_v0(
        secret=SLACK_SECRET,
        body=SLACK_BODY,
        timestamp=SLACK_TS,
        signature=SLACK_SIGNATURE,
        now=int(SLACK_TS) + 301,
    )


# --- Against the providers' own libraries -------------------------------------------------------


@settings(deadline=None)
@given(secret=text_secrets.filter(str.strip), body=st.text(), offset=st.integers(-300, 300))
def test_slack_sdk_signatures_verify_and_ours_satisfy_slack_sdk(
    secret: str, body: str, offset: int
) -> None:
    timestamp = str(NOW + offset)
    verifier = SignatureVerifier(secret, clock=FixedClock(NOW))
    made_by_slack = verifier.generate_signature(timestamp=timestamp, body=body)
    assert made_by_slack is not None
    assert signatures.slack_v0(
        secret=secret, body=body.encode(), timestamp=timestamp, signature=made_by_slack, now=NOW
    )
    # And the two agree on what is stale or forged.
    stale = str(NOW - 301)
    stale_signature = verifier.generate_signature(timestamp=stale, body=body)
    assert not verifier.is_valid(body=body, timestamp=stale, signature=stale_signature)
    assert not signatures.slack_v0(
        secret=secret, body=body.encode(), timestamp=stale, signature=stale_signature, now=NOW
    )
    assert verifier.is_valid(body=body, timestamp=timestamp, signature=made_by_slack)


def test_slack_sdk_agrees_on_the_documented_vector() -> None:
    verifier = SignatureVerifier(SLACK_SECRET, clock=FixedClock(int(SLACK_TS)))
    assert verifier.generate_signature(timestamp=SLACK_TS, body=SLACK_BODY) == SLACK_SIGNATURE
    assert verifier.is_valid(body=SLACK_BODY, timestamp=SLACK_TS, signature=SLACK_SIGNATURE)


@settings(deadline=None)
@given(
    key=key_bytes,
    message_id=st.from_regex(r"msg_[A-Za-z0-9]{1,30}", fullmatch=True),
    body=st.text(max_size=300),
    offset=st.integers(-290, 290),
)
def test_standardwebhooks_library_and_ours_verify_each_other(
    key: bytes, message_id: str, body: str, offset: int
) -> None:
    secret = whsec(key)
    library = Webhook(secret)
    # The library checks against the real clock, so these timestamps are near it.
    moment = int(datetime.now(tz=UTC).timestamp()) + offset
    theirs = library.sign(message_id, datetime.fromtimestamp(moment, tz=UTC), body)
    ours = signatures.standard_sign(
        secret=secret, message_id=message_id, timestamp=moment, body=body.encode()
    )
    assert ours == theirs
    # Theirs verified by us.
    assert signatures.standard_verify(
        secret=secret,
        body=body.encode(),
        message_id=message_id,
        timestamp=str(moment),
        signature=theirs,
        now=moment - offset,
    )
    # Ours (a rotation header with an unrelated secret first) verified by them.
    header = signatures.standard_signature_header(
        secrets=[whsec(bytes(reversed(key)) + b"x"), secret],
        message_id=message_id,
        timestamp=moment,
        body=body.encode(),
    )
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(moment),
        "webhook-signature": header,
    }
    assert library.verify(body.encode(), headers, json_parse=False) is None
    # A body changed in transit fails for both.
    with pytest.raises(WebhookVerificationError):
        library.verify((body + " ").encode(), headers, json_parse=False)
    assert not signatures.standard_verify(
        secret=secret,
        body=(body + " ").encode(),
        message_id=message_id,
        timestamp=str(moment),
        signature=header,
        now=moment - offset,
    )


def test_standardwebhooks_library_accepts_our_documented_vector() -> None:
    library = Webhook(STANDARD_SECRET)
    moment = datetime.fromtimestamp(STANDARD_TS, tz=UTC)
    assert library.sign(STANDARD_ID, moment, STANDARD_BODY.decode()) == STANDARD_SIGNATURE


@settings(deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), body=bodies, offset=st.integers(-300, 300))
def test_pynacl_signatures_verify(seed: bytes, body: bytes, offset: int) -> None:
    key = SigningKey(seed)
    timestamp = str(NOW + offset)
    signature = discord_sign(key, timestamp, body)
    public = key.verify_key.encode().hex()
    assert signatures.ed25519(
        public_key_hex=public, body=body, timestamp=timestamp, signature=signature, now=NOW
    )
    # Upper-case hex is still hex.
    assert signatures.ed25519(
        public_key_hex=public.upper(),
        body=body,
        timestamp=timestamp,
        signature=signature.upper(),
        now=NOW,
    )


# --- Properties: what changes must fail, what is stale must fail, nothing raises ----------------


@settings(deadline=None)
@given(secret=text_secrets, body=bodies, offset=st.integers(-300, 300))
def test_slack_correct_passes(secret: str, body: bytes, offset: int) -> None:
    ts = str(NOW + offset)
    assert signatures.slack_v0(
        secret=secret, body=body, timestamp=ts, signature=slack_sign(secret, ts, body), now=NOW
    )


@settings(deadline=None)
@given(
    secret=text_secrets,
    other_secret=text_secrets,
    body=bodies,
    other_body=bodies,
    offset=st.integers(-300, 300),
    other_offset=st.integers(-300, 300),
)
def test_slack_any_change_fails(
    secret: str,
    other_secret: str,
    body: bytes,
    other_body: bytes,
    offset: int,
    other_offset: int,
) -> None:
    ts, other_ts = str(NOW + offset), str(NOW + other_offset)
    signature = slack_sign(secret, ts, body)
    if other_body != body:
        assert not signatures.slack_v0(
            secret=secret, body=other_body, timestamp=ts, signature=signature, now=NOW
        )
    if other_ts != ts:
        assert not signatures.slack_v0(
            secret=secret, body=body, timestamp=other_ts, signature=signature, now=NOW
        )
    if other_secret != secret:
        assert not signatures.slack_v0(
            secret=other_secret, body=body, timestamp=ts, signature=signature, now=NOW
        )


@settings(deadline=None)
@given(
    secret=text_secrets,
    body=bodies,
    age=st.one_of(st.integers(301, 10**9), st.integers(-(10**9), -301)),
)
def test_slack_stale_fails(secret: str, body: bytes, age: int) -> None:
    ts = str(NOW - age)
    assert not signatures.slack_v0(
        secret=secret, body=body, timestamp=ts, signature=slack_sign(secret, ts, body), now=NOW
    )


@settings(deadline=None)
@given(secret=text_secrets, body=bodies, other_body=bodies, other_secret=text_secrets)
def test_github_correct_passes_and_any_change_fails(
    secret: str, body: bytes, other_body: bytes, other_secret: str
) -> None:
    signature = "sha256=" + hex_hmac(secret, body)
    assert signatures.github_sha256(secret=secret, body=body, signature=signature)
    if other_body != body:
        assert not signatures.github_sha256(secret=secret, body=other_body, signature=signature)
    if other_secret != secret:
        assert not signatures.github_sha256(secret=other_secret, body=body, signature=signature)


@settings(deadline=None)
@given(
    secret=text_secrets,
    other_secret=text_secrets,
    offset_ms=st.integers(-60_000, 60_000),
    extra=st.text(max_size=50),
    other_extra=st.text(max_size=50),
    other_offset_ms=st.integers(-60_000, 60_000),
)
def test_linear_correct_passes_and_any_change_fails(
    secret: str,
    other_secret: str,
    offset_ms: int,
    extra: str,
    other_extra: str,
    other_offset_ms: int,
) -> None:
    ts = NOW * 1000 + offset_ms
    body = linear_body(ts, extra)
    signature = hex_hmac(secret, body)
    assert signatures.linear(
        secret=secret, body=body, signature=signature, timestamp_ms=ts, now=NOW
    )
    # The timestamp is inside the signed body: changing it changes the body.
    other_body = linear_body(NOW * 1000 + other_offset_ms, other_extra)
    if other_body != body:
        assert not signatures.linear(
            secret=secret,
            body=other_body,
            signature=signature,
            timestamp_ms=NOW * 1000 + other_offset_ms,
            now=NOW,
        )
    if other_secret != secret:
        assert not signatures.linear(
            secret=other_secret, body=body, signature=signature, timestamp_ms=ts, now=NOW
        )


@settings(deadline=None)
@given(
    secret=text_secrets,
    age_ms=st.one_of(st.integers(60_001, 10**12), st.integers(-(10**12), -60_001)),
)
def test_linear_stale_fails(secret: str, age_ms: int) -> None:
    ts = NOW * 1000 - age_ms
    body = linear_body(ts)
    assert not signatures.linear(
        secret=secret, body=body, signature=hex_hmac(secret, body), timestamp_ms=ts, now=NOW
    )


@settings(deadline=None)
@given(
    seed=st.binary(min_size=32, max_size=32),
    other_seed=st.binary(min_size=32, max_size=32),
    body=bodies,
    other_body=bodies,
    offset=st.integers(-300, 300),
    other_offset=st.integers(-300, 300),
)
def test_ed25519_any_change_fails(
    seed: bytes,
    other_seed: bytes,
    body: bytes,
    other_body: bytes,
    offset: int,
    other_offset: int,
) -> None:
    key = SigningKey(seed)
    ts, other_ts = str(NOW + offset), str(NOW + other_offset)
    signature = discord_sign(key, ts, body)
    public = key.verify_key.encode().hex()
    if other_body != body:
        assert not signatures.ed25519(
            public_key_hex=public, body=other_body, timestamp=ts, signature=signature, now=NOW
        )
    if other_ts != ts:
        assert not signatures.ed25519(
            public_key_hex=public, body=body, timestamp=other_ts, signature=signature, now=NOW
        )
    if other_seed != seed:
        assert not signatures.ed25519(
            public_key_hex=SigningKey(other_seed).verify_key.encode().hex(),
            body=body,
            timestamp=ts,
            signature=signature,
            now=NOW,
        )


@settings(deadline=None)
@given(
    seed=st.binary(min_size=32, max_size=32),
    body=bodies,
    age=st.one_of(st.integers(301, 10**9), st.integers(-(10**9), -301)),
)
def test_ed25519_stale_fails(seed: bytes, body: bytes, age: int) -> None:
    key = SigningKey(seed)
    ts = str(NOW - age)
    assert not signatures.ed25519(
        public_key_hex=key.verify_key.encode().hex(),
        body=body,
        timestamp=ts,
        signature=discord_sign(key, ts, body),
        now=NOW,
    )


@settings(deadline=None)
@given(
    key=key_bytes,
    other_key=key_bytes,
    body=bodies,
    other_body=bodies,
    offset=st.integers(-300, 300),
    other_offset=st.integers(-300, 300),
    message_id=st.from_regex(r"msg_[A-Za-z0-9]{1,20}", fullmatch=True),
    other_id=st.from_regex(r"msg_[A-Za-z0-9]{1,20}", fullmatch=True),
)
def test_standard_correct_passes_and_any_change_fails(
    key: bytes,
    other_key: bytes,
    body: bytes,
    other_body: bytes,
    offset: int,
    other_offset: int,
    message_id: str,
    other_id: str,
) -> None:
    secret = whsec(key)
    ts, other_ts = NOW + offset, NOW + other_offset
    signature = signatures.standard_sign(
        secret=secret, message_id=message_id, timestamp=ts, body=body
    )

    def verify(**changed: object) -> bool:
        kw: dict[str, object] = {
            "secret": secret,
            "body": body,
            "message_id": message_id,
            "timestamp": str(ts),
            "signature": signature,
            "now": NOW,
        }
        kw.update(changed)
        return signatures.standard_verify(**kw)  # type: ignore[arg-type]

    assert verify()
    if other_body != body:
        assert not verify(body=other_body)
    if other_ts != ts:
        assert not verify(timestamp=str(other_ts))
    if other_id != message_id:
        assert not verify(message_id=other_id)
    if other_key.rstrip(b"\0") != key.rstrip(b"\0"):
        assert not verify(secret=whsec(other_key))


@settings(deadline=None)
@given(
    key=key_bytes, body=bodies, age=st.one_of(st.integers(301, 10**9), st.integers(-(10**9), -301))
)
def test_standard_stale_fails(key: bytes, body: bytes, age: int) -> None:
    secret = whsec(key)
    ts = NOW - age
    assume(ts > 0)
    signature = signatures.standard_sign(secret=secret, message_id="msg_1", timestamp=ts, body=body)
    assert not signatures.standard_verify(
        secret=secret,
        body=body,
        message_id="msg_1",
        timestamp=str(ts),
        signature=signature,
        now=NOW,
    )


@settings(deadline=None)
@given(
    secret=text_secrets,
    other_secret=text_secrets,
    body=bodies,
    other_body=bodies,
    prefix=st.sampled_from(["", "sha256=", "v1="]),
    encoding=st.sampled_from(["hex", "base64"]),
)
def test_generic_hmac_correct_passes_and_any_change_fails(
    secret: str, other_secret: str, body: bytes, other_body: bytes, prefix: str, encoding: str
) -> None:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    value = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    signature = prefix + value

    def verify(secret: str = secret, body: bytes = body, signature: str = signature) -> bool:
        return signatures.generic_hmac(
            secret=secret, body=body, signature=signature, prefix=prefix, encoding=encoding
        )

    assert verify()
    if other_body != body:
        assert not verify(body=other_body)
    if other_secret != secret:
        assert not verify(secret=other_secret)
    if prefix:
        assert not verify(signature=value)


def test_generic_hmac_base64_is_not_case_insensitive() -> None:
    """Hex is compared case-blind; base64 is case-significant and must stay so."""
    digest = hmac.new(b"s", b"body", hashlib.sha256).digest()
    encoded = base64.b64encode(digest).decode()
    assert signatures.generic_hmac(secret="s", body=b"body", signature=encoded, encoding="base64")
    assert not signatures.generic_hmac(
        secret="s", body=b"body", signature=encoded.swapcase(), encoding="base64"
    )
    assert signatures.generic_hmac(
        secret="s", body=b"body", signature=digest.hex().upper(), encoding="hex"
    )


# --- No header value makes a verifier raise ----------------------------------------------------


@settings(deadline=None)
@given(timestamp=header_values, signature=header_values, body=bodies)
@example(timestamp=str(NOW), signature="v0=" + "é" * 64, body=b"")
def test_slack_never_raises(timestamp: str | None, signature: str | None, body: bytes) -> None:
    assert (
        signatures.slack_v0(
            secret="s", body=body, timestamp=timestamp, signature=signature, now=NOW
        )
        is False
    )


@settings(deadline=None)
@given(signature=header_values, body=bodies)
@example(signature="sha256=" + "é" * 64, body=b"")
def test_github_never_raises(signature: str | None, body: bytes) -> None:
    assert signatures.github_sha256(secret="s", body=body, signature=signature) is False


@settings(deadline=None)
@given(
    signature=header_values,
    timestamp_ms=st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(),
        st.lists(st.integers()),
        st.dictionaries(st.text(), st.integers()),
    ),
)
@example(signature="ab", timestamp_ms=10**400)
@example(signature="ab", timestamp_ms=-(10**400))
@example(signature="é" * 64, timestamp_ms=NOW * 1000)
@example(signature="ab", timestamp_ms=float("nan"))
@example(signature="ab", timestamp_ms=float("inf"))
def test_linear_never_raises(signature: str | None, timestamp_ms: object) -> None:
    body = linear_body(0)
    assert (
        signatures.linear(
            secret="s", body=body, signature=signature, timestamp_ms=timestamp_ms, now=NOW
        )
        is False
    )


@settings(deadline=None)
@given(public_key=header_values, timestamp=header_values, signature=header_values, body=bodies)
@example(public_key="00" * 32, timestamp=str(NOW), signature="00" * 63, body=b"")
@example(public_key="00" * 31, timestamp=str(NOW), signature="00" * 64, body=b"")
@example(public_key="", timestamp=str(NOW), signature="zz", body=b"")
@example(public_key="ab" * 32, timestamp=str(NOW), signature="é" * 128, body=b"")
def test_ed25519_never_raises(
    public_key: str | None, timestamp: str | None, signature: str | None, body: bytes
) -> None:
    assert (
        signatures.ed25519(
            public_key_hex=public_key or "",
            body=body,
            timestamp=timestamp,
            signature=signature,
            now=NOW,
        )
        is False
    )


@settings(deadline=None)
@given(
    secret=header_values,
    message_id=header_values,
    timestamp=header_values,
    signature=header_values,
    body=bodies,
)
@example(secret="whsec_a", message_id="m", timestamp=str(NOW), signature="v1,AAAA", body=b"")
@example(secret="whsec_é", message_id="m", timestamp=str(NOW), signature="v1,AAAA", body=b"")
@example(secret=STANDARD_SECRET, message_id="m", timestamp=str(NOW), signature="v1,é", body=b"")
@example(
    secret=STANDARD_SECRET,
    message_id="é",
    timestamp=ARABIC_INDIC_DIGITS,
    signature="v1,A",
    body=b"",
)
def test_standard_never_raises(
    secret: str | None,
    message_id: str | None,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
) -> None:
    assert (
        signatures.standard_verify(
            secret=secret or "",
            body=body,
            message_id=message_id,
            timestamp=timestamp,
            signature=signature,
            now=NOW,
        )
        is False
    )


@settings(deadline=None)
@given(
    signature=header_values,
    prefix=header_values,
    body=bodies,
    encoding=st.sampled_from(["hex", "base64", "other"]),
)
@example(signature="é" * 64, prefix="", body=b"", encoding="hex")
@example(signature="é" * 44, prefix="", body=b"", encoding="base64")
def test_generic_hmac_never_raises(
    signature: str | None, prefix: str | None, body: bytes, encoding: str
) -> None:
    assert (
        signatures.generic_hmac(
            secret="s", body=body, signature=signature, prefix=prefix or "", encoding=encoding
        )
        is False
    )
