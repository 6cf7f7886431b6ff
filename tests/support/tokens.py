"""A test issuer for the fast tier: key pairs, a discovery document and a JWKS served to the
verifier through an httpx MockTransport (no network, no Keycloak), and tokens minted for any
role, including every kind of bad token the verifier must refuse.

    issuer = TestIssuer()
    verifier = issuer.verifier()               # a shared.auth.TokenVerifier of this issuer
    token = issuer.mint("student", student_id="s-1")
    headers = issuer.headers("coordinator", regions=["SE-AB"])
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from shared.auth import TokenVerifier

ISSUER = "https://issuer.test/realms/apl"
AUDIENCE = "apl-api"
SERVICE_CLIENT = "apl-notifications"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class SigningKey:
    kid: str
    private: Any
    alg: str

    def public_jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        algorithm = RSAAlgorithm if self.alg.startswith(("RS", "PS")) else ECAlgorithm
        jwk: dict[str, Any] = json.loads(algorithm.to_jwk(public))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.alg}

    def public_pem(self) -> bytes:
        return bytes(
            self.private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


def rsa_key(kid: str, alg: str = "RS256") -> SigningKey:
    return SigningKey(kid, rsa.generate_private_key(public_exponent=65537, key_size=2048), alg)


def ec_key(kid: str) -> SigningKey:
    return SigningKey(kid, ec.generate_private_key(ec.SECP256R1()), "ES256")


@dataclass
class TestIssuer:
    """An OIDC issuer in memory. `published` are the keys its JWKS shows; `down` makes every
    request to it fail (the issuer unreachable)."""

    __test__ = False  # not a pytest test class

    url: str = ISSUER
    audience: str = AUDIENCE
    key: SigningKey = field(default_factory=lambda: rsa_key("test-rsa-1"))
    published: list[SigningKey] = field(default_factory=list)
    down: bool = False
    requests: list[str] = field(default_factory=list)
    """The URLs fetched from the issuer, in order."""

    def __post_init__(self) -> None:
        if not self.published:
            self.published = [self.key]

    # ----------------------------------------------------------------------- serving

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/protocol/openid-connect/certs"

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "jwks_uri": self.jwks_url,
            "authorization_endpoint": f"{self.url}/protocol/openid-connect/auth",
            "token_endpoint": f"{self.url}/protocol/openid-connect/token",
        }

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self.published]}

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(str(request.url))
        if self.down:
            raise httpx.ConnectError("the test issuer is down", request=request)
        if str(request.url) == f"{self.url}/.well-known/openid-configuration":
            return httpx.Response(200, json=self.discovery())
        if str(request.url) == self.jwks_url:
            return httpx.Response(200, json=self.jwks())
        return httpx.Response(404, json={"error": "not found"})

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def verifier(self, **options: Any) -> TokenVerifier:
        return TokenVerifier(
            issuer=self.url, audience=self.audience, transport=self.transport, **options
        )

    def rotate(self) -> SigningKey:
        """A new signing key, published beside the old one; later tokens use it."""
        self.key = rsa_key(f"test-rsa-{len(self.published) + 1}")
        self.published.append(self.key)
        return self.key

    @property
    def jwks_fetches(self) -> int:
        return sum(url == self.jwks_url for url in self.requests)

    # ------------------------------------------------------------------------ minting

    def claims(
        self,
        role: str | None = None,
        *,
        roles: Iterable[str] | None = None,
        lifetime: int = 300,
        **claims: Any,
    ) -> dict[str, Any]:
        """The claims of an access token for `role` (None: a service account), as Keycloak
        shapes them; `claims` add to them or replace them (a value None removes one)."""
        now = int(time.time())
        granted = list(roles) if roles is not None else ([role] if role else [])
        base: dict[str, Any] = {
            "iss": self.url,
            "aud": [self.audience, "account"],
            "sub": str(uuid.uuid4()),
            "iat": now,
            "exp": now + lifetime,
            "azp": "apl-web" if granted else SERVICE_CLIENT,
            "scope": "openid email profile",
            "realm_access": {"roles": [*granted, "default-roles-apl", "offline_access"]},
        }
        merged = {**base, **claims}
        return {k: v for k, v in merged.items() if v is not None}

    def sign(
        self,
        claims: dict[str, Any],
        *,
        key: SigningKey | None = None,
        headers: dict[str, Any] | None = None,
    ) -> str:
        signer = key or self.key
        header = {"kid": signer.kid, **(headers or {})}
        # PyJWS signs any payload, claims of the wrong type included (jwt.encode refuses some)
        payload = json.dumps(claims, separators=(",", ":")).encode()
        return jwt.PyJWS().encode(payload, signer.private, algorithm=signer.alg, headers=header)

    def mint(self, role: str | None = None, **claims: Any) -> str:
        """A valid access token for `role` (see `claims`)."""
        return self.sign(self.claims(role, **claims))

    def service(self, scope: str = "notices:read", **claims: Any) -> str:
        """A client-credentials token of the notifications service account."""
        return self.mint(None, scope=f"profile email {scope}".strip(), **claims)

    def headers(self, role: str | None = None, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.mint(role, **claims)}"}

    # --------------------------------------------------------------------- bad tokens

    def expired(self) -> str:
        now = int(time.time())
        return self.mint("student", iat=now - 3600, exp=now - 600)

    def not_yet_valid(self) -> str:
        return self.mint("student", nbf=int(time.time()) + 600)

    def wrong_audience(self) -> str:
        return self.mint("student", aud="another-api")

    def wrong_issuer(self) -> str:
        return self.mint("student", iss="https://evil.test/realms/apl")

    def alg_none(self) -> str:
        header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": self.key.kid}).encode())
        body = _b64(json.dumps(self.claims("coordinator", regions=["SE-AB"])).encode())
        return f"{header}.{body}."

    def hs256_with_public_key(self) -> str:
        """HMAC signed with the issuer's public key as the secret (the classic confusion)."""
        header = {"alg": "HS256", "typ": "JWT", "kid": self.key.kid}
        signing_input = ".".join(
            _b64(json.dumps(part).encode()) for part in (header, self.claims("coordinator"))
        )
        mac = hmac.new(self.key.public_pem(), signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(mac)}"

    def unknown_kid(self) -> str:
        """Signed by a key the issuer never published."""
        return self.sign(self.claims("student"), key=rsa_key("forged-kid"))

    def foreign_key_same_kid(self) -> str:
        """Signed by another key under the issuer's kid (a forged signature)."""
        forged = rsa_key(self.key.kid)
        return self.sign(self.claims("coordinator", regions=["SE-AB"]), key=forged)

    def tampered(self) -> str:
        """A valid token whose payload was changed afterwards (a role added)."""
        header, _, signature = self.mint("student").split(".")
        claims = self.claims("coordinator", regions=["SE-AB"])
        return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"

    def ec_token_under_rsa_kid(self) -> str:
        """An ES256 token naming the issuer's RSA key: the key's type does not fit the alg."""
        forged = ec_key(self.key.kid)
        return self.sign(self.claims("student"), key=forged)
