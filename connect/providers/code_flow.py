"""The OAuth 2.0 authorization-code machinery every browser-installed driver shares.

Drivers differ in endpoints, scope separators, client authentication and the shape of what the
token endpoint returns; they override the small hooks here and nothing else.
"""

import abc
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote_plus, urlencode

import jwt
import requests

from connect import http
from connect.providers.base import (
    AuthorizationDenied,
    AuthorizeRequest,
    CallbackRequest,
    InstallResult,
    IssuerMismatch,
    Provider,
    ProviderCredentials,
    ProviderError,
    ProviderInvalidGrant,
    ProviderUnavailable,
    Revocation,
    TokenRequest,
    TokenSet,
)

logger = logging.getLogger(__name__)

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_TTL = timedelta(seconds=60)
#: Error codes that mean "this grant is dead; the subject must authorize again".
DEAD_GRANT_ERRORS = frozenset(
    {
        "invalid_grant",
        "invalid_refresh_token",
        "token_revoked",
        "bad_refresh_token",  # GitHub's words for it, answered with a 200
    }
)


@dataclass(frozen=True)
class Endpoints:
    authorize: str = ""
    token: str = ""
    revoke: str = ""


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


#: The client authentication methods ``authenticate`` knows, in the order discovery prefers
#: them (RFC 8414 ``token_endpoint_auth_methods_supported``).
TOKEN_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")


def authenticate(
    credentials: ProviderCredentials,
    endpoint: str,
    body: dict[str, Any],
    *,
    now: datetime,
    default_method: str = "client_secret_basic",
) -> tuple[str, str] | None:
    """Add client authentication to ``body`` (or return Basic credentials) per the method."""
    method = credentials.config.get("tokenEndpointAuthMethod") or default_method
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


