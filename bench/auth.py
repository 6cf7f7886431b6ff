"""What verifying bearer tokens costs the placements API: requests per second of an authorised
GET and POST, with the real verifier (RS256 signature, iss, aud, exp, nbf, claims: the test
issuer's keys, fetched once; joserfc) against the same requests with verification off (a stand-in
verifier returning the same principal, passed through the composition root: `build(settings,
verifier=...)`; no production setting turns verification off). Same process, same run; the two
variants alternate in blocks, each block on a fresh store, and the median block counts.

    .venv/bin/python -m bench.auth [--requests 400] [--blocks 6] [--backend memory|postgres]
                                   [--fresh-tokens]

By default each client sends one token (as a signed-in client does), so after its first request
the verifier answers from its verified-token cache; `--fresh-tokens` sends a new token with
every request: the full verification (parsing, RS256, claims) every time, the worst case.

`memory` (default) runs the app over the in-memory unit of work: the cheapest requests, so the
largest share for verification. `postgres` runs `running(settings)` on the local Kafka and
PostgreSQL (`apl infra up`), under a fresh topic prefix and schema, removed at the end.
Target: verification costs under 10 %.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from services.placements.bootstrap import Container, build, create_app, running
from services.placements.settings import PlacementsSettings
from shared.auth import Principal, Verifier
from shared.contracts.topics import Topics
from shared.kafka import delete_topics, ensure_topics
from shared.logging import configure_logging
from shared.settings import KafkaAdminSettings, ServiceSettings
from tests.support.fakes.placements import InMemoryPlacementsUnitOfWork
from tests.support.tokens import TestIssuer

REGION = "SE-AB"


class FixedPrincipal:
    """Verification off: every token is this principal (bench and tests only)."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    async def verify(self, token: str) -> Principal:
        return self.principal

    async def aclose(self) -> None:
        return None


def offer(pid: str) -> dict[str, Any]:
    return {
        "placement_id": pid,
        "company_id": "c-1",
        "region": REGION,
        "capacity": 2,
        "title": "Electrician apprentice",
        "supervisor": {"name": "Anna Berg", "email": "anna@example.se", "language": "sv"},
    }


@dataclass
class Variant:
    name: str
    verifier: Verifier


Opened = Callable[[Verifier], contextlib.AbstractAsyncContextManager[Container]]


def memory_backend(settings: PlacementsSettings) -> Opened:
    @contextlib.asynccontextmanager
    async def opened(verifier: Verifier) -> AsyncIterator[Container]:
        fake = InMemoryPlacementsUnitOfWork()
        yield build(settings, unit_of_work=lambda: fake, verifier=verifier)

    return opened


def postgres_backend(settings: PlacementsSettings) -> Opened:
    @contextlib.asynccontextmanager
    async def opened(verifier: Verifier) -> AsyncIterator[Container]:
        async with running(settings, verifier=verifier) as container:
            yield container

    return opened


@dataclass
class Client:
    name: str
    http: httpx.AsyncClient
    seed: str
    tokens: list[str] | None = None
    """One token per request (`--fresh-tokens`), else the client's one token for all."""
    spent: float = 0.0
    count: int = 0

    def headers(self, i: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[i]}"} if self.tokens else {}


@contextlib.asynccontextmanager
async def client(name: str, container: Container, token: str) -> AsyncIterator[Client]:
    transport = httpx.ASGITransport(app=create_app(container))
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://placements", headers=headers
    ) as http:
        seed = f"p-{uuid.uuid4().hex[:8]}"
        r = await http.post("/v1/placements", json=offer(seed))
        if r.status_code != 201:
            raise RuntimeError(f"seeding failed: {r.status_code} {r.text}")
        for _ in range(20):  # warm up (the verifier fetches the keys once)
            await http.get(f"/v1/placements/{seed}")
        yield Client(name, http, seed)


