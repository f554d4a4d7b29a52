"""Discord's OAuth2 on loopback: ``/oauth2/authorize``, ``/api/oauth2/token``,
``/api/oauth2/token/revoke`` and ``/api/users/@me``.

Like Discord it requires ``application/x-www-form-urlencoded`` at the token endpoints, takes the
client credentials as Basic or in the body (one of them), wants space-separated scopes, rotates
refresh tokens, and revokes per RFC 7009 (``token`` and ``token_type_hint``). The bot token is
no OAuth token: it never reaches these endpoints, and ``bot_token_seen`` says if it did.
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

TOKEN_TTL = 604800
SCOPES = frozenset({"identify", "email", "guilds", "guilds.join", "connections", "bot"})


def discord_error(status: int, error: str, description: str) -> Refused:
    body = fill(payload("discord", "error"), error=error, error_description=description)
    return Refused(Reply(status, body), f"{error}: {description}")


class DiscordFake(FakeProvider):
    provider = "discord"

    def __init__(self, *, bot_token: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.bot_token = bot_token
        self.bot_token_seen = False

    def routes(self) -> list[Route]:
        return [
            ("GET", "/oauth2/authorize", self.authorize),
            ("POST", "/api/oauth2/token", self.token),
            ("POST", "/api/oauth2/token/revoke", self.revoke),
            ("GET", "/api/users/@me", self.me),
            ("GET", "/api/v10/users/@me", self.me_v10),
        ]

    def _form(self, request: Request) -> dict[str, str]:
        form = request.form(lambda reason: discord_error(400, "invalid_request", reason))
        if self.bot_token in request.body.decode() or self.bot_token in request.bearer():
            self.bot_token_seen = True
        try:
            self.authenticate_client(
                request, form, methods="client_secret_basic client_secret_post"
            )
        except CodeProblem as problem:
            raise discord_error(401, "invalid_client", problem.detail) from problem
        return form

    def authorize(self, request: Request) -> Reply:
        redirect_uri, state = self.check_authorize(request, pkce="ignored")
        asked = request.query.get("scope", "").split()
        if not asked or not set(asked) <= SCOPES:
            raise error_page(f"invalid scope {request.query.get('scope')!r}")
        if self.deny:
            return redirect(
                with_query(
                    redirect_uri,
                    {
                        "error": "access_denied",
                        "error_description": "The resource owner or authorization server "
                        "denied the request",
                        "state": state,
                    },
                )
            )
        code = self.issue_code(request, scope=" ".join(asked))
        return redirect(with_query(redirect_uri, {"code": code, "state": state}))

    def token(self, request: Request) -> Reply:
        form = self._form(request)
        grant_type = form.get("grant_type", "")
        if grant_type == "authorization_code":
            try:
                issued = self.redeem_code(
                    form.get("code", ""),
                    client_id=self.client_id,
                    redirect_uri=form.get("redirect_uri", ""),
                    verifier="",
                )
            except CodeProblem as problem:
                raise discord_error(400, "invalid_grant", 'Invalid "code" in request.') from problem
            scope = issued.scope
            access, refresh = self.grant_tokens(
                access_prefix="", refresh_prefix="", scope=scope, expires_in=TOKEN_TTL
            )
        elif grant_type == "refresh_token":
            try:
                access, refresh, family = self.refresh_tokens(
                    form.get("refresh_token", ""),
                    access_prefix="",
                    refresh_prefix="",
                    expires_in=TOKEN_TTL,
                )
            except CodeProblem as problem:
                raise discord_error(400, "invalid_grant", problem.detail) from problem
            scope = family.scope
        else:
            raise discord_error(400, "unsupported_grant_type", repr(grant_type))
        body = fill(
            payload("discord", "token"),
            access_token=access,
            refresh_token=refresh,
            expires_in=TOKEN_TTL,
            scope=scope,
        )
        with self.lock:
            self.issued.append(body)
        return Reply(200, body)

    def revoke(self, request: Request) -> Reply:
        form = self._form(request)
        if form.get("token_type_hint", "") not in ("", "access_token", "refresh_token"):
            raise discord_error(400, "unsupported_token_type", form["token_type_hint"])
        if not form.get("token"):
            raise discord_error(400, "invalid_request", "token is required")
        self.revoke_token(form["token"])
        return Reply(200, {})

    def me_v10(self, request: Request) -> Reply:
        """The versioned API: a user's Bearer token, or the bot's token as ``Bot <token>``
        (Discord refuses a bot token sent as Bearer)."""
        authorization = request.headers.get("Authorization") or ""
        bot = authorization == f"Bot {self.bot_token}"
        if not bot and self.access_family(request.bearer()) is None:
            return Reply(401, {"message": "401: Unauthorized", "code": 0})
        headers = {
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "4",
            "X-RateLimit-Bucket": "b1",
        }
        return Reply(200, payload("discord", "user"), headers)

    def me(self, request: Request) -> Reply:
        if self.access_family(request.bearer()) is None:
            return Reply(401, {"message": "401: Unauthorized", "code": 0})
        return Reply(200, payload("discord", "user"))