def read_json(response: requests.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def tokens_from(
    payload: Mapping[str, Any], *, now: datetime, requested: tuple[str, ...] | None
) -> TokenSet:
    """A token response as a TokenSet. Without a ``scope`` in the answer the token carries
    ``requested`` (None: unknown, and a refreshed grant keeps the scopes it had)."""
    expires_in = payload.get("expires_in")
    refresh_expires_in = payload.get("refresh_token_expires_in")
    granted = payload.get("scope")
    scopes = (
        tuple(s for s in str(granted).replace(",", " ").split() if s)
        if isinstance(granted, str)
        else requested
    )
    return TokenSet(
        # Slack answers a user-scopes-only install with no top-level token (only authed_user's);
        # its driver reads that case itself, so an absent token must not raise here.
        access_token=str(payload.get("access_token") or ""),
        expires_at=now + timedelta(seconds=int(expires_in)) if expires_in else None,
        refresh_token=payload.get("refresh_token") or None,
        refresh_expires_at=(
            now + timedelta(seconds=int(refresh_expires_in)) if refresh_expires_in else None
        ),
        # Servers may grant less than asked and say so only here.
        scopes=scopes,
    )


def check_token_payload(status: int, payload: Mapping[str, Any]) -> None:
    """Raise the right error for a token endpoint answer that carries no token."""
    if status >= 500:
        raise ProviderUnavailable(f"token endpoint answered {status}")
    error = payload.get("error")
    if status >= 400 or error or not payload.get("access_token"):
        vendor = {k: v for k, v in payload.items() if k in ("error", "error_description")}
        if error in DEAD_GRANT_ERRORS:
            raise ProviderInvalidGrant(
                "the provider rejected the grant", vendor=vendor, status=status
            )
        raise ProviderError(
            f"token endpoint answered {status} ({error or 'no access_token'})",
            vendor=vendor,
            status=status,
        )


def call(method: str, url: str, **kwargs: Any) -> requests.Response:
    """One provider HTTP call: network trouble becomes ProviderUnavailable, and so does an
    address the SSRF guard refuses or a host that does not resolve. Neither is ours to fix at
    request time, so the caller gets the API's 502 or the callback's page, never a 500."""
    try:
        return http.session().request(method, url, **kwargs)
    except http.BlockedDestination as exc:
        logger.warning("outbound call refused: %s", exc)
        raise ProviderUnavailable(f"{url} unreachable: {http.failure_reason(exc)}") from exc
    except requests.RequestException as exc:
        raise ProviderUnavailable(f"{url} unreachable: {type(exc).__name__}") from exc


def bearer_revoke(url: str, token: str) -> requests.Response | None:
    """POST to a revocation endpoint that takes the token as its bearer (Slack, Linear);
    None when the provider could not be reached."""
    try:
        return call("POST", url, headers={"Authorization": f"Bearer {token}"})
    except (ProviderUnavailable, OSError):
        return None


def with_query(url: str, params: Mapping[str, str]) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


def check_callback_error(params: Mapping[str, str], *, declined: str, provider: str) -> None:
    """RFC 6749 4.1.2.1: an authorization response that carries an error. ``access_denied``
    means the person said no (``declined`` says it to them); anything else is the provider's."""
    error = params.get("error")
    if not error:
        return
    if error == "access_denied":
        raise AuthorizationDenied(declined)
    raise ProviderError(f"{provider} answered {error}", vendor=dict(params))


def code_exchange(code: str, callback: CallbackRequest, *, pkce: bool) -> dict[str, str]:
    """The token request's body for an authorization code (RFC 6749 4.1.3), with the PKCE
    verifier (RFC 7636 4.5) when the flow sent a challenge."""
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": callback.redirect_uri}
    if pkce and callback.code_verifier:
        body["code_verifier"] = callback.code_verifier
    return body


def check_response_issuer(credentials: ProviderCredentials, params: Mapping[str, str]) -> None:
    """RFC 9207: an authorization response (errors included) that names its issuer must name
    the connector's; a server whose metadata promises ``iss`` must send it. Without a
    configured issuer there is nothing to compare with (typed-in endpoints, Slack, GitHub)."""
    expected = str(credentials.config.get("issuer") or "")
    sent = params.get("iss")
    if sent is None:
        if expected and credentials.config.get("authorizationResponseIssParameterSupported"):
            raise IssuerMismatch(
                "the authorization server promises to name itself (iss) but this answer does not"
            )
        return
    # RFC 9207 2.4: a simple string comparison, no normalisation.
    if expected and sent != expected:
        raise IssuerMismatch(f"the answer names issuer {sent!r}, not {expected!r}")


class CodeFlowProvider(Provider, abc.ABC):
    """A provider whose tenants install (or consent) through the authorization-code flow."""

    scope_separator = " "
    token_auth_default = "client_secret_post"

    @abc.abstractmethod
    def endpoints(self, credentials: ProviderCredentials, tenant_id: str = "") -> Endpoints:
        """Where this provider authorizes, issues and revokes (for a tenant, where it matters)."""

    def base(self, credentials: ProviderCredentials, key: str, default: str) -> str:
        """A provider base URL, overridable per connector (Enterprise, self-hosted, tests)."""
        return str(credentials.config.get(key) or default).rstrip("/")

    # Authorization ---------------------------------------------------------------------------

    def authorize_params(
        self, credentials: ProviderCredentials, request: AuthorizeRequest
    ) -> dict[str, str]:
        params = {
            "response_type": "code",
            "client_id": credentials.client_id,
            "redirect_uri": request.redirect_uri,
            "state": request.state,
        }
        if request.scopes:
            params["scope"] = self.scope_separator.join(request.scopes)
        if self.pkce and request.code_challenge:
            params["code_challenge"] = request.code_challenge
            params["code_challenge_method"] = "S256"
        return params

    def authorize_url(self, credentials: ProviderCredentials, request: AuthorizeRequest) -> str:
        params = self.authorize_params(credentials, request)
        extra = credentials.config.get("authorizationUrlParams") or {}
        params.update({str(k): str(v) for k, v in dict(extra).items()})
        return with_query(self.endpoints(credentials, request.tenant_hint).authorize, params)

    def complete(
        self, credentials: ProviderCredentials, callback: CallbackRequest, *, now: datetime
    ) -> InstallResult:
        params = callback.params
        check_response_issuer(credentials, params)
        check_callback_error(
            params,
            declined="the authorization was declined at the provider",
            provider="the provider",
        )
        code = params.get("code", "")
        if not code:
            raise ProviderError("the callback carries no code")
        body = code_exchange(code, callback, pkce=self.pkce)
        payload = self.token_request(credentials, body, now=now, tenant_id=callback.tenant_id)
        tokens = tokens_from(payload, now=now, requested=tuple(callback.scopes))
        return self.install_result(credentials, callback, payload, tokens, now=now)

    def install_result(
        self,
        credentials: ProviderCredentials,
        callback: CallbackRequest,
        payload: Mapping[str, Any],
        tokens: TokenSet,
        *,
        now: datetime,
    ) -> InstallResult:
        """By default an install yields the app's tokens, a consent the user's."""
        return InstallResult().with_tokens(tokens, callback)

    # Tokens -----------------------------------------------------------------------------------

    def token_request(
        self,
        credentials: ProviderCredentials,
        body: dict[str, Any],
        *,
        now: datetime,
        tenant_id: str = "",
    ) -> dict[str, Any]:
        """POST to the token endpoint; the payload, or the right error."""
        endpoint = self.endpoints(credentials, tenant_id).token
        if not endpoint:
            raise ProviderError("the connector has no token endpoint configured")
        auth = authenticate(
            credentials, endpoint, body, now=now, default_method=self.token_auth_default
        )
        response = call(
            "POST", endpoint, data=body, auth=auth, headers={"Accept": "application/json"}
        )
        payload = read_json(response)
        check_token_payload(response.status_code, payload)
        return payload

    def refresh(
        self,
        credentials: ProviderCredentials,
        refresh_token: str,
        request: TokenRequest,
        *,
        now: datetime,
    ) -> TokenSet:
        body = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        payload = self.token_request(credentials, body, now=now, tenant_id=request.tenant_id)
        return tokens_from(payload, now=now, requested=None)

    def revoke(
        self, credentials: ProviderCredentials, token: str, *, hint: str, now: datetime
    ) -> Revocation:
        endpoint = self.endpoints(credentials).revoke
        if not endpoint:
            return Revocation(attempted=False, succeeded=False)
        body: dict[str, Any] = {"token": token, "token_type_hint": hint}
        auth = authenticate(
            credentials, endpoint, body, now=now, default_method=self.token_auth_default
        )
        try:
            response = http.session().post(endpoint, data=body, auth=auth)
        except requests.RequestException:
            return Revocation(attempted=True, succeeded=False)
        # RFC 7009 2.2: 200 also for tokens the server no longer knows.
        return Revocation(attempted=True, succeeded=response.status_code == 200)
