"""`apl dlt list|replay` against the real Kafka and a matching service as a separate process.

The story an operator lives through: a valid `PlacementPosted` whose handler keeps failing (here
a CHECK constraint the read model refuses it with, as a bug in a migration would) and a record that
breaks the contract both end in `apl.placements.v1.dlt`. `apl dlt list` shows them with their
errors; the constraint is dropped (the fix); `apl dlt replay --partition P --offset O` publishes
the valid one to its original topic and the service applies it. Replaying everything afterwards
changes nothing: the inbox drops the event it applied, and the contract breaker is dead-lettered
once more.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from shared.contracts import events as ev
from shared.contracts.topics import Topics, event_key
from shared.kafka import event_headers
from tests.integration.matching.support import prepared_schema, replica
from tests.support.factories import placement
from tests.support.infra import Infra
from tests.support.kafka import read_records
from tests.support.metrics import metric_total
from tests.support.waiting import eventually

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
REGION = "SE-AB"


def run_dlt(infra: Infra, topics: Topics, *args: str) -> subprocess.CompletedProcess[str]:
    """`apl dlt ...` as an operator runs it, in a process of its own."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "dlt",
            *args,
            "--bootstrap",
            infra.kafka_bootstrap,
            "--prefix",
            topics.prefix,
        ],
        cwd=ROOT,
        env={**os.environ, **infra.kafka.environment()},  # as the admin
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def _scalar(url: str, query: str, *args: Any) -> Any:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def test_a_dead_letter_is_listed_replayed_after_the_fix_and_applied_once(
    infra: Infra, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    schema, env = await prepared_schema(infra, database_url, topics)
    env["APL_MATCHING_MAX_ATTEMPTS"] = "2"
    # The "bug": the read model refuses this placement, whatever the number of attempts.
    await _scalar(
        database_url,
        f"ALTER TABLE {schema}.placements "
        "ADD CONSTRAINT refuses_p_dlt CHECK (placement_id <> 'p-dlt')",
    )
    service = replica(env, tmp_path / "logs", "matching")
    await asyncio.to_thread(service.start, 90)
    try:
        posted = ev.PlacementPosted(producer="placements", data=placement("p-dlt", region=REGION))
        producer = infra.kafka.producer()
        await producer.start()
        try:
            await producer.send_and_wait(
                topics.placements,
                posted.to_json(),
                key=event_key(REGION),
                headers=[
                    (k, v.encode()) for k, v in event_headers(posted.type, posted.event_id).items()
                ],
            )
            await producer.send_and_wait(topics.placements, b"not json", key=event_key(REGION))
        finally:
            await producer.stop()
        dlt = f"{topics.placements}.dlt"
        await read_records(infra.kafka, dlt, until=lambda r: len(r) >= 2, wait=60)

        # ---- list: both, with their errors and where they came from
        listed = run_dlt(infra, topics, "list", "apl.placements.v1")
        assert listed.returncode == 0, listed.stderr
        assert "2 dead letter(s)" in listed.stdout, listed.stdout
        assert "CheckViolationError" in listed.stdout
        assert "ContractError" in listed.stdout
        as_json = run_dlt(infra, topics, "list", "apl.placements.v1", "--json")
        assert as_json.returncode == 0, as_json.stderr
        letters = [json.loads(line) for line in as_json.stdout.splitlines()]
        by_type = {d["event_type"]: d for d in letters}
        assert set(by_type) == {"PlacementPosted", None}
        handler = by_type["PlacementPosted"]
        assert handler["event_id"] == str(posted.event_id)
        assert handler["key"] == REGION
        assert handler["original_topic"] == topics.placements
        assert handler["consumer_group"] == f"{topics.prefix}matching"
        assert handler["attempts"] == 2
        assert "refuses_p_dlt" in handler["error"]
        assert by_type[None]["error"].startswith("ContractError")
        assert by_type[None]["attempts"] == 1
        # the matching service wrote the dead letter down, so its rounds do not wait for it
        assert await _scalar(
            database_url,
            f"SELECT count(*) FROM {schema}.inputs_dead_lettered WHERE event_id = $1",  # noqa: S608
            posted.event_id,
        )
        assert not await _scalar(
            database_url,
            f"SELECT count(*) FROM {schema}.placements WHERE placement_id = 'p-dlt'",  # noqa: S608
        )

        # ---- the fix, then replay the one record
        await _scalar(
            database_url, f"ALTER TABLE {schema}.placements DROP CONSTRAINT refuses_p_dlt"
        )
        one = run_dlt(
            infra,
            topics,
            "replay",
            "apl.placements.v1.dlt",
            "--partition",
            str(handler["partition"]),
            "--offset",
            str(handler["offset"]),
        )
        assert one.returncode == 0, one.stderr
        assert one.stdout.strip() == (
            f"replayed {dlt}:{handler['partition']}:{handler['offset']} "
            f"(PlacementPosted {posted.event_id}) to {topics.placements}"
        )

        async def applied() -> bool:
            rows = await _scalar(
                database_url,
                f"SELECT count(*) FROM {schema}.placements WHERE placement_id = 'p-dlt'",  # noqa: S608
            )
            return bool(rows)

        await eventually(applied, wait=60, what="the replayed placement in the read model")
        assert not await _scalar(
            database_url,
            f"SELECT count(*) FROM {schema}.inputs_dead_lettered WHERE event_id = $1",  # noqa: S608
            posted.event_id,
        )
        assert (
            await metric_total(service.url, "apl_events_applied_total", topic="apl.placements.v1")
            == 1
        )

        # ---- replay everything: the applied event is a duplicate, the breaker a dead letter again
        every = run_dlt(infra, topics, "replay", "apl.placements.v1", "--all")
        assert every.returncode == 0, every.stderr
        assert len(every.stdout.splitlines()) == 2, every.stdout

        async def settled() -> bool:
            duplicated = await metric_total(
                service.url, "apl_events_duplicated_total", topic="apl.placements.v1"
            )
            refused = await metric_total(
                service.url,
                "apl_events_dead_lettered_total",
                topic="apl.placements.v1",
                reason="contract",
            )
            return duplicated == 1 and refused == 2

        await eventually(settled, wait=60, what="the duplicate dropped and the breaker refused")
        again = run_dlt(infra, topics, "list", "apl.placements.v1", "--json")
        records = [json.loads(line) for line in again.stdout.splitlines()]
        assert len(records) == 3  # only the contract breaker came back
        assert [r["event_type"] for r in records].count("PlacementPosted") == 1
        assert (
            await metric_total(service.url, "apl_events_applied_total", topic="apl.placements.v1")
            == 1
        )
    finally:
        await asyncio.to_thread(service.stop)


async def test_replay_needs_one_record_or_all(infra: Infra, topics: Topics) -> None:
    result = run_dlt(infra, topics, "replay", "apl.placements.v1", "--partition", "0")
    assert result.returncode == 2
    assert "--partition and --offset" in result.stderr
    missing = run_dlt(
        infra, topics, "replay", "apl.placements.v1", "--partition", "0", "--offset", "99"
    )
    assert missing.returncode == 1
    assert "no record 0:99" in missing.stderr
