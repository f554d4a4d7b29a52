"""Slack's OAuth v2 on loopback: ``/oauth/v2/authorize``, ``/api/oauth.v2.access`` (code and
refresh, with token rotation) and ``/api/auth.revoke``; the one Slack fake, for unit, API,
security and browser tests alike.

Strict where Slack is strict (https://api.slack.com/authentication/oauth-v2 and
https://api.slack.com/methods/oauth.v2.access): it answers HTTP 200 with
``{"ok": false, "error": …}`` for every refusal, takes scopes comma-separated and only scopes it
knows, refuses an unknown ``client_id`` or a ``redirect_uri`` other than the app's with an
error page, insists that ``redirect_uri`` at the exchange repeats the one sent to the authorize
page, takes the client either in the body or as Basic (never both) and a code once, within ten
minutes, and lets a token be revoked only by presenting it as the bearer of the call (a refresh
token authenticates nothing). Token rotation (expiring ``xoxe.`` tokens with ``refresh_token``
and ``expires_in``) follows https://api.slack.com/authentication/rotation; ``rotation = False``
hands out plain ``xoxb-`` tokens.

With ``consent_page`` the authorize page is Slack's consent screen, "Allow" and "Cancel" as form
buttons (no JavaScript), for a browser to click.
"""

import html
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
    with_query,
)

ROTATION_TTL = 43200
#: Scopes this fake knows (from https://api.slack.com/scopes); Slack refuses others.
KNOWN_SCOPES = frozenset(
    {
        "app_mentions:read",
        "channels:history",
        "channels:read",
        "chat:write",
        "chat:write.public",
        "commands",
        "files:write",
        "groups:read",
        "im:history",
        "incoming-webhook",
        "reactions:write",
        "search:read",
        "team:read",
        "users:read",
        "users:read.email",
    }
)


def slack_error(error: str) -> Reply:
    return Reply(200, fill(payload("slack", "error"), error=error))


def refuse(error: str) -> Any:
    return lambda reason: Refused(slack_error(error), reason)


