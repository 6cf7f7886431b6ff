"""Bearer tokens: who is calling. The services are OAuth 2.0 resource servers of one OIDC issuer.

`TokenVerifier.verify(token)` checks a JWT access token against the issuer's keys (joserfc; the
JWKS is fetched with httpx from `<issuer>/.well-known/openid-configuration` -> `jwks_uri`, or from
`APL_AUTH_JWKS_URL`) and returns the `Principal` its claims describe. It checks the signature with
an asymmetric algorithm of the allow-list only (never `none` nor HS*), a key whose type fits the
header's `alg`, and `iss`, `aud`, `exp`, `nbf` (with a small leeway); `sub`, `exp`, `iss` and `aud`
are required.

The key set is cached. A token signed with an unknown `kid` refreshes it, at most once per
`refresh_seconds` (a flood of forged kids costs the issuer one fetch per interval), and the set
is fetched again once it is older than `max_age_seconds`. A token that verified is remembered
(at most `cache_size` of them, each for at most `cache_seconds` and never past its `exp`; all
forgotten when the key set changes), so a client's next requests with it cost a dictionary
look-up instead of parsing and an RSA verification (bench/auth.py measures both).

Errors: `Unauthenticated(reason)` for anything wrong with the token (the caller's fault: 401),
`Forbidden(reason)` for a valid token without the right (403, raised by the policies), and
`IssuerUnavailable(reason)` when the keys cannot be had (the issuer is down or misconfigured: not
the caller's fault, so 503 with Retry-After, never a 401 that would make a client throw away a
good token). No input makes `verify` raise anything else.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

import httpx
import structlog
from joserfc import errors as jose_errors
from joserfc import jwt
from joserfc.jwk import Key, RSAKey, import_key

from shared.contracts.events import Actor, ActorRole
from shared.settings import ServiceSettings

log = structlog.get_logger(__name__)

UserRole = Literal["student", "company", "coordinator", "operator", "teacher"]
USER_ROLES: Final[frozenset[str]] = frozenset(
    {"student", "company", "coordinator", "operator", "teacher"}
)

ALGORITHMS: Final[tuple[str, ...]] = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
"""The signature algorithms a token may use: asymmetric only."""

_KEY_TYPES: Final[dict[str, tuple[str, frozenset[str] | None]]] = {
    **{f"{p}{n}": ("RSA", None) for p in ("RS", "PS") for n in (256, 384, 512)},
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
}
"""Per algorithm, the JWK `kty` (and the curves) a key must have to verify it."""

MIN_RSA_BITS: Final = 2048
"""Shorter RSA keys are refused (as NIST and the JWA RFC 7518 require for RS*/PS*)."""
MAX_TOKEN_BYTES: Final = 8192
"""Longer tokens are refused before any parsing (a Keycloak access token is 1 to 3 KB)."""


class Unauthenticated(Exception):
    """No token, or one that is not valid: 401 with `WWW-Authenticate: Bearer`."""

    def __init__(self, reason: str, *, missing: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.missing = missing
        """No token was given at all (RFC 6750 §3.1: then the challenge names no error)."""


class Forbidden(Exception):
    """A valid token without the right to do this: 403."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class IssuerUnavailable(Exception):
    """The issuer's keys cannot be had (down, unreachable, misconfigured): 503, retry later."""

    def __init__(self, reason: str, *, retry_after: int = 5) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


# ------------------------------------------------------------------------------- principal


@dataclass(frozen=True)
class ClaimNames:
    """Where the claims a principal is made of are (`APL_AUTH_*_CLAIM`)."""

    roles: str = "realm_access.roles"
    """A dotted path into the claims, to a list of role names."""
    student: str = "student_id"
    company: str = "company_id"
    regions: str = "regions"

    @classmethod
    def of(cls, settings: ServiceSettings) -> ClaimNames:
        return cls(
            roles=settings.auth_roles_claim,
            student=settings.auth_student_claim,
            company=settings.auth_company_claim,
            regions=settings.auth_regions_claim,
        )


