"""Salesforce's OAuth endpoints on loopback: ``/services/oauth2/authorize``, ``…/token`` and
``…/revoke``.

Like Salesforce it takes the client secret in the body, requires PKCE when the connected app
says so (``require_pkce``), answers without ``expires_in`` (the org's session settings decide)
and with the org's ``instance_url`` and identity URL, keeps refresh tokens valid across refreshes
unless refresh token rotation is on (``rotate``; a rotated token replayed kills the grant), and
revokes with a bare ``token`` form field.
"""

from typing import Any

from tests.fakes.base import (
    CodeProblem,
    FakeProvider,
    Refused,
    Reply,
    Request,
    Route,
    fill,
    payload,
    redirect,
    with_query,
)

OAUTH = "/services/oauth2"


def sf_error(error: str, description: str, status: int = 400) -> Refused:
    body = fill(payload("salesforce", "error"), error=error, error_description=description)
    return Refused(Reply(status, body), f"{error}: {description}")


class SalesforceFake(FakeProvider):
    provider = "salesforce"

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.require_pkce = True
        self.rotate = False
        self.org_id = "00DB0000000TfcRMAS"
        self.user_id = "005B0000005Bk90IAC"
        self.instance_url = "https://acme.my.salesforce.com"

    def routes(self) -> list[Route]:
        return [
            ("GET", f"{OAUTH}/authorize", self.authorize),
            ("POST", f"{OAUTH}/token", self.token),
            ("POST", f"{OAUTH}/revoke", self.revoke),
        ]

    def authorize(self, request: Request) -> Reply:
        redirect_uri, state = self.check_authorize(
            request, pkce="required" if self.require_pkce else "optional"
        )
        if self.deny:
            return redirect(
                with_query(
                    redirect_uri,
                    {
                        "error": "access_denied",
                        "error_description": "end-user denied authorization",
                        "state": state,
                    },
                )
            )
        code = self.issue_code(request, scope=request.query.get("scope", ""))
        return redirect(with_query(redirect_uri, {"code": code, "state": state}))

    def _identity(self) -> str:
        return f"{self.url}/id/{self.org_id}/{self.user_id}"

    def token(self, request: Request) -> Reply:
        form = request.form(lambda reason: sf_error("invalid_request", reason))
        try:
            self.authenticate_client(request, form, methods="client_secret_post")
        except CodeProblem as problem:
            raise sf_error("invalid_client", "invalid client credentials") from problem
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
                if problem.kind == "redirect_uri":
                    raise sf_error(
                        "redirect_uri_mismatch", "redirect_uri must match configuration"
                    ) from problem
                if problem.kind == "pkce":
                    raise sf_error("invalid_grant", "invalid code verifier") from problem
                raise sf_error("invalid_grant", "authentication failure") from problem
            scopes = issued.scope.split()
            access, refresh = self.grant_tokens(
                access_prefix="00DB0000000TfcR!",
                refresh_prefix="5Aep861" if "refresh_token" in scopes else None,
                scope=issued.scope,
            )
            body = fill(
                payload("salesforce", "token"),
                access_token=access,
                refresh_token=refresh,
                scope=issued.scope,
                instance_url=self.instance_url,
                id=self._identity(),
            )
            if not refresh:
                body.pop("refresh_token")
        elif grant_type == "refresh_token":
            try:
                access, refresh, family = self.refresh_tokens(
                    form.get("refresh_token", ""),
                    access_prefix="00DB0000000TfcR!",
                    refresh_prefix="5Aep861",
                    rotate=self.rotate,
                )
            except CodeProblem as problem:
                raise sf_error("invalid_grant", "expired access/refresh token") from problem
            body = fill(
                payload("salesforce", "refresh"),
                access_token=access,
                scope=family.scope,
                instance_url=self.instance_url,
                id=self._identity(),
            )
            if refresh:
                body["refresh_token"] = refresh  # only with refresh token rotation on
        else:
            raise sf_error("unsupported_grant_type", f"grant type {grant_type!r} not supported")
        with self.lock:
            self.issued.append(body)
        return Reply(200, body)

    def revoke(self, request: Request) -> Reply:
        form = request.form(lambda reason: sf_error("invalid_request", reason))
        presented = form.get("token", "")
        if not self.revoke_token(presented):
            raise sf_error("unsupported_token_type", "this token type is not supported")
        return Reply(200)
