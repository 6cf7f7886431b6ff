"""The placements service's batch route of notice contexts (`POST /internal/v1/notice-contexts`)
against a running demo (`make demo`): batches of 100 keys of the kinds a delivery batch of the
notifications service asks for (50 supervisors of matches, 40 of their students with the
placement, 10 students without a match, whose vacancies are read; the service's own batches
are of 50 notices by default, about half as many keys), timed one after another.

    .venv/bin/python -m bench.notice_contexts [--batches 30]

It signs in as the notifications service (client credentials, `APL_NOTIFICATIONS_CLIENT_SECRET`,
default the dev realm's) at `APL_AUTH_ISSUER`, posts to `APL_API_URL`, and picks the keys from
the demo's database (`APL_DATABASE_URL`, default the demo's). It prints the median batch time and
the contexts answered per second.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

import asyncpg
import httpx

from shared.contracts.internal import NOTICE_CONTEXTS_PATH

SUPERVISORS, PLACED, UNPLACED = 50, 40, 10


async def run(batches: int) -> None:
    issuer = os.environ.get("APL_AUTH_ISSUER", "http://127.0.0.1:18080/realms/apl")
    api = os.environ.get("APL_API_URL", "http://127.0.0.1:8000")
    dsn = os.environ.get("APL_DATABASE_URL", "postgresql://apl:apl@127.0.0.1:15432/apl_demo")
    secret = os.environ.get("APL_NOTIFICATIONS_CLIENT_SECRET", "dev-notifications-secret")
    db = await asyncpg.connect(dsn)
    try:
        matches = await db.fetch(
            "SELECT placement_id, student_id FROM placements.matches ORDER BY match_id LIMIT $1",
            batches * SUPERVISORS,
        )
        unplaced = await db.fetch(
            "SELECT s.student_id FROM placements.students s WHERE s.withdrawn_at IS NULL AND "
            "NOT EXISTS (SELECT 1 FROM placements.matches m WHERE m.student_id = s.student_id) "
            "ORDER BY s.student_id LIMIT $1",
            batches * UNPLACED,
        )
    finally:
        await db.close()
    if len(matches) < batches * SUPERVISORS or not unplaced:
        raise SystemExit("too few matches or unplaced students: run `make demo` first")
    async with httpx.AsyncClient(timeout=60) as client:
        grant = {
            "grant_type": "client_credentials",
            "client_id": "apl-notifications",
            "client_secret": secret,
        }
        answer = await client.post(f"{issuer}/protocol/openid-connect/token", data=grant)
        answer.raise_for_status()
        auth = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        times: list[float] = []
        for b in range(batches):
            pairs = matches[b * SUPERVISORS : (b + 1) * SUPERVISORS]
            alone = unplaced[b * UNPLACED : (b + 1) * UNPLACED]
            body = {
                "supervisors": [{"placement_id": p, "student_id": s} for p, s in pairs],
                "students": [{"student_id": s, "placement_id": p} for p, s in pairs[:PLACED]]
                + [{"student_id": r["student_id"]} for r in alone],
            }
            started = time.perf_counter()
            r = await client.post(f"{api}{NOTICE_CONTEXTS_PATH}", json=body, headers=auth)
            times.append(time.perf_counter() - started)
            r.raise_for_status()
    keys = SUPERVISORS + PLACED + UNPLACED
    print(
        f"{batches} batches of {keys} keys ({SUPERVISORS} supervisors, {PLACED} students with "
        f"their placement, {UNPLACED} without): median {statistics.median(times) * 1000:.1f} ms "
        f"a batch, {batches * keys / sum(times):,.0f} contexts/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=30)
    asyncio.run(run(parser.parse_args().batches))


if __name__ == "__main__":
    main()
