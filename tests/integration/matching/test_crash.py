"""kill -9 between the round's database commit and the offset commit: no duplicate, no loss."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from shared.contracts.topics import Topics
from tests.integration.matching.support import (
    Output,
    collect,
    matching_env,
    prepared_schema,
    publish_all,
    read_model_count,
    region_input,
    replica,
    round_request,
    wait_for,
)
from tests.support.infra import Infra

pytestmark = pytest.mark.infra


async def test_kill_after_commit_before_offset_commit(
    infra: Infra,
    database_url: str,
    make_topics: Callable[[], Awaitable[Topics]],
    tmp_path: Path,
) -> None:
    topics = await make_topics()
    schema = f"m_{uuid.uuid4().hex[:10]}"
    await prepared_schema(database_url, schema)
    env = matching_env(infra, database_url, topics, schema)
    paused = {**env, "APL_MATCHING_TEST_PAUSE_AFTER_COMMIT_SECONDS": "120"}
    proc = replica(paused, tmp_path, "matching-crash")
    placements, students = region_input("SE-AB", 80, 30, seed=7)
    request = round_request("SE-AB")
    try:
        await asyncio.to_thread(proc.start)
        await publish_all(infra.kafka_bootstrap, topics, [*placements, *students])

        async def applied() -> bool:
            return await read_model_count(database_url, schema, "students") == len(
                students
            ) and await read_model_count(database_url, schema, "placements") == len(placements)

        await wait_for(applied, what="read model complete")
        await publish_all(infra.kafka_bootstrap, topics, [request])

        async def in_pause() -> bool:
            return "test pause after commit" in proc.log_path.read_text(errors="replace")

        await wait_for(in_pause, what="the round's commit")
        proc.kill()  # SIGKILL: the offset of the request is not committed
        assert await read_model_count(database_url, schema, "rounds") == 1

        proc.env = env  # restart without the pause
        await asyncio.to_thread(proc.start)

        async def redelivered() -> bool:
            return "round request already handled" in proc.log_path.read_text(errors="replace")

        await wait_for(redelivered, wait=120, what="the request's redelivery")

        def complete(out: Output) -> bool:
            done = out.of("MatchingRoundCompleted")
            return len(done) >= 1 and done[0]["proposed"] == len(out.of("MatchProposed"))

        out = await collect(infra.kafka_bootstrap, topics, complete)
    finally:
        proc.stop()

    assert [d["round_id"] for d in out.of("MatchingRoundCompleted")] == [str(request.data.round_id)]
    per_student = Counter((p["student_id"], p["round_id"]) for p in out.of("MatchProposed"))
    assert per_student
    assert max(per_student.values()) == 1
    assert await read_model_count(database_url, schema, "rounds") == 1


async def test_kill_mid_round_leaves_nothing_and_another_replica_completes_it(
    infra: Infra,
    database_url: str,
    make_topics: Callable[[], Awaitable[Topics]],
    tmp_path: Path,
) -> None:
    topics = await make_topics()
    schema = f"m_{uuid.uuid4().hex[:10]}"
    await prepared_schema(database_url, schema)
    env = matching_env(infra, database_url, topics, schema)
    stuck = replica(
        {**env, "APL_MATCHING_TEST_PAUSE_BEFORE_COMMIT_SECONDS": "120"}, tmp_path, "matching-a"
    )
    other = replica(env, tmp_path, "matching-b")
    placements, students = region_input("SE-O", 80, 30, seed=11)
    request = round_request("SE-O")
    try:
        await asyncio.to_thread(stuck.start)
        await publish_all(infra.kafka_bootstrap, topics, [*placements, *students])

        async def applied() -> bool:
            return await read_model_count(database_url, schema, "students") == len(
                students
            ) and await read_model_count(database_url, schema, "placements") == len(placements)

        await wait_for(applied, what="read model complete")
        await publish_all(infra.kafka_bootstrap, topics, [request])

        async def in_pause() -> bool:
            return "test pause before commit" in stuck.log_path.read_text(errors="replace")

        await wait_for(in_pause, what="the round's writes")
        stuck.kill()  # SIGKILL inside the round's transaction
        # nothing of the round is visible: no round row, no match, nothing in the outbox
        assert await read_model_count(database_url, schema, "rounds") == 0
        assert await read_model_count(database_url, schema, "matches") == 0
        assert await read_model_count(database_url, schema, "outbox") == 0

        await asyncio.to_thread(other.start)  # takes over the partitions

        def complete(out: Output) -> bool:
            done = out.of("MatchingRoundCompleted")
            return len(done) >= 1 and done[0]["proposed"] == len(out.of("MatchProposed"))

        out = await collect(infra.kafka_bootstrap, topics, complete)
    finally:
        stuck.kill()
        other.stop()

    assert [d["round_id"] for d in out.of("MatchingRoundCompleted")] == [str(request.data.round_id)]
    per_student = Counter(p["student_id"] for p in out.of("MatchProposed"))
    assert per_student
    assert max(per_student.values()) == 1
    assert "round committed" in other.log_path.read_text(errors="replace")
    assert await read_model_count(database_url, schema, "rounds") == 1
