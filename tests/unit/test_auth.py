"""`shared.auth.TokenVerifier` against the test issuer: every token edge case is refused with
`Unauthenticated` (never anything else), the key set is cached and refreshed once for an unknown
kid (at most once per interval), and an unreachable issuer is `IssuerUnavailable`."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from shared.auth import (
    ClaimNames,
    IssuerUnavailable,
    Principal,
    TokenVerifier,
    Unauthenticated,
)
from tests.support.tokens import TestIssuer, ec_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer() -> TestIssuer:
    return TestIssuer()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier(issuer: TestIssuer, clock: Clock) -> TokenVerifier:
    return issuer.verifier(clock=clock)


async def refused(verifier: TokenVerifier, token: str, reason: str) -> None:
    with pytest.raises(Unauthenticated, match=reason):
        await verifier.verify(token)


async def test_a_valid_token_gives_its_principal(issuer: TestIssuer, verifier: Any) -> None:
    token = issuer.mint(
        "coordinator",
        sub="u-1",
        regions=["SE-AB", "SE-O", 7],
        email="c@school.example.se",
        email_verified=True,
        scope="openid email",
    )
    p = await verifier.verify(token)
    assert p == Principal(
        subject="u-1",
        roles=frozenset({"coordinator"}),
        client_id="apl-web",
        scopes=frozenset({"openid", "email"}),
        regions=frozenset({"SE-AB", "SE-O"}),
        email="c@school.example.se",
        email_verified=True,
    )
    assert p.actor().model_dump() == {"subject": "u-1", "role": "coordinator", "client": "apl-web"}
    service = await verifier.verify(issuer.service())
    assert (service.is_service, service.role, service.client_id) == (
        True,
        "service",
        "apl-notifications",
    )
    assert "notices:read" in service.scopes


async def test_claim_names_are_configurable(issuer: TestIssuer) -> None:
    names = ClaimNames(roles="apl.roles", student="pupil", company="org", regions="areas")
    verifier = issuer.verifier(claims=names)
    token = issuer.mint(
        None, apl={"roles": ["student", "admin"]}, pupil="s-9", org="c-9", areas="SE-AB"
    )
    p = await verifier.verify(token)
    assert (p.roles, p.student_id, p.company_id, p.regions) == (
        frozenset({"student"}),
        "s-9",
        "c-9",
        frozenset({"SE-AB"}),
    )
    odd = await verifier.verify(issuer.mint("student", student_id=5, email_verified="true"))
    assert (odd.student_id, odd.email_verified) == (None, False)  # wrong types count as absent


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        ("expired", "expired"),
        ("not_yet_valid", "not valid yet"),
        ("wrong_audience", "not meant for apl-api"),
        ("wrong_issuer", "another issuer"),
        ("alg_none", "algorithm 'none'"),
        ("hs256_with_public_key", "algorithm 'HS256'"),
        ("tampered", "signature"),
        ("foreign_key_same_kid", "signature"),
        ("ec_token_under_rsa_kid", "does not fit its algorithm ES256"),
    ],
)
async def test_bad_tokens_are_refused(
    issuer: TestIssuer, verifier: TokenVerifier, make: str, reason: str
) -> None:
    await refused(verifier, getattr(issuer, make)(), reason)


@pytest.mark.parametrize("missing", ["sub", "exp", "iss", "aud"])
async def test_required_claims(issuer: TestIssuer, verifier: TokenVerifier, missing: str) -> None:
    await refused(verifier, issuer.mint("student", **{missing: None}), f"no '{missing}'")


async def test_a_small_leeway_for_clocks(issuer: TestIssuer, verifier: TokenVerifier) -> None:
    import time

    now = int(time.time())
    assert await verifier.verify(issuer.mint("student", exp=now - 10, iat=now - 100))
    assert await verifier.verify(issuer.mint("student", nbf=now + 10))
    await refused(verifier, issuer.mint("student", exp=now - 60, iat=now - 100), "expired")


def _segment(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "a.b",
        "a.b.c.d",
        "....",
        "!!!.@@@.###",
        f"{_segment(b'not json')}.{_segment({})}.x",
        f"{_segment([1, 2])}.{_segment({})}.x",
        f"{_segment({'alg': 'RS256', 'kid': 5})}.{_segment({})}.x",
        f"{_segment({'alg': {'x': 1}})}.{_segment({})}.x",
        f"{_segment({'kid': 'test-rsa-1'})}.{_segment({})}.x",
        f"{_segment({'alg': 'RS256', 'kid': 'test-rsa-1'})}.{_segment(b'[')}.abc",
        f"{_segment({'alg': 'RS256', 'kid': 'test-rsa-1'})}.{_segment([1])}.abc",
        "ey" * 5000,
        "a." + "b" * 10_000 + ".c",
        "\u00e9\u00e9.\u00e9.\u00e9",
    ],
)
async def test_malformed_tokens_are_unauthenticated_never_an_error(
    verifier: TokenVerifier, token: str
) -> None:
    with pytest.raises(Unauthenticated):
        await verifier.verify(token)


async def test_a_bad_payload_under_a_good_signature_is_refused(
    issuer: TestIssuer, verifier: TokenVerifier
) -> None:
    """Claims of the wrong type, signed by the issuer: still a 401, not a crash."""
    for claims in ({"sub": 5}, {"exp": "soon"}, {"aud": 7}, {"iss": ["x"]}, {"sub": ""}):
        token = issuer.sign({**issuer.claims("student"), **claims})
        with pytest.raises(Unauthenticated):
            await verifier.verify(token)


async def test_keys_are_cached_and_an_unknown_kid_refreshes_once_per_interval(
    issuer: TestIssuer, verifier: TokenVerifier, clock: Clock
) -> None:
    for _ in range(3):
        await verifier.verify(issuer.mint("student"))
    assert issuer.jwks_fetches == 1
    await refused(verifier, issuer.unknown_kid(), "does not publish")
    assert issuer.jwks_fetches == 1  # the set was fetched a moment ago: it is the current one
    clock.now += 31
    for _ in range(5):  # a flood of forged kids: one refresh, then refused from the cache
        await refused(verifier, issuer.unknown_kid(), "does not publish")
    assert issuer.jwks_fetches == 2
    clock.now += 31
    await refused(verifier, issuer.unknown_kid(), "does not publish")
    assert issuer.jwks_fetches == 3
    clock.now += 31
    issuer.rotate()  # the issuer signs with a new key: its first token refreshes the set
    assert (await verifier.verify(issuer.mint("student"))).roles == {"student"}
    assert issuer.jwks_fetches == 4
    clock.now += 3601  # an old set is fetched again
    await verifier.verify(issuer.mint("student"))
    assert issuer.jwks_fetches == 5
    assert verifier.fetches == 5


async def test_an_unreachable_issuer_is_unavailable_not_unauthenticated(
    issuer: TestIssuer, verifier: TokenVerifier, clock: Clock
) -> None:
    issuer.down = True
    with pytest.raises(IssuerUnavailable, match="cannot be had") as raised:
        await verifier.verify(issuer.mint("student"))
    assert raised.value.retry_after == 30
    clock.now += 31
    issuer.down = False
    assert await verifier.verify(issuer.mint("student"))
    issuer.down = True
    assert await verifier.verify(issuer.mint("student"))  # cached keys still verify
    clock.now += 31
    with pytest.raises(IssuerUnavailable):  # an unknown kid cannot be decided meanwhile
        await verifier.verify(issuer.unknown_kid())
    await refused(verifier, issuer.expired(), "expired")


async def test_discovery_must_name_the_issuer_and_a_jwks_url_skips_it() -> None:
    liar = TestIssuer()
    real = liar.discovery

    def other() -> dict[str, Any]:
        return {**real(), "issuer": "https://elsewhere.test"}

    liar.discovery = other  # type: ignore[method-assign]
    with pytest.raises(IssuerUnavailable, match="names issuer"):
        await liar.verifier().verify(liar.mint("student"))
    direct = liar.verifier(jwks_url=liar.jwks_url)
    assert await direct.verify(liar.mint("student"))
    assert not any("openid-configuration" in u for u in liar.requests[1:])


async def test_an_ec_issuer_and_the_algorithm_allow_list() -> None:
    issuer = TestIssuer(key=ec_key("test-ec-1"))
    assert (await issuer.verifier().verify(issuer.mint("company"))).roles == {"company"}
    rs_only = issuer.verifier(algorithms=["RS256"])
    with pytest.raises(Unauthenticated, match="'ES256' is not accepted"):
        await rs_only.verify(issuer.mint("company"))
    with pytest.raises(ValueError, match="not asymmetric"):
        TokenVerifier(issuer=issuer.url, audience="a", algorithms=["HS256"])


async def test_huge_tokens_are_refused_before_parsing(
    issuer: TestIssuer, verifier: TokenVerifier
) -> None:
    token = issuer.mint("student", padding="x" * 9000)
    await refused(verifier, token, "longer than 8192")
    assert issuer.requests == []


async def test_a_verified_token_is_remembered_until_its_expiry_at_most(
    issuer: TestIssuer, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    wall = {"now": time.time()}
    verifier = issuer.verifier(clock=clock, wall_clock=lambda: wall["now"], cache_seconds=60)
    token = issuer.mint("student", exp=int(wall["now"]) + 40)
    decoded: list[str] = []
    real = verifier._decode

    def counting(*args: Any) -> Any:
        decoded.append("x")
        return real(*args)

    monkeypatch.setattr(verifier, "_decode", counting)
    for _ in range(3):
        await verifier.verify(token)
    assert len(decoded) == 1
    wall["now"] += 50  # not yet past exp + leeway (30 s): still remembered
    await verifier.verify(token)
    assert len(decoded) == 1
    wall["now"] += 21  # past them: verified again, by the same clock, and refused as expired
    with pytest.raises(Unauthenticated, match="expired"):
        await verifier.verify(token)
    assert len(decoded) == 2
    other = issuer.mint("student")
    await verifier.verify(other)
    clock.now += 31
    issuer.rotate()
    await verifier.verify(issuer.mint("student"))  # the key set changed: all forgotten
    await verifier.verify(other)
    assert len(decoded) == 5


async def test_concurrent_unknown_kids_share_one_refresh(
    issuer: TestIssuer, verifier: TokenVerifier, clock: Clock
) -> None:
    import asyncio

    await verifier.verify(issuer.mint("student"))
    clock.now += 31
    results = await asyncio.gather(
        *(verifier.verify(issuer.unknown_kid()) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, Unauthenticated) for r in results)
    assert issuer.jwks_fetches == 2
