"""Microsoft Entra on loopback: ``/{tenant}/v2.0/adminconsent``,
``/{tenant}/oauth2/v2.0/authorize``, ``/{tenant}/oauth2/v2.0/token`` and the signing keys at
``/{tenant}/discovery/v2.0/keys``.

Like Entra it takes the client secret in the body (``client_secret_post``), wants client
credentials at a tenant-specific endpoint of a tenant whose administrator consented, with a
``/.default`` scope; returns an ``id_token`` for ``openid``, signed RS256 with the published key
(``iss`` = ``{its url}/{tid}/v2.0``, ``aud`` = the client id, ``tid``, ``oid``), a refresh token
only for ``offline_access``, and errors with ``AADSTS`` codes. ``prompt=admin_consent`` at the
authorization endpoint records the administrator's consent for the tenant they signed in to.
It has no revocation endpoint.

To stand for a token endpoint that lies (or a man in the middle), ``id_token_signing`` can be
``"unsigned"`` (``alg: none``) or ``"foreign"`` (another key under the published ``kid``), and
``id_token_claims`` overrides claims.
"""

import json
import re
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

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

GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
TOKEN_TTL = 3599
KEY_ID = "k1"
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})


def aad_error(status: int, error: str, code: int, description: str) -> Refused:
    body = fill(
        payload("microsoft", "error"),
        error=error,
        error_description=f"AADSTS{code}: {description}",
        error_codes=[code],
        trace_id=str(uuid.uuid4()),
        correlation_id=str(uuid.uuid4()),
    )
    return Refused(Reply(status, body), f"{error} AADSTS{code}: {description}")


