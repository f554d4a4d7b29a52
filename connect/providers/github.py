"""GitHub Apps: installations with server-minted, down-scoped installation tokens, and
user-to-server tokens (with refresh) for user subjects."""

import logging
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import jwt

from connect import signatures
from connect.kinds import AuthorizationKind
from connect.providers.base import (
    AuthorizationDenied,
    AuthorizeRequest,
    CallbackRequest,
    InstallResult,
    InvalidWebhook,
    MalformedWebhook,
    ProviderCredentials,
    ProviderError,
    ProviderInvalidGrant,
    ProviderUnavailable,
    Revocation,
    ScopeRefused,
    SetupRequired,
    TenantUnproven,
    TokenRequest,
    TokenSet,
    WebhookEvent,
    WebhookRequest,
)
from connect.providers.code_flow import (
    CodeFlowProvider,
    Endpoints,
    call,
    read_json,
    with_query,
)
from connect.providers.schema import GRANT_TOKENS, ConfigField, SecretField
from connect.providers.webhook_bodies import json_object, obj, text

logger = logging.getLogger(__name__)

WEB = "https://github.com"
API = "https://api.github.com"
API_VERSION = "2022-11-28"
INSTALLATION_DETAIL = "github_app_installation"
SETUP_REQUIRED = (
    "the GitHub App must ask the installer to sign in: in the App's settings on GitHub, turn "
    'on "Request user authorization (OAuth) during installation", set its callback URL to this '
    "server's /connect/callback, and enter the App's client ID and client secret in the "
    "connector"
)


def as_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return []