@dataclass(frozen=True)
class Principal:
    """Who a valid token speaks for. `student_id` and `company_id` come from the token's claims,
    or from the account links the service keeps (`dataclasses.replace` fills them in)."""

    subject: str
    roles: frozenset[str] = frozenset()
    """The realm roles among `USER_ROLES` (others are dropped)."""
    client_id: str | None = None
    """The OAuth client the token was issued to (`azp`)."""
    scopes: frozenset[str] = frozenset()
    student_id: str | None = None
    company_id: str | None = None
    regions: frozenset[str] = frozenset()
    email: str | None = None
    email_verified: bool = False

    @property
    def is_service(self) -> bool:
        """A service account (client credentials): a token with none of the user roles."""
        return not self.roles

    def has(self, role: UserRole) -> bool:
        return role in self.roles

    @property
    def role(self) -> ActorRole:
        """The one capacity recorded for the audit trail: the strongest role it holds."""
        order: tuple[ActorRole, ...] = (
            "coordinator",
            "company",
            "student",
            "teacher",
            "operator",
        )
        return next((role for role in order if role in self.roles), "service")

    def actor(self) -> Actor:
        """The actor stamped on the events this principal causes (no names: ids only)."""
        return Actor(subject=self.subject, role=self.role, client=self.client_id)

    @classmethod
    def of_claims(cls, claims: Mapping[str, Any], names: ClaimNames = ClaimNames()) -> Principal:
        """The principal of verified claims; a claim of the wrong type counts as absent."""
        return cls(
            subject=str(claims["sub"]),
            roles=frozenset(_strings(_path(claims, names.roles))) & USER_ROLES,
            client_id=_string(claims.get("azp")) or _string(claims.get("client_id")),
            scopes=frozenset(_string(claims.get("scope")).split()),
            student_id=_string(claims.get(names.student)) or None,
            company_id=_string(claims.get(names.company)) or None,
            regions=frozenset(_strings(claims.get(names.regions))),
            email=_string(claims.get("email")) or None,
            email_verified=claims.get("email_verified") is True,
        )


def _path(claims: Mapping[str, Any], dotted: str) -> Any:
    value: Any = claims
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _strings(value: Any) -> list[str]:
    """A list of strings (other items dropped); one string is a list of one."""
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str) and v]
    return []


# -------------------------------------------------------------------------------- verifier


class Verifier(Protocol):
    """What the services need of a verifier (the bench and tests may pass a stand-in)."""

    async def verify(self, token: str) -> Principal: ...

    async def aclose(self) -> None: ...


@dataclass
class _KeySet:
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    """kid -> the JWK, signing keys only."""
    unnamed: list[dict[str, Any]] = field(default_factory=list)
    """Signing keys without a kid."""
    fetched_at: float | None = None
    """When the set was last fetched successfully (monotonic)."""
    tried_at: float | None = None
    """When a fetch was last tried, successful or not."""
    failure: str | None = None
    """Why the last fetch failed (None: it did not)."""


