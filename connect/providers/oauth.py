"""Any OAuth 2.0 / OIDC authorization server (RFC 6749, 7009, 7523, 8707)."""

import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote_plus

import jwt
import requests

from connect import http
from connect.providers.base import (
    InvalidWebhook,
    Provider,
    ProviderCredentials,
    ProviderError,
    ProviderInvalidGrant,
    ProviderUnavailable,
    Revocation,
    TokenRequest,
    TokenSet,
    WebhookEvent,
    WebhookRequest,
)
from connect.providers.webhook_bodies import json_object, text
from connect.webhooks import signatures

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_TTL = timedelta(seconds=60)


def client_assertion(credentials: ProviderCredentials, audience: str, *, now: datetime) -> str:
    """RFC 7523 client authentication: a short JWT signed with the connector's own key."""
    claims = {
        "iss": credentials.client_id,
        "sub": credentials.client_id,
        "aud": audience,
        "jti": secrets.token_urlsafe(16),
        "iat": int(now.timestamp()),
        "exp": int((now + ASSERTION_TTL).timestamp()),
    }
    return jwt.encode(
        claims, credentials.private_key, algorithm="RS256", headers={"kid": credentials.key_id}
    )


def authenticate(
    credentials: ProviderCredentials, endpoint: str, body: dict[str, Any], *, now: datetime
) -> tuple[str, str] | None:
    """Add client authentication to ``body`` (or return Basic credentials) per the method."""
    method = credentials.config.get("tokenEndpointAuthMethod") or "client_secret_basic"
    if method == "client_secret_basic":
        # RFC 6749 2.3.1: form-encode both before Basic; requests' HTTPBasicAuth does not.
        return quote_plus(credentials.client_id), quote_plus(credentials.client_secret)
    body["client_id"] = credentials.client_id
    if method == "client_secret_post":
        body["client_secret"] = credentials.client_secret
    elif method == "private_key_jwt":
        body["client_assertion_type"] = CLIENT_ASSERTION_TYPE
        body["client_assertion"] = client_assertion(credentials, endpoint, now=now)
    return None


def parse_token_response(
    response: requests.Response, *, now: datetime, requested: tuple[str, ...]
) -> TokenSet:
    try:
        payload: Mapping[str, Any] = response.json()
    except ValueError:
        payload = {}
    if response.status_code >= 500:
        raise ProviderUnavailable(f"token endpoint answered {response.status_code}")
    if not isinstance(payload, Mapping):
        payload = {}
    error = payload.get("error")
    if response.status_code >= 400 or error or not payload.get("access_token"):
        vendor = {k: v for k, v in payload.items() if k in ("error", "error_description")}
        if error == "invalid_grant":
            raise ProviderInvalidGrant("the provider rejected the refresh token", vendor=vendor)
        raise ProviderError(
            f"token endpoint answered {response.status_code} ({error or 'no access_token'})",
            vendor=vendor,
        )
    expires_in = payload.get("expires_in")
    refresh_expires_in = payload.get("refresh_token_expires_in")
    granted = payload.get("scope")
    return TokenSet(
        access_token=str(payload["access_token"]),
        expires_at=now + timedelta(seconds=int(expires_in)) if expires_in else None,
        refresh_token=payload.get("refresh_token") or None,
        refresh_expires_at=(
            now + timedelta(seconds=int(refresh_expires_in)) if refresh_expires_in else None
        ),
        # Servers may grant less than asked and say so only here.
        scopes=tuple(str(granted).split()) if isinstance(granted, str) else requested,
    )


class OAuthProvider(Provider):
    key = "oauth"
    mints_app_tokens = True

    def _token_call(
        self, credentials: ProviderCredentials, body: dict[str, Any], *, now: datetime
    ) -> requests.Response:
        endpoint = str(credentials.config.get("tokenEndpoint") or "")
        if not endpoint:
            raise ProviderError("the connector has no token endpoint configured")
        auth = authenticate(credentials, endpoint, body, now=now)
        try:
            return http.session().post(
                endpoint, data=body, auth=auth, headers={"Accept": "application/json"}
            )
        except http.BlockedDestination:
            raise
        except requests.RequestException as exc:
            raise ProviderUnavailable(f"token endpoint unreachable: {type(exc).__name__}") from exc

    def _with_request(self, body: dict[str, Any], request: TokenRequest) -> dict[str, Any]:
        if request.scopes:
            body["scope"] = " ".join(request.scopes)
        if request.resources:
            body["resource"] = list(request.resources)
        if request.audience:
            body["audience"] = list(request.audience)
        return body

    def mint_app_token(
        self, credentials: ProviderCredentials, request: TokenRequest, *, now: datetime
    ) -> TokenSet:
        body = self._with_request({"grant_type": "client_credentials"}, request)
        response = self._token_call(credentials, body, now=now)
        return parse_token_response(response, now=now, requested=tuple(request.scopes))

    def refresh(
        self,
        credentials: ProviderCredentials,
        refresh_token: str,
        request: TokenRequest,
        *,
        now: datetime,
    ) -> TokenSet:
        body = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        response = self._token_call(credentials, body, now=now)
        return parse_token_response(response, now=now, requested=tuple(request.scopes))

    def revoke(
        self, credentials: ProviderCredentials, token: str, *, hint: str, now: datetime
    ) -> Revocation:
        endpoint = str(credentials.config.get("revocationEndpoint") or "")
        if not endpoint:
            return Revocation(attempted=False, succeeded=False)
        body: dict[str, Any] = {"token": token, "token_type_hint": hint}
        auth = authenticate(credentials, endpoint, body, now=now)
        try:
            response = http.session().post(endpoint, data=body, auth=auth)
        except requests.RequestException:
            return Revocation(attempted=True, succeeded=False)
        # RFC 7009 2.2: 200 also for tokens the server no longer knows.
        return Revocation(attempted=True, succeeded=response.status_code == 200)

    def verify_webhook(
        self, credentials: ProviderCredentials, request: WebhookRequest
    ) -> WebhookEvent:
        """Standard Webhooks (default) or a generic HMAC-SHA256 header, per connector."""
        config = credentials.config
        scheme = config.get("triggerScheme") or "standard-webhooks"
        headers = request.headers
        if scheme == "standard-webhooks":
            message_id = headers.get("webhook-id")
            ok = signatures.standard_verify(
                secret=credentials.webhook_secret,
                body=request.body,
                message_id=message_id,
                timestamp=headers.get("webhook-timestamp"),
                signature=headers.get("webhook-signature"),
                now=request.now,
            )
            event_id = message_id or ""
        else:
            ok = signatures.generic_hmac(
                secret=credentials.webhook_secret,
                body=request.body,
                signature=headers.get(str(config.get("signatureHeader", "x-signature")).lower()),
                prefix=str(config.get("signaturePrefix", "")),
                encoding=str(config.get("signatureEncoding", "hex")),
            )
            event_id = headers.get(str(config.get("eventIdHeader", "")).lower(), "")
        if not ok:
            raise InvalidWebhook("the webhook signature did not verify")
        payload = json_object(request.body)
        return WebhookEvent(event_id=event_id, event_type=text(payload.get("type")))