class SlackFake(FakeProvider):
    provider = "slack"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.team: dict[str, str] = {"id": "T9TK3CUKW", "name": "Slack Softball Team"}
        self.enterprise: dict[str, str] | None = {"id": "E12345678", "name": "slack-sports"}
        self.user_id = "U1234"
        self.bot_user_id = "U0KRQLJ9H"
        self.rotation = True
        #: Answer the code exchange with this Slack error instead of tokens.
        self.exchange_error = ""

    def routes(self) -> list[Route]:
        return [
            ("GET", "/oauth/v2/authorize", self.authorize),
            ("POST", "/oauth/v2/authorize", self.decided),
            ("POST", "/api/oauth.v2.access", self.access),
            ("POST", "/api/auth.revoke", self.revoke),
        ]

    def authorize(self, request: Request) -> Reply:
        # Slack's v2 install takes no response_type and defaults redirect_uri to the app's.
        redirect_uri, state = self.check_authorize(
            request, require_response_type=False, require_redirect_uri=False, pkce="ignored"
        )
        scope, user_scope = request.query.get("scope", ""), request.query.get("user_scope", "")
        if not scope and not user_scope:
            raise error_page("invalid_scope: ask for scope or user_scope")
        if " " in scope or " " in user_scope:
            raise error_page("invalid_scope: Slack scopes are comma-separated")
        asked = [s for s in f"{scope},{user_scope}".split(",") if s]
        unknown = set(asked) - KNOWN_SCOPES
        if unknown:
            raise error_page(f"invalid_scope: {', '.join(sorted(unknown))}")

        def decide(allowed: bool) -> str:
            if not allowed:
                return with_query(redirect_uri, {"error": "access_denied", "state": state})
            code = self.issue_code(
                request,
                scope=scope,
                user_scope=user_scope,
                team=dict(self.team),
                enterprise=dict(self.enterprise) if self.enterprise else None,
            )
            return with_query(redirect_uri, {"code": code, "state": state})

        scopes = "".join(f"<li><code>{html.escape(s)}</code></li>" for s in asked)
        return self.consent(
            decide=decide,
            page=lambda ticket: CONSENT_PAGE.format(
                team=html.escape(self.team["name"]), scopes=scopes, consent=ticket
            ),
        )

    def _tokens(self, kind: str, scope: str, team: dict[str, str]) -> tuple[str, str]:
        prefix = "xoxb-" if kind == "bot" else "xoxp-"
        if self.rotation:
            return self.grant_tokens(
                access_prefix=f"xoxe.{prefix}1-",
                refresh_prefix="xoxe-1-",
                scope=scope,
                expires_in=ROTATION_TTL,
                kind=kind,
                team=team,
            )
        access, _ = self.grant_tokens(
            access_prefix=prefix, refresh_prefix=None, scope=scope, kind=kind, team=team
        )
        return access, ""

    def access(self, request: Request) -> Reply:
        form = request.form(refuse("invalid_arguments"))
        try:
            self.authenticate_client(
                request, form, methods="client_secret_basic client_secret_post"
            )
        except CodeProblem as problem:
            error = "bad_client_secret" if "secret" in problem.detail else "invalid_client_id"
            raise Refused(slack_error(error), problem.detail) from problem
        grant_type = form.get("grant_type", "authorization_code")
        if grant_type == "refresh_token":
            return self._refresh(form)
        if grant_type != "authorization_code":
            raise Refused(slack_error("invalid_grant_type"), grant_type)
        if self.exchange_error:
            raise Refused(slack_error(self.exchange_error), "told to fail the exchange")
        try:
            issued = self.redeem_code(
                form.get("code", ""),
                client_id=self.client_id,
                # "This must match the originally submitted URI (if one was sent)."
                redirect_uri=form.get("redirect_uri", ""),
                verifier="",
            )
        except CodeProblem as problem:
            error = "bad_redirect_uri" if problem.kind == "redirect_uri" else "invalid_code"
            raise Refused(slack_error(error), problem.detail) from problem
        scope, user_scope = issued.scope, issued.extra["user_scope"]
        team, enterprise = issued.extra["team"], issued.extra["enterprise"]
        user: dict[str, Any] = {"id": self.user_id}
        if user_scope:
            access, refresh = self._tokens("user", user_scope, team)
            user.update(scope=user_scope, access_token=access, token_type="user")
            if refresh:
                user.update(refresh_token=refresh, expires_in=ROTATION_TTL)
        if scope:
            access, refresh = self._tokens("bot", scope, team)
            body = fill(
                payload("slack", "oauth.v2.access"),
                access_token=access,
                scope=scope,
                bot_user_id=self.bot_user_id,
                team=team,
                enterprise=enterprise,
                authed_user=user,
                is_enterprise_install=False,
            )
            if refresh:
                body.update(refresh_token=refresh, expires_in=ROTATION_TTL)
        else:
            # A user-scopes-only install: no bot token at the top level.
            body = fill(
                payload("slack", "oauth.v2.access.user_only"),
                authed_user=user,
                team=team,
                enterprise=enterprise,
            )
        with self.lock:
            self.issued.append(body)
        return Reply(200, body)

    def _refresh(self, form: dict[str, str]) -> Reply:
        presented = form.get("refresh_token", "")
        family = self.family_of_refresh(presented)
        kind = family.extra["kind"] if family else "bot"
        prefix = "xoxb-" if kind == "bot" else "xoxp-"
        try:
            access, refresh, family = self.refresh_tokens(
                presented,
                access_prefix=f"xoxe.{prefix}1-",
                refresh_prefix="xoxe-1-",
                expires_in=ROTATION_TTL,
            )
        except CodeProblem as problem:
            raise Refused(slack_error("invalid_refresh_token"), problem.detail) from problem
        body = fill(
            payload("slack", "oauth.v2.access.refresh"),
            scope=family.scope,
            token_type=kind,
            access_token=access,
            refresh_token=refresh,
            team=family.extra["team"],
        )
        if kind != "bot":
            body.pop("bot_user_id")
        with self.lock:
            self.issued.append(body)
        return Reply(200, body)

    def revoke(self, request: Request) -> Reply:
        presented = request.bearer()
        if not presented and request.body:
            presented = request.form(refuse("invalid_arguments")).get("token", "")
        if not presented:
            raise Refused(slack_error("not_authed"), "no token")
        # The token authenticates the call: only a live access token does.
        if self.access_family(presented) is None:
            raise Refused(slack_error("invalid_auth"), "not a live access token")
        self.revoke_token(presented)
        return Reply(200, payload("slack", "auth.revoke"))


CONSENT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Slack</title>
<style>
body {{ font-family: sans-serif; background: #f8f8f8; margin: 0; }}
main {{ max-width: 32rem; margin: 4rem auto; background: #fff; padding: 2rem;
        border: 1px solid #ddd; border-radius: 8px; }}
button {{ font-size: 1rem; padding: .6rem 1.4rem; border-radius: 4px; cursor: pointer; }}
.allow {{ background: #007a5a; color: #fff; border: 0; }}
</style></head>
<body><main>
<h1>Slack</h1>
<p id="request">An app is requesting permission to access the
<strong>{team}</strong> Slack workspace.</p>
<p>It will be able to:</p>
<ul id="scopes">{scopes}</ul>
<form method="post" action="/oauth/v2/authorize">
<input type="hidden" name="consent" value="{consent}">
<button type="submit" name="decision" value="cancel">Cancel</button>
<button class="allow" type="submit" name="decision" value="allow">Allow</button>
</form>
</main></body></html>
"""
