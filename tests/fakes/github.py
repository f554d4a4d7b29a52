"""A GitHub App on loopback: the web side at the root (``/apps/{slug}/installations/new``,
``/login/oauth/authorize``, ``/login/oauth/access_token``) and the REST API under ``/api/v3``,
as GitHub Enterprise Server lays them out.

Like GitHub it checks the app JWT on every ``/app/…`` call (RS256 under the app's public key,
``iss`` = the app id, ``exp`` at most ten minutes ahead, ``iat`` not in the future), refuses an
installation token for repositories or permissions the installation does not have (422), answers
OAuth errors with HTTP 200 and an ``error`` field, answers form-encoded unless asked for JSON,
and revokes user tokens only through ``DELETE /applications/{client_id}/token`` with the app's
Basic credentials and the *access* token. Every installation token request body is kept in
``token_requests`` (the down-scoping tests read it).

The install page behaves as the App is set up: with "Request user authorization (OAuth) during
installation" (``oauth_on_install``, on by default) it sends the installer back with a ``code``
as well as the ``installation_id``; it can also stand for a member who only *requests* the
install (``install_outcome = "request"``: no installation, an owner must approve) or for a
change to an existing installation (``"update"``: no state comes back, as with "Redirect on
update"). ``GET /user/installations/{id}/repositories`` answers 401 without a live user token
and 404 unless that user is a member of the installation's account (``members``).
"""

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import jwt

from tests.fakes.base import (
    CodeProblem,
    FakeProvider,
    Refused,
    Reply,
    Request,
    Route,
    error_page,
    fill,
    payload,
    redirect,
    with_query,
)
from tests.fixtures import webhook

API = "/api/v3"
LEVELS = {"read": 1, "write": 2, "admin": 3}
INSTALLATION_TOKEN_TTL = 3600
USER_TOKEN_TTL = 28800
REFRESH_TOKEN_TTL = 15811200


def api_error(status: int, name: str, message: str = "") -> Reply:
    body = payload("github", name)
    if message:
        body["message"] = message
    return Reply(status, body)