async def one(c: Client, kind: str, i: int) -> None:
    started = time.perf_counter()
    if kind == "GET":
        r = await c.http.get(f"/v1/placements/{c.seed}", headers=c.headers(i))
        expected = 200
    else:
        r = await c.http.post("/v1/placements", json=offer(f"{c.seed}-{i}"), headers=c.headers(i))
        expected = 201
    c.spent += time.perf_counter() - started
    c.count += 1
    if r.status_code != expected:
        raise RuntimeError(f"{c.name} {kind}: {r.status_code} {r.text}")


async def block(
    opened: Opened,
    variants: list[Variant],
    token: str,
    requests: int,
    kind: str,
    fresh: list[str] | None,
) -> dict[str, float]:
    """Requests per second of each variant over one fresh store each, the variants' requests
    interleaved one by one (in alternating order), so load on the machine hits both alike."""
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for v in variants:
            container = await stack.enter_async_context(opened(v.verifier))
            made = await stack.enter_async_context(client(v.name, container, token))
            made.tokens = fresh
            clients.append(made)
        for i in range(requests):
            for c in clients if i % 2 == 0 else reversed(clients):
                await one(c, kind, i)
        return {c.name: c.count / c.spent for c in clients}


async def measure(
    opened: Opened,
    variants: list[Variant],
    token: Callable[[], str],
    args: Any,
    fresh: Callable[[], list[str] | None],
) -> None:
    rates: dict[tuple[str, str], list[float]] = {}
    for kind in ("GET", "POST"):
        for _ in range(args.blocks):
            measured = await block(opened, variants, token(), args.requests, kind, fresh())
            for name, rate in measured.items():
                rates.setdefault((kind, name), []).append(rate)
    tokens = "a new token per request" if args.fresh_tokens else "one token per client"
    print(
        f"backend: {args.backend}; {tokens}; {args.blocks} blocks of {args.requests} "
        "requests each, the two variants interleaved"
    )
    print(f"{'request':<8}{'verified rps':>14}{'unverified rps':>16}{'cost':>9}")
    for kind in ("GET", "POST"):
        on = statistics.median(rates[(kind, "verified")])
        off = statistics.median(rates[(kind, "unverified")])
        cost = 1 - on / off
        print(f"{kind:<8}{on:>14.0f}{off:>16.0f}{cost:>8.1%}  (ratio {on / off:.3f})")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--backend", choices=["memory", "postgres"], default="memory")
    parser.add_argument(
        "--fresh-tokens",
        action="store_true",
        help="a new token for every request: no request is served from the verified-token cache",
    )
    args = parser.parse_args()
    configure_logging("bench", level="WARNING", json=False)

    issuer = TestIssuer()
    token = issuer.mint("coordinator", regions=[REGION], email="c@region.example.se")
    verifier = issuer.verifier()
    principal = await verifier.verify(token)
    variants = [Variant("verified", verifier), Variant("unverified", FixedPrincipal(principal))]

    def seeding() -> str:
        """The clients' own token, new for every block (a long run outlives one)."""
        return issuer.mint("coordinator", regions=[REGION], email="c@region.example.se")

    def fresh() -> list[str] | None:
        """Tokens for one block (new ones every block: none was verified before)."""
        if not args.fresh_tokens:
            return None
        return [issuer.mint("coordinator", regions=[REGION]) for _ in range(args.requests)]

    if args.backend == "memory":
        settings = PlacementsSettings(environment="test")
        await measure(memory_backend(settings), variants, seeding, args, fresh)
        await verifier.aclose()
        return
    base = ServiceSettings.load()  # the shared (admin) addresses: APL_DATABASE_URL
    topics = Topics(prefix=f"bench{uuid.uuid4().hex[:8]}.")
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    settings = PlacementsSettings.load(
        topic_prefix=topics.prefix,
        schema_name=schema,
        environment="test",
        database_url=base.database_url,
        kafka_bootstrap=base.kafka_bootstrap,
    )  # connects as the placements principal (APL_PLACEMENTS_KAFKA_*)
    admin = KafkaAdminSettings.load().kafka  # topics and ACLs
    await ensure_topics(admin, topics)
    try:
        await measure(postgres_backend(settings), variants, seeding, args, fresh)
    finally:
        await verifier.aclose()
        await delete_topics(admin, topics)
        conn = await asyncpg.connect(base.database_url)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
