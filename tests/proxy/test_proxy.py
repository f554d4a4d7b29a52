"""The authenticated proxy against the strict OAuth fake's resource server: what goes out, what
comes back, and what is recorded (issue 12 item 5, SPEC section 15)."""

import hashlib
import json
import time
from typing import Any

import pytest

from connect.models import Grant, ProxyCall
from connect.services.proxy import StreamCut
from tests.proxy.conftest import USER_ID, ProxyRig


def body_of(response: Any) -> bytes:
    if response.streaming:
        # Read to the end, the test client closes the response (and the call is recorded).
        return b"".join(response.streaming_content)
    return bytes(response.content)


def test_a_get_reaches_the_api_with_the_grants_token_and_comes_back(rig: ProxyRig) -> None:
    response = rig.call("GET", "/me")
    assert response.status_code == 200, body_of(response)
    answer = json.loads(body_of(response))
    assert answer["client_id"] == rig.client_id
    assert "Connect-Error" not in response
    # The token went to the provider, never to the caller.
    (call,) = rig.server.api_calls
    provider_token = call.headers["Authorization"].removeprefix("Bearer ")
    assert provider_token.startswith("at-")
    assert provider_token not in body_of(response).decode()
    assert rig.server.access_token_active(provider_token)
    assert rig.server.calls == {"client_credentials": 1}
    recorded = ProxyCall.objects.get()
    assert (recorded.method, recorded.path, recorded.status) == ("GET", "/me", 200)
    assert recorded.outcome == ProxyCall.Outcome.ANSWERED
    assert recorded.connector == rig.connector
    assert recorded.team == rig.team
    assert recorded.latency_ms >= 0
    assert recorded.response_bytes > 0


def test_a_post_carries_its_body_query_and_content_type(rig: ProxyRig) -> None:
    payload = json.dumps({"title": "Hello", "n": [1, 2, 3]}).encode()
    response = rig.call(
        "POST", "/echo/items?state=open&page=2", body=payload, content_type="application/json"
    )
    assert response.status_code == 200
    echo = json.loads(body_of(response))
    assert echo["method"] == "POST"
    assert echo["path"] == "/api/echo/items"
    assert echo["query"] == {"state": "open", "page": "2"}
    assert echo["content_type"] == "application/json"
    assert echo["sha256"] == hashlib.sha256(payload).hexdigest()
    assert ProxyCall.objects.get().request_bytes == len(payload)


def test_an_upload_beyond_djangos_memory_limit_is_spooled_and_sent_whole(
    rig: ProxyRig, settings: Any
) -> None:
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024
    payload = bytes(range(256)) * 1200  # 300 KiB, on disk past the first KiB
    response = rig.call("PUT", "/echo/blob", body=payload)
    assert response.status_code == 200
    echo = json.loads(body_of(response))
    assert (echo["length"], echo["sha256"]) == (len(payload), hashlib.sha256(payload).hexdigest())


def test_a_streamed_answer_comes_back_chunk_by_chunk(rig: ProxyRig) -> None:
    response = rig.call("GET", "/stream?chunks=3", stream=True)
    assert response.status_code == 200
    assert response.streaming
    pieces = iter(response.streaming_content)
    # The first chunk is here while the provider still holds back the next ones.
    assert next(pieces) == b"chunk 0\n"
    rig.server.stream_step.set()
    assert b"".join(pieces) == b"chunk 1\nchunk 2\n"
    assert response["Content-Type"] == "text/plain"
    assert ProxyCall.objects.get().response_bytes == len(b"chunk 0\nchunk 1\nchunk 2\n")


def test_a_401_renews_a_user_grant_once_and_the_call_succeeds(rig: ProxyRig) -> None:
    grant, issued = rig.user_grant()
    rig.server.api_reject(issued.access_token)  # looks fresh here, refused there
    response = rig.call("GET", "/me", subject=f"user:{USER_ID}")
    assert response.status_code == 200, body_of(response)
    body_of(response)
    assert rig.server.calls == {"refresh_token": 1}
    first, second = rig.server.api_calls
    assert first.headers["Authorization"] == f"Bearer {issued.access_token}"
    renewed = Grant.objects.get(pk=grant.pk)
    assert second.headers["Authorization"] == f"Bearer {renewed.reveal('access_token')}"
    assert renewed.reveal("access_token") != issued.access_token
    recorded = ProxyCall.objects.get()
    assert recorded.retried
    assert recorded.grant_id == grant.pk
    assert recorded.status == 200


def test_a_401_reminted_app_token(rig: ProxyRig) -> None:
    assert rig.call("GET", "/me").status_code == 200
    minted = rig.server.api_calls[0].headers["Authorization"].removeprefix("Bearer ")
    rig.server.api_reject(minted)
    response = rig.call("GET", "/me")
    assert response.status_code == 200
    assert rig.server.calls == {"client_credentials": 2}


def test_a_retried_call_sends_its_body_again(rig: ProxyRig) -> None:
    _, issued = rig.user_grant()
    rig.server.api_reject(issued.access_token)
    payload = b"a body that must arrive whole, twice" * 100
    response = rig.call("POST", "/echo", subject=f"user:{USER_ID}", body=payload)
    assert response.status_code == 200
    echo = json.loads(body_of(response))
    assert echo["sha256"] == hashlib.sha256(payload).hexdigest()
    assert [call.body for call in rig.server.api_calls] == [payload, payload]