class GitHubFake(FakeProvider):
    provider = "github"

    def __init__(self, *, app_id: str, app_slug: str, public_key_pem: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.app_id = app_id
        self.app_slug = app_slug
        self.public_key_pem = public_key_pem
        self.installations: dict[str, dict[str, Any]] = {}
        #: The installation the install page "creates" next.
        self.next_installation = ""
        #: The App's "Request user authorization (OAuth) during installation" setting.
        self.oauth_on_install = True
        #: What the installer does: "install", "request" (asks an owner) or "update".
        self.install_outcome = "install"
        self.user = {"login": "octocat", "id": 1}
        #: The verified claims of every app JWT presented.
        self.jwts: list[dict[str, Any]] = []
        #: The JSON body of every installation token request, as received.
        self.token_requests: list[Any] = []

    @property
    def api_url(self) -> str:
        return self.url + API

    def add_installation(
        self,
        installation_id: str,
        *,
        login: str,
        repositories: list[str],
        permissions: dict[str, str],
        account_type: str = "Organization",
        members: list[str] | None = None,
    ) -> None:
        """An installation of this app; ``members`` (GitHub logins, by default the fake's
        user) are the people with access to it."""
        self.installations[installation_id] = {
            "account": {"login": login, "id": 9000 + len(self.installations), "type": account_type},
            "repositories": repositories,
            "permissions": permissions,
            "members": set(members if members is not None else [self.user["login"]]),
        }

    def installation_created_webhook(
        self, installation_id: str, *, secret: str, delivery: str
    ) -> tuple[bytes, dict[str, str]]:
        """The signed ``installation`` ``created`` delivery GitHub sends the app's webhook URL
        (how an install an owner approved arrives): body and headers."""
        found = self.installations[installation_id]
        body = webhook("github", "installation.created")
        installation = body["installation"]
        installation.update(
            id=int(installation_id),
            account={**installation["account"], **found["account"]},
            app_id=int(self.app_id),
            app_slug=self.app_slug,
            target_id=found["account"]["id"],
            target_type=found["account"]["type"],
            permissions=found["permissions"],
        )
        raw = json.dumps(body).encode()
        signature = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
        return raw, {
            "X-GitHub-Event": "installation",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": f"sha256={signature}",
        }

    def routes(self) -> list[Route]:
        return [
            ("GET", r"/apps/(?P<slug>[^/]+)/installations/new", self.install_page),
            ("GET", "/login/oauth/authorize", self.authorize),
            ("POST", "/login/oauth/access_token", self.access_token),
            ("GET", rf"{API}/app/installations/(?P<id>\d+)", self.get_installation),
            ("POST", rf"{API}/app/installations/(?P<id>\d+)/access_tokens", self.create_token),
            ("GET", f"{API}/user", self.get_user),
            (
                "GET",
                rf"{API}/user/installations/(?P<id>\d+)/repositories",
                self.user_installation_repositories,
            ),
            ("GET", f"{API}/installation/repositories", self.installation_repositories),
            ("DELETE", f"{API}/installation/token", self.delete_installation_token),
            ("DELETE", rf"{API}/applications/(?P<client_id>[^/]+)/token", self.delete_user_token),
        ]

    # The web side --------------------------------------------------------------------------------

    def install_page(self, request: Request) -> Reply:
        if request.match["slug"] != self.app_slug:
            raise error_page(f"no app {request.match['slug']!r}", status=404)
        back: dict[str, str] = {}
        if self.install_outcome == "request":
            # A member without rights asked an owner: nothing is installed yet.
            back["setup_action"] = "request"
        else:
            if not self.next_installation:
                raise error_page("the test did not say which installation to create")
            back["installation_id"] = self.next_installation
            back["setup_action"] = self.install_outcome
        if self.install_outcome == "update":
            # "Redirect on update" sends only the installation: no state, no code.
            return redirect(with_query(next(iter(self.redirect_uris)), back))
        if self.oauth_on_install:
            # The installer also authorized the app: a code for a user-to-server token.
            back["code"] = self.code_issued()
        back["state"] = request.query.get("state", "")
        return redirect(with_query(next(iter(self.redirect_uris)), back))

    def authorize(self, request: Request) -> Reply:
        redirect_uri, state = self.check_authorize(
            request, require_response_type=False, require_redirect_uri=False
        )
        if self.deny:
            return redirect(
                with_query(
                    redirect_uri,
                    {
                        "error": "access_denied",
                        "error_description": "The user has denied your application access.",
                        "state": state,
                    },
                )
            )
        code = self.issue_code(request, scope=request.query.get("scope", ""))
        return redirect(with_query(redirect_uri, {"code": code, "state": state}))

    def _oauth_answer(self, request: Request, body: dict[str, Any]) -> Reply:
        """GitHub answers form-encoded unless the client asked for JSON."""
        if "application/json" in (request.headers.get("Accept") or ""):
            return Reply(200, body)
        return Reply(200, urlencode(body), content_type="application/x-www-form-urlencoded")

    def _oauth_error(self, request: Request, error: str, description: str) -> Refused:
        body = fill(payload("github", "oauth_error"), error=error, error_description=description)
        return Refused(self._oauth_answer(request, body), f"{error}: {description}")

    def access_token(self, request: Request) -> Reply:
        form = request.form(lambda reason: self._oauth_error(request, "invalid_request", reason))
        try:
            self.authenticate_client(request, form, methods="client_secret_post")
        except CodeProblem as problem:
            raise self._oauth_error(
                request, "incorrect_client_credentials", problem.detail
            ) from problem
        grant_type = form.get("grant_type", "authorization_code")
        if grant_type == "refresh_token":
            try:
                access, refresh, _ = self.refresh_tokens(
                    form.get("refresh_token", ""),
                    access_prefix="ghu_",
                    refresh_prefix="ghr_",
                    expires_in=USER_TOKEN_TTL,
                )
            except CodeProblem as problem:
                raise self._oauth_error(request, "bad_refresh_token", problem.detail) from problem
        elif grant_type == "authorization_code":
            try:
                self.redeem_code(
                    form.get("code", ""),
                    client_id=form.get("client_id", ""),
                    redirect_uri=form.get("redirect_uri"),
                    verifier=form.get("code_verifier", ""),
                )
            except CodeProblem as problem:
                error = {
                    "redirect_uri": "redirect_uri_mismatch",
                    "client": "incorrect_client_credentials",
                }.get(problem.kind, "bad_verification_code")
                raise self._oauth_error(request, error, problem.detail) from problem
            access, refresh = self.grant_tokens(
                access_prefix="ghu_",
                refresh_prefix="ghr_",
                expires_in=USER_TOKEN_TTL,
                user=dict(self.user),
            )
        else:
            raise self._oauth_error(request, "unsupported_grant_type", grant_type)
        body = fill(
            payload("github", "user_access_token"),
            access_token=access,
            refresh_token=refresh,
            expires_in=USER_TOKEN_TTL,
            refresh_token_expires_in=REFRESH_TOKEN_TTL,
            scope="",
        )
        with self.lock:
            self.issued.append(body)
        return self._oauth_answer(request, body)

    # The API -------------------------------------------------------------------------------------

    def _verify_app_jwt(self, request: Request) -> None:
        token = request.bearer()
        bad = "A JSON web token could not be decoded"
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token,
                self.public_key_pem,
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"], "verify_iat": False},
            )
        except jwt.PyJWTError as exc:
            raise Refused(api_error(401, "not_found", bad), f"app JWT: {exc}") from exc
        now = time.time()
        problems = []
        if header.get("alg") != "RS256":
            problems.append(f"alg {header.get('alg')!r}")
        if str(claims["iss"]) != self.app_id:
            problems.append(f"iss {claims['iss']!r} is not the app id")
        if claims["exp"] > now + 600:
            problems.append("'Expiration time' claim ('exp') is too far in the future")
        if claims["iat"] > now + 1:
            problems.append("'Issued at' claim ('iat') must be a time in the past")
        if claims["exp"] <= claims["iat"]:
            problems.append("exp is not after iat")
        if problems:
            raise Refused(api_error(401, "not_found", "; ".join(problems)), "; ".join(problems))
        with self.lock:
            self.jwts.append(claims)

    def _installation(self, request: Request) -> tuple[str, dict[str, Any]]:
        installation_id = request.match["id"]
        found = self.installations.get(installation_id)
        if found is None:
            raise Refused(api_error(404, "not_found"), f"no installation {installation_id}")
        return installation_id, found

    def get_installation(self, request: Request) -> Reply:
        self._verify_app_jwt(request)
        installation_id, found = self._installation(request)
        body = fill(
            payload("github", "installation"),
            id=int(installation_id),
            account={**payload("github", "installation")["account"], **found["account"]},
            access_tokens_url=f"{self.api_url}/app/installations/{installation_id}/access_tokens",
            app_id=int(self.app_id),
            target_id=found["account"]["id"],
            target_type=found["account"]["type"],
            permissions=found["permissions"],
            app_slug=self.app_slug,
        )
        return Reply(200, body)

    def create_token(self, request: Request) -> Reply:
        self._verify_app_jwt(request)
        installation_id, found = self._installation(request)
        body = request.json(
            lambda reason: Refused(api_error(415, "not_found", reason), reason), allow_empty=True
        )
        with self.lock:
            self.token_requests.append(body)
        if not isinstance(body, dict) or set(body) - {
            "repositories",
            "repository_ids",
            "permissions",
        }:
            raise Refused(api_error(422, "validation_failed", "Invalid request."), repr(body))
        repositories = body.get("repositories")
        if repositories is not None:
            unknown = [r for r in repositories if r not in found["repositories"]]
            if not isinstance(repositories, list) or unknown:
                raise Refused(api_error(422, "validation_failed"), f"repositories {unknown}")
        permissions = body.get("permissions")
        if permissions is not None:
            beyond = {
                name: level
                for name, level in permissions.items()
                if LEVELS.get(level, 99) > LEVELS.get(found["permissions"].get(name, ""), 0)
            }
            if beyond:
                message = "The permissions requested are not granted to this installation."
                raise Refused(api_error(422, "validation_failed", message), f"beyond: {beyond}")
        access, _ = self.grant_tokens(
            access_prefix="ghs_",
            refresh_prefix=None,
            expires_in=INSTALLATION_TOKEN_TTL,
            installation=installation_id,
        )
        expires = datetime.now(UTC) + timedelta(seconds=INSTALLATION_TOKEN_TTL)
        answer = fill(
            payload("github", "installation_access_token"),
            token=access,
            expires_at=expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
            permissions=permissions or found["permissions"],
            repository_selection="selected" if repositories else "all",
        )
        if repositories:
            template = answer["repositories"][0]
            owner = found["account"]["login"]
            answer["repositories"] = [
                {**template, "name": name, "full_name": f"{owner}/{name}"} for name in repositories
            ]
        else:
            answer.pop("repositories")
        with self.lock:
            self.issued.append(answer)
        return Reply(201, answer)

    def get_user(self, request: Request) -> Reply:
        family = self.access_family(request.bearer())
        if family is None or "user" not in family.extra:
            raise Refused(api_error(401, "not_found", "Bad credentials"), "not a user token")
        return Reply(200, fill(payload("github", "user"), **family.extra["user"]))

    def user_installation_repositories(self, request: Request) -> Reply:
        family = self.access_family(request.bearer())
        if family is None or "user" not in family.extra:
            raise Refused(api_error(401, "not_found", "Requires authentication"), "no user token")
        per_page = request.query.get("per_page", "30")
        if not per_page.isdigit() or not 1 <= int(per_page) <= 100:
            raise Refused(api_error(422, "validation_failed"), f"per_page {per_page!r}")
        installation_id, found = self._installation(request)
        login = family.extra["user"]["login"]
        if login not in found["members"]:
            raise Refused(
                api_error(404, "not_found"),
                f"{login} has no access to installation {installation_id}",
            )
        template = payload("github", "user_installation_repositories")
        sample = template["repositories"][0]
        owner = found["account"]["login"]
        repositories = [
            {
                **sample,
                "name": name,
                "full_name": f"{owner}/{name}",
                "owner": {**sample["owner"], "login": owner, "id": found["account"]["id"]},
            }
            for name in found["repositories"]
        ]
        body = fill(
            template,
            total_count=len(repositories),
            repository_selection="all",
            repositories=repositories[: int(per_page)],
        )
        return Reply(200, body)

    def installation_repositories(self, request: Request) -> Reply:
        """GET /installation/repositories: what an installation token sees (the same shape as
        the user's listing), paged, with GitHub's rate-limit and Link headers."""
        family = self.access_family(request.bearer())
        if family is None or "installation" not in family.extra:
            raise Refused(
                api_error(401, "not_found", "Bad credentials"), "not an installation token"
            )
        found = self.installations[family.extra["installation"]]
        per_page = int(request.query.get("per_page", "30"))
        template = payload("github", "user_installation_repositories")
        sample = template["repositories"][0]
        owner = found["account"]["login"]
        repositories = [
            {**sample, "name": name, "full_name": f"{owner}/{name}"}
            for name in found["repositories"]
        ]
        body = fill(
            template,
            total_count=len(repositories),
            repository_selection="all",
            repositories=repositories[:per_page],
        )
        headers = {
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": "4987",
            "X-RateLimit-Resource": "core",
            "X-GitHub-Request-Id": "F00D:1234:5678",
            "Link": f'<{self.api_url}/installation/repositories?page=2>; rel="next"',
        }
        return Reply(200, body, headers)

    def delete_installation_token(self, request: Request) -> Reply:
        presented = request.bearer()
        family = self.access_family(presented)
        if family is None or "installation" not in family.extra:
            raise Refused(
                api_error(401, "not_found", "Bad credentials"), "not an installation token"
            )
        self.revoke_token(presented)
        return Reply(204)

    def delete_user_token(self, request: Request) -> Reply:
        basic = request.basic(form_encoded=False)
        if basic != (self.client_id, self.client_secret) or request.match["client_id"] != (
            self.client_id
        ):
            raise Refused(api_error(404, "not_found"), "the app's Basic credentials are wrong")
        body = request.json(lambda reason: Refused(api_error(400, "not_found", reason), reason))
        presented = body.get("access_token", "") if isinstance(body, dict) else ""
        family = self.access_family(presented)
        if family is None or "user" not in family.extra:
            # GitHub looks the token up among the app's user *access* tokens.
            raise Refused(api_error(404, "not_found"), "no such user access token")
        self.revoke_token(presented)
        return Reply(204)