class TokenVerifier:
    """Verifies the issuer's access tokens (see the module's docstring)."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        claims: ClaimNames = ClaimNames(),
        transport: httpx.AsyncBaseTransport | None = None,
        algorithms: Iterable[str] = ALGORITHMS,
        leeway_seconds: float = 30.0,
        refresh_seconds: float = 30.0,
        max_age_seconds: float = 3600.0,
        timeout_seconds: float = 5.0,
        max_token_bytes: int = MAX_TOKEN_BYTES,
        cache_size: int = 4096,
        cache_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        allowed = tuple(algorithms)
        refused = [a for a in allowed if a not in _KEY_TYPES]
        if refused:
            raise ValueError(f"not asymmetric signature algorithms: {refused}")
        if not issuer:
            raise ValueError("an issuer is required")
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.claims = claims
        self.algorithms = allowed
        self.leeway = leeway_seconds
        self.refresh_seconds = refresh_seconds
        self.max_age_seconds = max_age_seconds
        self.max_token_bytes = max_token_bytes
        self.fetches = 0
        """How many times the key set was fetched (tests and logs)."""
        self._jwks_url = jwks_url or None
        self._clock = clock
        self._http = httpx.AsyncClient(transport=transport, timeout=timeout_seconds)
        self._set = _KeySet()
        self._lock = asyncio.Lock()
        self._prepared: dict[tuple[str, str], Key] = {}
        self._claims = jwt.JWTClaimsRegistry(
            now=lambda: int(wall_clock()),
            leeway=int(leeway_seconds),
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": audience},
            sub={"essential": True},
            exp={"essential": True},
        )
        self.cache_size = cache_size
        self.cache_seconds = cache_seconds
        self._wall = wall_clock
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        """token -> (its principal, until when (epoch seconds) it may be taken from here)."""

    @classmethod
    def from_settings(
        cls, settings: ServiceSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> TokenVerifier:
        return cls(
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
            jwks_url=settings.auth_jwks_url or None,
            claims=ClaimNames.of(settings),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    # ---------------------------------------------------------------------------- verify

    async def verify(self, token: str) -> Principal:
        """The principal of a valid token; `Unauthenticated` for any other token,
        `IssuerUnavailable` if the keys to decide cannot be had."""
        if len(token) > self.max_token_bytes:
            raise Unauthenticated(f"the token is longer than {self.max_token_bytes} bytes")
        remembered = self._remembered(token)
        if remembered is not None:
            return remembered
        header = _header(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise Unauthenticated(f"the signature algorithm {str(alg)[:20]!r} is not accepted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Unauthenticated("the token's kid is not a string")
        key = await self._key(kid, alg)
        claims = self._decode(token, key, alg)
        principal = Principal.of_claims(claims, self.claims)
        self._remember(token, principal, claims["exp"])
        return principal

    def _remembered(self, token: str) -> Principal | None:
        found = self._verified.get(token)
        if found is None:
            return None
        principal, until = found
        if self._wall() >= until:
            del self._verified[token]
            return None
        self._verified.move_to_end(token)
        return principal

    def _remember(self, token: str, principal: Principal, exp: Any) -> None:
        if self.cache_size <= 0 or not isinstance(exp, int | float):
            return
        until = min(float(exp) + self.leeway, self._wall() + self.cache_seconds)
        self._verified[token] = (principal, until)
        while len(self._verified) > self.cache_size:
            self._verified.popitem(last=False)

    def _decode(self, token: str, key: Key, alg: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(token, key, algorithms=[alg]).claims
            self._claims.validate(claims)
        except jose_errors.ExpiredTokenError:
            raise Unauthenticated("the token has expired") from None
        except jose_errors.MissingClaimError as e:
            raise Unauthenticated(f"the token has no {e.claim!r} claim") from None
        except jose_errors.InvalidClaimError as e:
            raise Unauthenticated(self._invalid_claim(e.claim)) from None
        except jose_errors.BadSignatureError:
            raise Unauthenticated("the token's signature is not valid") from None
        except (jose_errors.JoseError, ValueError, TypeError, KeyError) as e:
            raise Unauthenticated(f"the token is not valid: {_short(e)}") from None
        if not claims.get("sub"):
            raise Unauthenticated("the token's subject is empty")
        return claims

    def _invalid_claim(self, claim: str) -> str:
        if claim in ("nbf", "iat"):
            return "the token is not valid yet"
        if claim == "aud":
            return f"the token is not meant for {self.audience}"
        if claim == "iss":
            return "the token was issued by another issuer"
        return f"the token's {claim!r} claim is not valid"

    # ------------------------------------------------------------------------------ keys

    async def _key(self, kid: str | None, alg: str) -> Key:
        """The key named `kid` prepared for `alg`, refreshing the set for an unknown kid (at
        most once per `refresh_seconds`)."""
        now = self._clock()
        current = self._set
        stale = (
            current.fetched_at is None or now - current.fetched_at > self.max_age_seconds
        ) and self._may_try(now)
        if stale or (self._find(kid) is None and self._may_try(now)):
            await self._refresh(tried_before=current.tried_at)
        jwk = self._find(kid)
        if jwk is None:
            if self._set.fetched_at is None or self._set.failure is not None:
                raise IssuerUnavailable(
                    f"the issuer's signing keys cannot be had: {self._set.failure or 'not yet'}",
                    retry_after=max(1, round(self.refresh_seconds)),
                )
            raise Unauthenticated("the token is signed with a key the issuer does not publish")
        return self._prepare(kid or "", jwk, alg)

    def _may_try(self, now: float) -> bool:
        tried = self._set.tried_at
        return tried is None or now - tried >= self.refresh_seconds

    def _find(self, kid: str | None) -> dict[str, Any] | None:
        if kid is not None:
            return self._set.keys.get(kid)
        # No kid: only unambiguous when the issuer publishes a single signing key.
        everything = [*self._set.keys.values(), *self._set.unnamed]
        return everything[0] if len(everything) == 1 else None

    def _prepare(self, kid: str, jwk: Mapping[str, Any], alg: str) -> Key:
        cached = self._prepared.get((kid, alg))
        if cached is not None:
            return cached
        kty, curves = _KEY_TYPES[alg]
        if jwk.get("kty") != kty or (curves is not None and jwk.get("crv") not in curves):
            raise Unauthenticated(f"the token's key does not fit its algorithm {alg}")
        if jwk.get("alg") not in (None, alg):
            raise Unauthenticated(f"the token's key is for {jwk.get('alg')}, not {alg}")
        try:
            prepared = import_key(dict(jwk))
        except (jose_errors.JoseError, ValueError, TypeError, KeyError) as e:
            raise Unauthenticated(f"the token's key cannot verify it: {_short(e)}") from None
        if isinstance(prepared, RSAKey) and prepared.raw_value.key_size < MIN_RSA_BITS:
            raise Unauthenticated(f"the issuer's RSA key is shorter than {MIN_RSA_BITS} bits")
        if kid:
            self._prepared[(kid, alg)] = prepared
        return prepared

    async def _refresh(self, *, tried_before: float | None) -> None:
        async with self._lock:
            if self._set.tried_at != tried_before:
                return  # another request refreshed while this one waited
            self._set.tried_at = self._clock()
            try:
                keys = await self._fetch()
            except IssuerUnavailable as e:
                self._set.failure = e.reason
                log.warning("issuer keys unavailable", issuer=self.issuer, error=e.reason)
                return
            named = {k["kid"]: k for k in keys if isinstance(k.get("kid"), str)}
            unnamed = [k for k in keys if not isinstance(k.get("kid"), str)]
            self._set = _KeySet(named, unnamed, self._set.tried_at, self._set.tried_at, None)
            self._prepared = {}
            self._verified.clear()  # a key may be gone: verify every token again
            self.fetches += 1
            log.info("issuer keys fetched", issuer=self.issuer, kids=sorted(named))

    async def _fetch(self) -> list[dict[str, Any]]:
        if self._jwks_url is None:
            discovery = await self._get_json(f"{self.issuer}/.well-known/openid-configuration")
            if str(discovery.get("issuer", "")).rstrip("/") != self.issuer:
                raise IssuerUnavailable(
                    f"the discovery document names issuer {discovery.get('issuer')!r}, "
                    f"not {self.issuer!r}"
                )
            uri = discovery.get("jwks_uri")
            if not isinstance(uri, str) or not uri:
                raise IssuerUnavailable("the discovery document has no jwks_uri")
            self._jwks_url = uri
        document = await self._get_json(self._jwks_url)
        keys = document.get("keys")
        if not isinstance(keys, list):
            raise IssuerUnavailable("the JWKS has no keys list")
        return [k for k in keys if _signing_key(k, self.algorithms)]

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url, headers={"accept": "application/json"})
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise IssuerUnavailable(f"GET {url}: {_short(e)}") from None
        if not isinstance(body, dict):
            raise IssuerUnavailable(f"GET {url}: not a JSON object")
        return body


def _signing_key(jwk: Any, algorithms: Iterable[str]) -> bool:
    """A JWK that may verify signatures of one of `algorithms`."""
    if not isinstance(jwk, dict) or jwk.get("use") not in (None, "sig"):
        return False
    alg = jwk.get("alg")
    return alg is None or alg in tuple(algorithms)


_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")


def _header(token: str) -> dict[str, Any]:
    """The token's JOSE header, unverified (only to choose the key: PyJWT checks it all again
    when it verifies the token)."""
    segments = token.split(".")
    if len(segments) != 3:
        raise Unauthenticated("the token is not a JWS in compact form (three segments)")
    first = segments[0]
    if not _SEGMENT.fullmatch(first) or len(first) % 4 == 1:
        raise Unauthenticated("the token's header is not base64url")
    try:
        header = json.loads(base64.urlsafe_b64decode(first + "=" * (-len(first) % 4)))
    except (binascii.Error, ValueError) as e:
        raise Unauthenticated(f"the token's header cannot be read: {_short(e)}") from None
    if not isinstance(header, dict):
        raise Unauthenticated("the token's header is not a JSON object")
    return header


def _short(error: BaseException) -> str:
    return (str(error) or type(error).__name__)[:200]
