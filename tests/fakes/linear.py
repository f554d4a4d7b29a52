"""Linear's OAuth on loopback: ``/oauth/authorize`` on the web side, ``/oauth/token``,
``/oauth/revoke`` and ``/graphql`` under the API base (``/api`` here).

Like Linear it wants ``response_type=code`` and comma-separated scopes at the authorize page,
takes ``actor=user`` or ``actor=app``, checks PKCE when a challenge was sent, rotates refresh
tokens, answers ``scope`` space-separated, and revokes the access token that authenticates the
revoke call as its bearer.
"""

from typing import Any

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

API = "/api"
TOKEN_TTL = 86399
SCOPES = frozenset({"read", "write", "issues:create", "comments:create", "admin"})


def oauth_error(status: int, error: str, description: str) -> Refused:
    body = fill(payload("linear", "error"), error=error, error_description=description)
    return Refused(Reply(status, body), f"{error}: {description}")


class LinearFake(FakeProvider):
    provider = "linear"

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.organization = {"id": "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d", "name": "Acme"}
        self.organization["urlKey"] = "acme"
        #: The API refuses even fresh tokens (the app suspended, the workspace gone).
        self.graphql_refuses = False
        self.viewer = {"id": "2e6eea91-1b1a-4b5d-9f4c-3f1b2c4d5e6f", "name": "Jane Doe"}
        self.app_user = {"id": "7f0c2a9e-0d1b-4c8a-9e3f-5a6b7c8d9e0f", "name": "Acme Bot"}

    @property
    def api_url(self) -> str:
        return self.url + API

    def routes(self) -> list[Route]:
        return [
            ("GET", "/oauth/authorize", self.authorize),
            ("POST", f"{API}/oauth/token", self.token),
            ("POST", f"{API}/oauth/revoke", self.revoke),
            ("POST", f"{API}/graphql", self.graphql),
        ]

    def authorize(self, request: Request) -> Reply:
        redirect_uri, state = self.check_authorize(request)
        scope = request.query.get("scope", "")
        asked = scope.split(",")
        if not scope or not set(asked) <= SCOPES:
            raise error_page(f"invalid scope {scope!r} (comma-separated, known scopes)")
        actor = request.query.get("actor", "user")
        if actor not in ("user", "app"):
            raise error_page(f"actor {actor!r}")
        if self.deny:
            return redirect(with_query(redirect_uri, {"error": "access_denied", "state": state}))
        code = self.issue_code(request, scope=" ".join(asked), actor=actor)
        return redirect(with_query(redirect_uri, {"code": code, "state": state}))

    def token(self, request: Request) -> Reply:
        form = request.form(lambda reason: oauth_error(400, "invalid_request", reason))
        try:
            self.authenticate_client(
                request, form, methods="client_secret_basic client_secret_post"
            )
        except CodeProblem as problem:
            raise oauth_error(401, "invalid_client", problem.detail) from problem
        grant_type = form.get("grant_type", "")
        if grant_type == "authorization_code":
            try:
                issued = self.redeem_code(
                    form.get("code", ""),
                    client_id=self.client_id,
                    redirect_uri=form.get("redirect_uri", ""),
                    verifier=form.get("code_verifier", ""),
                )
            except CodeProblem as problem:
                raise oauth_error(400, "invalid_grant", problem.detail) from problem
            actor = issued.extra["actor"]
            who = self.app_user if actor == "app" else self.viewer
            access, refresh = self.grant_tokens(
                access_prefix="lin_oauth_",
                refresh_prefix="lin_refresh_",
                scope=issued.scope,
                expires_in=TOKEN_TTL,
                viewer=dict(who),
            )
            scope = issued.scope
        elif grant_type == "refresh_token":
            try:
                access, refresh, family = self.refresh_tokens(
                    form.get("refresh_token", ""),
                    access_prefix="lin_oauth_",
                    refresh_prefix="lin_refresh_",
                    expires_in=TOKEN_TTL,
                )
            except CodeProblem as problem:
                raise oauth_error(400, "invalid_grant", problem.detail) from problem
            scope = family.scope
        else:
            raise oauth_error(400, "unsupported_grant_type", repr(grant_type))
        body = fill(
            payload("linear", "token"),
            access_token=access,
            refresh_token=refresh,
            expires_in=TOKEN_TTL,
            scope=scope,
        )
        with self.lock:
            self.issued.append(body)
        return Reply(200, body)

    def revoke(self, request: Request) -> Reply:
        presented = request.bearer()
        if self.access_family(presented) is None:
            raise oauth_error(401, "invalid_token", "not a live access token")
        self.revoke_token(presented)
        return Reply(200)

    def graphql(self, request: Request) -> Reply:
        family = self.access_family(request.bearer())
        if family is None or self.graphql_refuses:
            return Reply(400, payload("linear", "graphql_unauthenticated"))
        body = request.json(lambda reason: Refused(Reply(400, {"errors": [reason]}), reason))
        query = str(body.get("query", ""))
        if "organization" not in query or "viewer" not in query:
            raise Refused(Reply(400, {"errors": [{"message": "unexpected query"}]}), query)
        data = payload("linear", "graphql_viewer_organization")
        data["data"] = {"viewer": family.extra["viewer"], "organization": dict(self.organization)}
        return Reply(200, data)