def test_a_second_401_is_the_providers_answer(rig: ProxyRig) -> None:
    rig.server.api_refusing = True
    response = rig.call("GET", "/me")
    assert response.status_code == 401
    assert "Connect-Error" not in response
    assert response["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert json.loads(body_of(response)) == {"error": "invalid_token"}
    assert rig.server.calls == {"client_credentials": 2}  # minted, then minted again once
    assert len(rig.server.api_calls) == 2
    assert ProxyCall.objects.get().retried


def test_a_dead_refresh_token_is_our_invalid_grant(rig: ProxyRig) -> None:
    grant, issued = rig.user_grant()
    rig.server.grant_revoke(issued.family_id)
    response = rig.call("GET", "/me", subject=f"user:{USER_ID}")
    assert response.status_code == 422
    assert response["Connect-Error"] == "1"
    assert response.json()["error"]["code"] == "invalid_grant"
    assert Grant.objects.get(pk=grant.pk).status == Grant.Status.NEEDS_REAUTH


def test_header_hygiene(rig: ProxyRig) -> None:
    response = rig.call(
        "GET",
        "/me",
        HTTP_COOKIE="sessionid=caller-session",
        HTTP_PROXY_AUTHORIZATION="Basic c2VjcmV0",
        HTTP_CONNECTION="X-Hop-Secret, keep-alive",
        HTTP_X_HOP_SECRET="hop",
        HTTP_KEEP_ALIVE="timeout=5",
        HTTP_UPGRADE="websocket",
        HTTP_TE="trailers",
        HTTP_X_FORWARDED_FOR="10.0.0.1",
        HTTP_CONNECT_INSTALLATION="*",
        HTTP_X_GITHUB_API_VERSION="2022-11-28",
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 200
    body_of(response)
    (call,) = rig.server.api_calls
    sent = {name.lower(): value for name, value in call.headers.items()}
    assert rig.bearer not in json.dumps(sent)
    assert sent["authorization"].startswith("Bearer at-")
    for name in (
        "cookie",
        "proxy-authorization",
        "x-hop-secret",
        "keep-alive",
        "upgrade",
        "te",
        "x-forwarded-for",
        "connect-subject",
        "connect-installation",
    ):
        assert name not in sent, name
    assert sent["x-github-api-version"] == "2022-11-28"
    assert sent["accept"] == "application/json"
    assert sent["accept-encoding"] == "identity"
    # The answer: rate limits back; the provider's cookie and hop-by-hop headers not.
    assert response["X-RateLimit-Limit"] == "5000"
    assert response["X-RateLimit-Remaining"] == "4999"
    assert "Set-Cookie" not in response
    assert not response.cookies
    assert "X-Provider-Hop" not in response


def test_a_provider_error_passes_through_untouched(rig: ProxyRig) -> None:
    response = rig.call("GET", "/plain-404")
    assert response.status_code == 404
    assert body_of(response) == b"no such thing here"
    assert response["Content-Type"] == "text/plain"
    assert "Connect-Error" not in response
    assert ProxyCall.objects.get().outcome == ProxyCall.Outcome.ANSWERED


def test_our_errors_carry_connect_error(rig: ProxyRig) -> None:
    unauthenticated = rig.client.get(rig.url("/me"), HTTP_CONNECT_SUBJECT="app")
    assert unauthenticated.status_code == 401
    assert unauthenticated["Connect-Error"] == "1"
    no_subject = rig.call("GET", "/me", subject=None)
    assert no_subject.status_code == 400
    assert no_subject["Connect-Error"] == "1"
    bad_subject = rig.call("GET", "/me", subject="admin")
    assert bad_subject.status_code == 400
    assert bad_subject["Connect-Error"] == "1"
    assert bad_subject.json()["error"]["code"] == "invalid_request"
    unknown_installation = rig.call("GET", "/me", HTTP_CONNECT_INSTALLATION="sci_nope")
    assert unknown_installation["Connect-Error"] == "1"
    assert unknown_installation.status_code in (404, 422)
    trace = rig.call("TRACE", "/me")
    assert trace.status_code == 405
    assert trace["Connect-Error"] == "1"
    assert rig.server.api_calls == []
    refused = ProxyCall.objects.filter(outcome=ProxyCall.Outcome.REFUSED)
    assert refused.count() == 4  # the unauthenticated call has nobody to be recorded for


def test_the_body_size_is_limited(rig: ProxyRig, settings: Any) -> None:
    settings.CONNECT_PROXY_MAX_BODY_BYTES = 1000
    response = rig.call("POST", "/echo", body=b"x" * 1001)
    assert response.status_code == 413
    assert response["Connect-Error"] == "1"
    assert response.json()["error"]["code"] == "payload_too_large"
    assert rig.server.api_calls == []
    assert rig.call("POST", "/echo", body=b"x" * 1000).status_code == 200


def test_the_time_is_limited(rig: ProxyRig, settings: Any) -> None:
    settings.CONNECT_PROXY_TIMEOUT_SECONDS = 1.0
    rig.server.api_hang_seconds = 10
    started = time.monotonic()
    response = rig.call("GET", "/slow")
    assert time.monotonic() - started < 6  # the provider would hold it 10 s
    assert response.status_code == 504
    assert response["Connect-Error"] == "1"
    assert response.json()["error"]["code"] == "provider_timeout"
    assert ProxyCall.objects.get().outcome == ProxyCall.Outcome.FAILED


def test_a_stream_past_the_time_limit_is_cut(rig: ProxyRig, settings: Any) -> None:
    settings.CONNECT_PROXY_TIMEOUT_SECONDS = 0.5
    response = rig.call("GET", "/stream?chunks=50", stream=True)  # 0.2 s a chunk: 10 s in all
    assert response.status_code == 200
    started = time.monotonic()
    with pytest.raises(StreamCut):
        b"".join(response.streaming_content)
    assert time.monotonic() - started < 6
    assert ProxyCall.objects.get().outcome == ProxyCall.Outcome.FAILED
