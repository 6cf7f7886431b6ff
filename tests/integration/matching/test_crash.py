"""kill -9 at the two moments of a round that matter, on real Kafka and PostgreSQL.

Each test runs a replica through its own entry script (round_process.py), whose round hooks
write a sentinel file at the chosen moment and then hold the round there; the test waits for
that file (written by that very process), kills the process with SIGKILL, checks that it died
of it and what the database holds at that moment, and then lets a fresh replica finish.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from shared.contracts.topics import Topics
from tests.integration.matching import round_process
from tests.integration.matching.support import (
    Output,
    collect,
    committed_offset,
    one_round_complete,
    position_of,
    prepared_schema,
    publish_all,
    read_model_count,
    replica,
    request_after_input,
    round_request,
)
from tests.support.infra import Infra
from tests.support.processes import ServiceProcess
from tests.support.waiting import eventually

pytestmark = pytest.mark.infra


async def _held_at(proc: ServiceProcess, sentinel: Path, moment: str) -> None:
    """Until `proc` is holding a round at `moment` (its hook wrote the sentinel)."""
    await eventually(sentinel.exists, wait=120, interval=0.2, what=f"{proc.name} at {moment}")
    assert proc.proc is not None
    text = await asyncio.to_thread(sentinel.read_text, encoding="utf-8")
    assert text.split() == [moment, str(proc.proc.pid)]


def _kill(proc: ServiceProcess) -> None:
    proc.kill()
    assert proc.proc is not None
    assert proc.proc.returncode == -signal.SIGKILL, f"{proc.name}: {proc.proc.returncode}"


async def test_kill_after_commit_before_offset_commit(
    infra: Infra,
    database_url: str,
    make_topics: Callable[[], Awaitable[Topics]],
    tmp_path: Path,
) -> None:
    topics = await make_topics()
    schema, env = await prepared_schema(infra, database_url, topics)
    group = f"{topics.prefix}matching.round-requests"  # its subscriber's own group
    sentinel = tmp_path / "after-commit"
    proc = replica(
        env, tmp_path, "matching-crash", command=round_process.command("after-commit", sentinel)
    )
    try:
        await asyncio.to_thread(proc.start)
        request = await request_after_input(infra, database_url, topics, schema, "SE-AB", seed=7)
        partition, offset = await position_of(infra.kafka, topics.round_requests, request)
        await _held_at(proc, sentinel, "after-commit")
        _kill(proc)
        # the round committed, the request's offset did not: it will be delivered again
        assert await read_model_count(database_url, schema, "rounds") == 1
        assert (
            await committed_offset(infra.kafka, group, topics.round_requests, partition) <= offset
        )

        proc.command = ()  # restart as the plain service, without the hold
        await asyncio.to_thread(proc.start)
        # A later request of the same region (same partition, so handled after the redelivered
        # one): once its round completed, the redelivered request has been handled.
        later = round_request("SE-AB")
        await publish_all(infra.kafka, topics, [later])

        def both_done(out: Output) -> bool:
            ids = {d["round_id"] for d in out.of("MatchingRoundCompleted")}
            return str(later.data.round_id) in ids and one_round_complete(out)

        out = await collect(infra.kafka, topics, both_done)
        # the restarted replica consumed the redelivered request (and the later one)
        assert await committed_offset(infra.kafka, group, topics.round_requests, partition) > offset
    finally:
        proc.stop()

    assert proc.starts == 2
    completed = out.of("MatchingRoundCompleted")
    assert [d["round_id"] for d in completed] == [
        str(request.data.round_id),
        str(later.data.round_id),
    ]
    assert (completed[1]["proposed"], completed[1]["cancelled"]) == (0, 0)  # nothing changed
    per_student = Counter((p["student_id"], p["round_id"]) for p in out.of("MatchProposed"))
    assert per_student
    assert max(per_student.values()) == 1
    assert {p["round_id"] for p in out.of("MatchProposed")} == {str(request.data.round_id)}
    assert await read_model_count(database_url, schema, "rounds") == 2


async def test_kill_mid_round_leaves_nothing_and_another_replica_completes_it(
    infra: Infra,
    database_url: str,
    make_topics: Callable[[], Awaitable[Topics]],
    tmp_path: Path,
) -> None:
    topics = await make_topics()
    schema, env = await prepared_schema(infra, database_url, topics)
    sentinel = tmp_path / "before-commit"
    stuck = replica(
        env, tmp_path, "matching-a", command=round_process.command("before-commit", sentinel)
    )
    other = replica(env, tmp_path, "matching-b")
    try:
        await asyncio.to_thread(stuck.start)
        request = await request_after_input(infra, database_url, topics, schema, "SE-O", seed=11)
        await _held_at(stuck, sentinel, "before-commit")  # the round's writes are done
        _kill(stuck)  # SIGKILL inside the round's transaction
        # nothing of the round is visible: no round row, no match, nothing in the outbox
        assert await read_model_count(database_url, schema, "rounds") == 0
        assert await read_model_count(database_url, schema, "matches") == 0
        assert await read_model_count(database_url, schema, "outbox") == 0

        await asyncio.to_thread(other.start)  # takes over the partitions
        out = await collect(infra.kafka, topics, one_round_complete)
        assert other.proc is not None
        assert other.proc.poll() is None  # the one replica alive ran the round
    finally:
        stuck.stop()
        other.stop()

    assert stuck.starts == 1
    assert stuck.proc is not None
    assert stuck.proc.returncode == -signal.SIGKILL
    assert [d["round_id"] for d in out.of("MatchingRoundCompleted")] == [str(request.data.round_id)]
    per_student = Counter(p["student_id"] for p in out.of("MatchProposed"))
    assert per_student
    assert max(per_student.values()) == 1
    assert await read_model_count(database_url, schema, "rounds") == 1
