"""An external OIDC issuer of workload identity tokens (a CI system such as GitHub Actions) on
loopback: the keys it signs with, and its JWKS at ``/jwks``, counting every fetch.

It signs with an RSA key (``rsa-1``, RS256) and an EC key (``ec-1``, ES256) and publishes both;
``publish`` adds another. Knobs: ``fail_status`` (answer that status, no keys), ``gate`` (an
Event: each fetch waits until it is set, at most ten seconds — a slow issuer).
"""

import json
import threading
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.fakes.base import LoopbackServer, Reply, Request, Route


class WorkloadIssuerFake(LoopbackServer):
    def __init__(self) -> None:
        super().__init__()
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.keys: list[dict[str, Any]] = [
            {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa.public_key())),
             "kid": "rsa-1", "alg": "RS256", "use": "sig"},
            {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec.public_key())),
             "kid": "ec-1", "alg": "ES256", "use": "sig"},
        ]  # fmt: skip
        self.fail_status: int | None = None
        self.gate: threading.Event | None = None
        self._hits = 0

    def routes(self) -> list[Route]:
        return [("GET", "/jwks", self._jwks)]

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/jwks"

    @property
    def hits(self) -> int:
        with self.lock:
            return self._hits

    def publish(self, jwk: dict[str, Any]) -> None:
        with self.lock:
            self.keys = [*self.keys, jwk]

    def stop(self) -> None:
        if self.gate is not None:
            self.gate.set()  # wake the fetches it holds
        super().stop()

    def _jwks(self, request: Request) -> Reply:
        with self.lock:
            self._hits += 1
            keys = list(self.keys)
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail_status is not None:
            return Reply(self.fail_status)
        return Reply(200, {"keys": keys})
