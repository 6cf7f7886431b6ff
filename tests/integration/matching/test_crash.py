"""kill -9 between the round's database commit and the offset commit: no duplicate, no loss."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from shared.contracts.topics import Topics
from tests.integration.matching.support import (
    collect,
    one_round_complete,
    prepared_schema,
    read_model_count,
    replica,
    request_after_input,
    wait_for_log,
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
    schema, env = await prepared_schema(infra, database_url, topics)
    paused = {**env, "APL_MATCHING_TEST_PAUSE_AFTER_COMMIT_SECONDS": "120"}
    proc = replica(paused, tmp_path, "matching-crash")
    try:
        await asyncio.to_thread(proc.start)
        request = await request_after_input(infra, database_url, topics, schema, "SE-AB", seed=7)
        await wait_for_log(proc, "test pause after commit")  # the round committed
        proc.kill()  # SIGKILL: the offset of the request is not committed
        assert await read_model_count(database_url, schema, "rounds") == 1

        proc.env = env  # restart without the pause
        await asyncio.to_thread(proc.start)
        await wait_for_log(proc, "round request already handled", wait=120)  # redelivered
        out = await collect(infra.kafka_bootstrap, topics, one_round_complete)
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
    schema, env = await prepared_schema(infra, database_url, topics)
    stuck = replica(
        {**env, "APL_MATCHING_TEST_PAUSE_BEFORE_COMMIT_SECONDS": "120"}, tmp_path, "matching-a"
    )
    other = replica(env, tmp_path, "matching-b")
    try:
        await asyncio.to_thread(stuck.start)
        request = await request_after_input(infra, database_url, topics, schema, "SE-O", seed=11)
        await wait_for_log(stuck, "test pause before commit")  # the round's writes are done
        stuck.kill()  # SIGKILL inside the round's transaction
        # nothing of the round is visible: no round row, no match, nothing in the outbox
        assert await read_model_count(database_url, schema, "rounds") == 0
        assert await read_model_count(database_url, schema, "matches") == 0
        assert await read_model_count(database_url, schema, "outbox") == 0

        await asyncio.to_thread(other.start)  # takes over the partitions
        out = await collect(infra.kafka_bootstrap, topics, one_round_complete)
    finally:
        stuck.kill()
        other.stop()

    assert [d["round_id"] for d in out.of("MatchingRoundCompleted")] == [str(request.data.round_id)]
    per_student = Counter(p["student_id"] for p in out.of("MatchProposed"))
    assert per_student
    assert max(per_student.values()) == 1
    assert "round committed" in other.log_path.read_text(errors="replace")
    assert await read_model_count(database_url, schema, "rounds") == 1
