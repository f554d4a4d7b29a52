"""Who is asking: every runtime call resolves to exactly one team, project and environment."""

import functools
import hashlib
import logging
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from connect import errors, generations, local_caches, oidc
from connect.errors import Unauthorized
from connect.kinds import Subject, SubjectType
from connect.models import DeploymentCredential, Project
from connect.models.api_tokens import API_TOKEN_PREFIX
from connect.models.credentials import CREDENTIAL_TOKEN_PREFIX, LAST_USED_RESOLUTION

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    team_id: int
    project_id: int
    project_public_id: str
    environment: str
    kind: str  # "credential" or "oidc"
    label: str

    @property
    def default_user_issuer(self) -> str:
        """User ids are the project's own namespace unless the caller names another."""
        return self.project_public_id

    def subject(self, *, type: str, id: str = "", issuer: str = "") -> Subject:
        """The subject this caller names: its users are its project's unless it names another
        issuer, and never another project's."""
        if type == SubjectType.USER:
            subject = Subject.parse(type=type, id=id, issuer=issuer or self.default_user_issuer)
            if issuer.startswith("prj_") and issuer != self.default_user_issuer:
                # Another project's users are that project's: user 42 there is not ours to ask for.
                raise errors.Forbidden("A deployment may not name another project as issuer.")
            return subject
        return Subject.parse(type=type, id=id, issuer=issuer)


def caller_from_authorization(header: str) -> Caller:
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Send Authorization: Bearer <deployment credential or OIDC token>.")
    if token.startswith(f"{API_TOKEN_PREFIX}_"):
        # Every runtime path (the hand-parsed token view, the proxy, the DRF views) asks here.
        raise errors.Forbidden(
            "Team API tokens manage a team; runtime calls (tokens, flows) take a "
            "deployment credential or an OIDC token."
        )
    if local_caches.enabled():
        return _remembered(token)
    return _verified(token).caller


#: A credential's caller is kept this long at most (its revocation is pushed sooner).
CREDENTIAL_CALLER_SECONDS = 600.0


@dataclass
class _Verified:
    caller: Caller
    expires_at: float  # wall clock
    #: A deployment credential's id, and when this process last wrote its ``last_used_at``.
    credential_pk: int | None = None
    touched_at: list[float] = field(default_factory=lambda: [time.time()])


def _verified(token: str) -> _Verified:
    if token.startswith(f"{CREDENTIAL_TOKEN_PREFIX}_"):
        return caller_from_credential(token)
    return caller_from_jwt(token)


def _remembered(token: str) -> Caller:
    """The caller of ``token`` from this process's cache, else verified and kept until the
    token expires or a generation of its team (or the server's signing keys) moves."""
    generations.ensure_fresh()
    cache = local_caches.cache("callers")
    key = hashlib.sha256(token.encode()).digest()
    now = time.time()
    found = cache.get(key, now)
    if isinstance(found, _Verified):
        if found.credential_pk is not None and now - found.touched_at[0] >= _LAST_USED_SECONDS:
            found.touched_at[0] = now  # at most once a minute per credential and process
            DeploymentCredential.objects.filter(pk=found.credential_pk).update(
                last_used_at=timezone.now()
            )
        return found.caller
    epoch = generations.epoch()
    verified = _verified(token)
    scopes: tuple[str, ...] = (f"t:{verified.caller.team_id}",)
    if verified.caller.kind == "oidc":
        scopes += (generations.SIGNING_KEYS,)
    cache.put(key, verified, scopes=scopes, epoch=epoch, expires_at=verified.expires_at)
    return verified.caller


_LAST_USED_SECONDS = LAST_USED_RESOLUTION.total_seconds()


def caller_from_credential(token: str) -> _Verified:
    parts = token.split("_")
    if len(parts) != 3:
        raise Unauthorized("Malformed deployment credential.")
    now = timezone.now()
    credential = DeploymentCredential.objects.bearer(
        parts[1], stale_before=now - LAST_USED_RESOLUTION
    )
    if credential is None or not credential.matches(token):
        raise Unauthorized("Unknown or revoked deployment credential.")
    if credential.last_use_stale:
        # At most once a minute per credential, so the hot path stays at its query budget.
        DeploymentCredential.objects.filter(pk=credential.pk).update(last_used_at=now)
    caller = Caller(
        team_id=credential.team_id,
        project_id=credential.project_id,
        project_public_id=credential.project_public_id,
        environment=credential.environment,
        kind="credential",
        label=f"credential:{credential.public_id}",
    )
    return _Verified(
        caller=caller,
        expires_at=time.time() + CREDENTIAL_CALLER_SECONDS,
        credential_pk=credential.pk,
    )


def _expiry(claims: dict[str, object]) -> float:
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, int | float) else time.time()


@functools.lru_cache(maxsize=4096)
def _project_ids(public_id: str) -> tuple[int, int] | None:
    """(pk, team pk) of a project; both never change, so the answer can be kept."""
    row = Project.objects.filter(public_id=public_id).values_list("pk", "team_id").first()
    return (row[0], row[1]) if row else None


def caller_from_jwt(token: str) -> _Verified:
    try:
        issuer, kid = oidc.unverified_issuer(token)
        if issuer == settings.PUBLIC_URL:
            claims = oidc.own_token_claims(token, kid)
            ids = _project_ids(str(claims.get("project_id", "")))
            environment = str(claims.get("environment", ""))
            if ids is None or not environment:
                raise oidc.TokenRejected("token names no known project and environment")
            own = Caller(
                team_id=ids[1],
                project_id=ids[0],
                project_public_id=str(claims["project_id"]),
                environment=environment,
                kind="oidc",
                label=f"oidc:{claims.get('sub', '')}",
            )
            return _Verified(caller=own, expires_at=_expiry(claims))
        oidc.own_token_elsewhere(token, kid)
        match = oidc.trusted_issuer_match(token, issuer, kid)
    except oidc.WrongAudience as exc:
        logger.info("bearer token refused: %s", exc)
        raise Unauthorized(
            f"The bearer token was refused: wrong audience. It was made for {exc.audience}, "
            f"and this server is {settings.PUBLIC_URL}: make it with PUBLIC_URL set to that."
        ) from exc
    except oidc.TokenRejected as exc:
        # Why stays in our log: telling a caller which check failed helps only forgers.
        logger.info("bearer token refused: %s", exc)
        raise Unauthorized("The bearer token was refused.") from exc
    rule = match.rule
    trusted = Caller(
        team_id=match.issuer.team_id,
        project_id=rule.project_id,
        project_public_id=rule.project.public_id,
        environment=rule.environment.slug,
        kind="oidc",
        label=f"oidc:{match.claims.get('iss')}:{match.claims.get('sub', '')}",
    )
    return _Verified(caller=trusted, expires_at=_expiry(match.claims))