def down_scope(details: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The body of an installation token request from ``github_app_installation`` details:
    exactly the repositories and permissions asked for (GitHub's own down-scoping)."""
    body: dict[str, Any] = {}
    for detail in details:
        if detail.get("type") != INSTALLATION_DETAIL:
            continue
        repositories = as_list(detail.get("repositories"))
        if repositories:
            body.setdefault("repositories", [])
            body["repositories"] += [r.split("/")[-1] for r in repositories]
        permissions = detail.get("permissions")
        if isinstance(permissions, dict):
            body.setdefault("permissions", {}).update(
                {str(k): str(v) for k, v in permissions.items()}
            )
        else:
            for entry in as_list(permissions):
                name, _, level = entry.partition(":")
                body.setdefault("permissions", {})[name] = level or "read"
    return body


class GitHubProvider(CodeFlowProvider):
    key = "github"
    label = "GitHub App"
    secrets = (
        SecretField("client_secret", "Client secret (for user tokens)", data_name="clientSecret"),
        SecretField(
            "private_key", "App private key (PEM)", data_name="privateKeyPem", multiline=True
        ),
        SecretField("trigger_signing_secret", "Webhook secret", data_name="webhookSecret"),
    )
    config_fields = (
        ConfigField("appId", "int", "App ID", help="Required to install: the App's numeric ID."),
        ConfigField(
            "appSlug", "str", "App slug", help="Required to install: github.com/apps/<slug>."
        ),
        ConfigField("appName", "str", "App name"),
        ConfigField("owner", "dict", "Owner", help="{type, id, slug, name?}"),
        ConfigField(
            "webBaseUrl",
            "url",
            "Web base URL",
            help="GitHub Enterprise only (default https://github.com).",
            receives=frozenset({"client_secret", GRANT_TOKENS}),
            default=WEB,
        ),
        ConfigField(
            "apiBaseUrl",
            "url",
            "API base URL",
            help="GitHub Enterprise only (default https://api.github.com).",
            # App JWTs (signed with the private key) mint installation tokens there.
            receives=frozenset({"client_secret", "private_key", GRANT_TOKENS}),
            default=API,
        ),
        ConfigField("extras", "dict", "Extras"),
    )
    trigger_scheme = "github-hmac-sha256"
    known_events = (
        "installation",
        "installation_repositories",
        "push",
        "pull_request",
        "pull_request_review",
        "issues",
        "issue_comment",
        "check_run",
        "workflow_run",
        "release",
    )
    setup_links = {"GitHub Apps": "https://github.com/settings/apps"}
    webhook_signs_time = False  # X-Hub-Signature-256 covers the body alone
    mints_app_tokens = True
    revokes_refresh_tokens = False  # the applications API revokes by access_token only
    webhook_key = ("secret", "trigger_signing_secret")

    def endpoints(self, credentials: ProviderCredentials, tenant_id: str = "") -> Endpoints:
        web = self.base(credentials, "webBaseUrl", WEB)
        return Endpoints(
            authorize=f"{web}/login/oauth/authorize", token=f"{web}/login/oauth/access_token"
        )

    def api_base_url(self, config: Mapping[str, Any]) -> str:
        return str(config.get("apiBaseUrl") or API).rstrip("/")

    def api(self, credentials: ProviderCredentials) -> str:
        return self.base(credentials, "apiBaseUrl", API)

    def app_jwt(self, credentials: ProviderCredentials, *, now: float | None = None) -> str:
        """The app's own identity: RS256 over iss = app id, valid under ten minutes."""
        issued = int(now if now is not None else time.time()) - 60
        app_id = str(credentials.config.get("appId") or "")
        if not app_id or not credentials.private_key:
            raise ProviderError("the GitHub App needs its app id and private key")
        return jwt.encode(
            {"iat": issued, "exp": issued + 540, "iss": app_id},
            credentials.private_key,
            algorithm="RS256",
        )

    def _api_headers(self, token: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
        }

    # Install and consent ------------------------------------------------------------------------

    def authorize_url(self, credentials: ProviderCredentials, request: AuthorizeRequest) -> str:
        if request.kind == AuthorizationKind.INSTALL:
            slug = str(credentials.config.get("appSlug") or "")
            if not slug:
                raise ProviderError("the GitHub App needs its slug to be installed")
            web = self.base(credentials, "webBaseUrl", WEB)
            return with_query(f"{web}/apps/{slug}/installations/new", {"state": request.state})
        return super().authorize_url(credentials, request)

    def complete(
        self, credentials: ProviderCredentials, callback: CallbackRequest, *, now: datetime
    ) -> InstallResult:
        if callback.kind != AuthorizationKind.INSTALL:
            return super().complete(credentials, callback, now=now)
        params = callback.params
        if params.get("error"):
            if params["error"] == "access_denied":
                raise AuthorizationDenied("the authorization was declined on GitHub")
            raise ProviderError(f"GitHub answered {params['error']}", vendor=dict(params))
        if params.get("setup_action") == "request":
            # A member asked an organization owner to approve: no installation exists yet.
            # GitHub's installation.created webhook brings it once an owner approves.
            return InstallResult(pending_approval=True)
        if not credentials.client_id or not credentials.client_secret:
            raise SetupRequired(SETUP_REQUIRED)
        code = params.get("code", "")
        if not code:
            raise SetupRequired(SETUP_REQUIRED)
        installation_id = params.get("installation_id", "")
        if not installation_id.isdigit():
            raise ProviderError("the install callback carries no installation_id")
        # GitHub's docs: the setup URL's installation_id can be spoofed. The user who just
        # installed proves it with the token from the same callback: GitHub lists that
        # installation's repositories to them only if they have access to it.
        payload = self.token_request(
            credentials,
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": callback.redirect_uri,
            },
            now=now,
        )
        user_token = str(payload["access_token"])
        try:
            self._check_user_access(credentials, user_token, installation_id)
        finally:
            # The user's token was only the proof: it is not kept, so it must not stay alive.
            revoked = self.revoke(credentials, user_token, hint="access_token", now=now)
            if not revoked.succeeded:
                logger.warning("GitHub did not confirm revoking an install's user token")
        return self.installation_details(
            credentials, installation_id, now=now, setup_action=params.get("setup_action", "")
        )

    def _check_user_access(
        self, credentials: ProviderCredentials, user_token: str, installation_id: str
    ) -> None:
        response = call(
            "GET",
            f"{self.api(credentials)}/user/installations/{installation_id}/repositories",
            params={"per_page": "1"},
            headers=self._api_headers(user_token),
        )
        if response.status_code >= 500:
            raise ProviderUnavailable(f"GitHub answered {response.status_code}")
        if response.status_code in (403, 404):
            raise TenantUnproven(
                f"the GitHub user who came back has no access to installation {installation_id}"
            )
        if response.status_code != 200:
            raise ProviderError(f"GitHub answered {response.status_code} for the user's access")

    def installation_details(
        self,
        credentials: ProviderCredentials,
        tenant_id: str,
        *,
        now: datetime,
        setup_action: str = "",
    ) -> InstallResult:
        """Ask GitHub, as the app, about one of its installations (404: not this app's)."""
        if not tenant_id.isdigit():
            raise ProviderError("a GitHub installation id is a number")
        response = call(
            "GET",
            f"{self.api(credentials)}/app/installations/{tenant_id}",
            headers=self._api_headers(self.app_jwt(credentials, now=now.timestamp())),
        )
        if response.status_code >= 500:
            raise ProviderUnavailable(f"GitHub answered {response.status_code}")
        if response.status_code != 200:
            raise ProviderError(f"installation {tenant_id} is not this app's")
        account = obj(read_json(response).get("account"))
        return InstallResult(
            tenant_id=tenant_id,
            display_name=text(account.get("login")),
            metadata={
                "account": text(account.get("login")),
                "accountId": text(account.get("id")),
                "accountType": text(account.get("type")),
                "setupAction": setup_action,
            },
        )

    def install_result(
        self,
        credentials: ProviderCredentials,
        callback: CallbackRequest,
        payload: Mapping[str, Any],
        tokens: TokenSet,
        *,
        now: datetime,
    ) -> InstallResult:
        response = call(
            "GET", f"{self.api(credentials)}/user", headers=self._api_headers(tokens.access_token)
        )
        user = read_json(response) if response.status_code == 200 else {}
        return InstallResult(user_tokens=tokens, external_subject=text(user.get("login")))

    def token_request(
        self,
        credentials: ProviderCredentials,
        body: dict[str, Any],
        *,
        now: datetime,
        tenant_id: str = "",
    ) -> dict[str, Any]:
        body = {
            **body,
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret,
        }
        response = call(
            "POST",
            self.endpoints(credentials).token,
            data=body,
            headers={"Accept": "application/json"},
        )
        payload = read_json(response)
        if response.status_code >= 500:
            raise ProviderUnavailable(f"GitHub answered {response.status_code}")
        error = payload.get("error")
        if error or not payload.get("access_token"):
            # GitHub answers 200 with {"error": "bad_refresh_token"} and the like.
            vendor = {k: v for k, v in payload.items() if k in ("error", "error_description")}
            if error in ("bad_refresh_token", "bad_verification_code", "invalid_grant"):
                raise ProviderInvalidGrant(f"GitHub: {error}", vendor=vendor)
            raise ProviderError(f"GitHub: {error or 'no access_token'}", vendor=vendor)
        return payload

    # Installation tokens ------------------------------------------------------------------------

    def mint_app_token(
        self, credentials: ProviderCredentials, request: TokenRequest, *, now: datetime
    ) -> TokenSet:
        if not request.tenant_id.isdigit():
            raise ProviderError("an installation token needs a GitHub installation")
        response = call(
            "POST",
            f"{self.api(credentials)}/app/installations/{request.tenant_id}/access_tokens",
            json=down_scope(request.authorization_details),
            headers=self._api_headers(self.app_jwt(credentials, now=now.timestamp())),
        )
        payload = read_json(response)
        if response.status_code >= 500:
            raise ProviderUnavailable(f"GitHub answered {response.status_code}")
        if response.status_code == 422:
            raise ScopeRefused(
                "GitHub will not grant those repositories or permissions to this installation",
                vendor={"message": text(payload.get("message"))},
            )
        if response.status_code != 201 or not payload.get("token"):
            raise ProviderError(
                f"GitHub refused an installation token ({response.status_code})",
                vendor={"message": text(payload.get("message"))},
            )
        expires = datetime.fromisoformat(str(payload["expires_at"]).replace("Z", "+00:00"))
        permissions = obj(payload.get("permissions"))
        return TokenSet(
            access_token=str(payload["token"]),
            expires_at=expires,
            scopes=tuple(f"{k}:{v}" for k, v in sorted(permissions.items())),
            metadata={"permissions": permissions},
        )

    def revoke(
        self, credentials: ProviderCredentials, token: str, *, hint: str, now: datetime
    ) -> Revocation:
        try:
            if token.startswith("ghs_"):  # an installation token revokes itself
                response = call(
                    "DELETE",
                    f"{self.api(credentials)}/installation/token",
                    headers=self._api_headers(token),
                )
            else:
                response = call(
                    "DELETE",
                    f"{self.api(credentials)}/applications/{credentials.client_id}/token",
                    json={"access_token": token},
                    auth=(credentials.client_id, credentials.client_secret),
                    headers={"Accept": "application/vnd.github+json"},
                )
        except (ProviderUnavailable, OSError):
            return Revocation(attempted=True, succeeded=False)
        return Revocation(attempted=True, succeeded=response.status_code == 204)

    def verify_webhook(
        self, credentials: ProviderCredentials, request: WebhookRequest
    ) -> WebhookEvent:
        if not signatures.github_sha256(
            secret=credentials.webhook_secret,
            body=request.body,
            signature=request.headers.get("x-hub-signature-256"),
        ):
            raise InvalidWebhook("X-Hub-Signature-256 did not verify")
        if not request.headers.get("x-github-delivery"):
            # GitHub sends one with every delivery, and signs neither it nor a timestamp: a
            # request without one is not as GitHub sent it, so nothing vouches for its age.
            raise MalformedWebhook("X-GitHub-Delivery is missing")
        payload = json_object(request.body)
        event = request.headers.get("x-github-event", "")
        action = text(payload.get("action"))
        installation = obj(payload.get("installation"))
        account = obj(installation.get("account"))
        return WebhookEvent(
            # GitHub signs no timestamp: the delivery id is the replay guard.
            event_id=request.headers.get("x-github-delivery", ""),
            event_type=f"{event}.{action}" if action else event,
            tenant_id=text(installation.get("id")),
            removes_installation=event == "installation" and action == "deleted",
            # Signed by GitHub with this app's webhook secret: the installation is the app's
            # (an install an organization owner approved arrives only this way).
            adds_installation=event == "installation" and action == "created",
            display_name=text(account.get("login")),
            metadata={
                "account": text(account.get("login")),
                "accountId": text(account.get("id")),
                "accountType": text(account.get("type")),
            },
        )