class MicrosoftFake(FakeProvider):
    provider = "microsoft"

    def __init__(self, *, signing_key_pem: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.signing_key_pem = signing_key_pem
        #: The tenant of whoever signs in at a multi-tenant endpoint (``organizations``).
        self.home_tenant = "9122040d-6c67-4c5b-b112-36a304b66dad"
        self.consented: set[str] = set()
        #: "genuine", "unsigned" or "foreign": how the next id_tokens are signed.
        self.id_token_signing = "genuine"
        #: Claims the next id_tokens carry instead of the genuine ones.
        self.id_token_claims: dict[str, Any] = {}
        self.user = {
            "oid": "00000000-0000-0000-66f3-3332eca7ea81",
            "name": "Abe Lincoln",
            "preferred_username": "AbeLi@microsoft.com",
        }

    def routes(self) -> list[Route]:
        return [
            ("GET", r"/(?P<tenant>[^/]+)/v2\.0/adminconsent", self.admin_consent),
            ("GET", r"/(?P<tenant>[^/]+)/oauth2/v2\.0/authorize", self.authorize),
            ("POST", r"/(?P<tenant>[^/]+)/oauth2/v2\.0/token", self.token),
            ("GET", r"/(?P<tenant>[^/]+)/discovery/v2\.0/keys", self.keys),
        ]

    def keys(self, request: Request) -> Reply:
        body = payload("microsoft", "jwks")
        template = body["keys"][0]
        template.pop("x5c")  # no certificate for a test key
        private = serialization.load_pem_private_key(self.signing_key_pem.encode(), None)
        assert isinstance(private, rsa.RSAPrivateKey)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
        body["keys"] = [
            fill(
                template,
                kid=KEY_ID,
                x5t=KEY_ID,
                n=jwk["n"],
                e=jwk["e"],
                issuer=f"{self.url}/{{tenantid}}/v2.0",
            )
        ]
        return Reply(200, body)

    def _signed_in_tenant(self, path_tenant: str) -> str:
        return path_tenant if GUID.match(path_tenant) else self.home_tenant

    def admin_consent(self, request: Request) -> Reply:
        redirect_uri, state = self.check_authorize(request, require_response_type=False)
        path_tenant = request.match["tenant"]
        if path_tenant == "common":
            raise error_page("admin consent needs a tenant, not 'common'")
        if not request.query.get("scope"):
            raise error_page("AADSTS900144: the request body must contain 'scope'")
        if self.deny:
            return redirect(
                with_query(
                    redirect_uri,
                    {
                        "error": "access_denied",
                        "error_description": "AADSTS65004: User declined to consent.",
                        "state": state,
                    },
                )
            )
        tenant = self._signed_in_tenant(path_tenant)
        self.consented.add(tenant)
        return redirect(
            with_query(
                redirect_uri,
                {
                    "admin_consent": "True",
                    "tenant": tenant,
                    "scope": request.query["scope"],
                    "state": state,
                },
            )
        )

    def authorize(self, request: Request) -> Reply:
        redirect_uri, state = self.check_authorize(request)
        scope = request.query.get("scope", "")
        if not scope:
            raise error_page("AADSTS900144: 'scope' is required")
        prompt = request.query.get("prompt", "")
        if prompt not in ("", "login", "none", "consent", "select_account", "admin_consent"):
            raise error_page(f"AADSTS90023: invalid prompt {prompt!r}")
        if prompt == "admin_consent" and not any(s.endswith("/.default") for s in scope.split()):
            raise error_page("AADSTS70011: admin consent needs a /.default scope")
        if self.deny:
            return redirect(
                with_query(
                    redirect_uri,
                    {
                        "error": "access_denied",
                        "error_description": "AADSTS65004: User declined to consent.",
                        "state": state,
                    },
                )
            )
        tenant = self._signed_in_tenant(request.match["tenant"])
        if prompt == "admin_consent":
            # The administrator granted the app's permissions for their whole tenant.
            self.consented.add(tenant)
        code = self.issue_code(request, scope=scope, tenant=tenant)
        return redirect(with_query(redirect_uri, {"code": code, "state": state}))

    def token(self, request: Request) -> Reply:
        form = request.form(
            lambda reason: aad_error(400, "invalid_request", 900144, f"bad body: {reason}")
        )
        try:
            self.authenticate_client(request, form, methods="client_secret_post")
        except CodeProblem as problem:
            raise aad_error(
                401,
                "invalid_client",
                7000218,
                f"The request body must contain 'client_assertion' or 'client_secret' "
                f"({problem.detail}).",
            ) from problem
        path_tenant = request.match["tenant"]
        grant_type = form.get("grant_type", "")
        if grant_type == "client_credentials":
            return self._client_credentials(path_tenant, form)
        if grant_type == "authorization_code":
            return self._code(path_tenant, form)
        if grant_type == "refresh_token":
            return self._refresh(path_tenant, form)
        raise aad_error(400, "unsupported_grant_type", 70003, f"grant_type {grant_type!r}")

    def _client_credentials(self, path_tenant: str, form: dict[str, str]) -> Reply:
        if not GUID.match(path_tenant):
            raise aad_error(
                400, "invalid_request", 700016, "client credentials need a tenant-specific URL"
            )
        if path_tenant not in self.consented:
            raise aad_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{self.client_id}' was not found in the "
                f"directory '{path_tenant}'.",
            )
        scope = form.get("scope", "")
        if len(scope.split()) != 1 or not scope.endswith("/.default"):
            raise aad_error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows "
                f"must have a scope value with /.default suffixed to the resource identifier.",
            )
        access, _ = self.grant_tokens(
            access_prefix="eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.cc.",
            refresh_prefix=None,
            scope=scope,
            expires_in=TOKEN_TTL,
            tenant=path_tenant,
        )
        body = fill(payload("microsoft", "token_client_credentials"), access_token=access)
        with self.lock:
            self.issued.append(body)
        return Reply(200, body)

    def _granted(self, scope: str) -> str:
        """What Entra says it granted: Graph scopes by their short names, ``offline_access``
        left out, and ``profile email`` along with ``openid``."""
        asked = [s for s in scope.split() if s != "offline_access"]
        if "openid" in asked:
            asked += [s for s in ("profile", "email") if s not in asked]
        return " ".join(asked)

    def _id_token(self, tenant: str) -> str:
        now = int(time.time())
        claims = fill(
            payload("microsoft", "id_token_claims"),
            iss=f"{self.url}/{tenant}/v2.0",
            sub=f"sub-{self.user['oid']}",
            aud=self.client_id,
            exp=now + 3600,
            iat=now,
            nbf=now,
            tid=tenant,
            **self.user,
        )
        claims.pop("nonce")
        claims.update(self.id_token_claims)
        if self.id_token_signing == "unsigned":
            return jwt.encode(claims, None, algorithm="none", headers={"kid": KEY_ID})
        if self.id_token_signing == "foreign":
            # Someone else's key, under the kid Entra publishes.
            other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return jwt.encode(claims, other, algorithm="RS256", headers={"kid": KEY_ID})
        return jwt.encode(claims, self.signing_key_pem, algorithm="RS256", headers={"kid": KEY_ID})

    def _user_answer(self, access: str, refresh: str, scope: str, tenant: str) -> Reply:
        body = fill(
            payload("microsoft", "token_authorization_code"),
            access_token=access,
            scope=self._granted(scope),
            refresh_token=refresh,
            id_token=self._id_token(tenant),
        )
        if not refresh:
            body.pop("refresh_token")
        if "openid" not in scope.split():
            body.pop("id_token")
        with self.lock:
            self.issued.append(body)
        return Reply(200, body)

    def _code(self, path_tenant: str, form: dict[str, str]) -> Reply:
        try:
            issued = self.redeem_code(
                form.get("code", ""),
                client_id=self.client_id,
                redirect_uri=form.get("redirect_uri", ""),
                verifier=form.get("code_verifier", ""),
            )
        except CodeProblem as problem:
            code = {"pkce": 501481, "redirect_uri": 50148}.get(problem.kind, 70008)
            raise aad_error(400, "invalid_grant", code, problem.detail) from problem
        tenant = issued.extra["tenant"]
        if GUID.match(path_tenant) and path_tenant != tenant:
            raise aad_error(400, "invalid_grant", 50148, "the code was issued for another tenant")
        offline = "offline_access" in issued.scope.split()
        access, refresh = self.grant_tokens(
            access_prefix="eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.user.",
            refresh_prefix="0.ARwA" if offline else None,
            scope=issued.scope,
            expires_in=TOKEN_TTL,
            tenant=tenant,
        )
        return self._user_answer(access, refresh, issued.scope, tenant)

    def _refresh(self, path_tenant: str, form: dict[str, str]) -> Reply:
        presented = form.get("refresh_token", "")
        family = self.family_of_refresh(presented)
        of_another_tenant = family is not None and family.extra["tenant"] != path_tenant
        if of_another_tenant and GUID.match(path_tenant):
            raise aad_error(400, "invalid_grant", 50173, "refresh token of another tenant")
        asked = form.get("scope", "")
        if family is not None and asked:
            beyond = set(asked.split()) - set(family.scope.split()) - OIDC_SCOPES
            if beyond:
                raise aad_error(400, "invalid_grant", 65001, f"not consented: {sorted(beyond)}")
        try:
            access, refresh, family = self.refresh_tokens(
                presented,
                access_prefix="eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.user.",
                refresh_prefix="0.ARwA",
                expires_in=TOKEN_TTL,
            )
        except CodeProblem as problem:
            raise aad_error(400, "invalid_grant", 700082, problem.detail) from problem
        return self._user_answer(access, refresh, family.scope, family.extra["tenant"])
