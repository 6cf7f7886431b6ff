"""Two matching replicas as separate processes in one consumer group give the one-replica result."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from shared.contracts import events as ev
from shared.contracts.topics import Topics
from tests.integration.matching.support import (
    Output,
    collect,
    prepared_schema,
    publish_all,
    region_input,
    replica,
    round_request,
    standing,
    wait_for_read_model,
)
from tests.support.infra import Infra
from tests.support.metrics import metric_total

pytestmark = pytest.mark.infra

REGIONS = ("SE-AB", "SE-O", "SE-M", "FI-19")
STUDENTS, PLACEMENTS = 60, 25


def _input() -> tuple[list[ev.Event], list[ev.Event]]:
    placements: list[ev.Event] = []
    students: list[ev.Event] = []
    for i, region in enumerate(REGIONS):
        p, s = region_input(region, STUDENTS, PLACEMENTS, seed=i)
        placements += p
        students += s
    return placements, students


async def _scenario(
    infra: Infra,
    database_url: str,
    make_topics: Callable[[], Awaitable[Topics]],
    log_dir: Path,
    replicas: int,
) -> tuple[Output, list[ev.MatchingRoundRequested]]:
    topics = await make_topics()
    schema, env = await prepared_schema(infra, database_url, topics)
    names = [f"matching-{chr(ord('a') + i)}" for i in range(replicas)]
    procs = [replica(env, log_dir / f"r{replicas}", name) for name in names]
    placements, students = _input()
    half = len(students) // 2
    try:
        await asyncio.to_thread(procs[0].start)
        await publish_all(infra.kafka, topics, [*placements, *students[:half]])
        # the other replicas join while events flow: the group rebalances mid-stream
        await asyncio.gather(*(asyncio.to_thread(p.start) for p in procs[1:]))
        await publish_all(infra.kafka, topics, students[half:])
        await wait_for_read_model(database_url, schema, placements, students)
        requests = [round_request(r) for r in REGIONS]
        await publish_all(infra.kafka, topics, requests)
        # Then one more request per region (same partition as the first, so handled after it):
        # once all of them completed, anything the first requests caused has been published,
        # a duplicate round included.
        sentinels = [round_request(r) for r in REGIONS]
        await publish_all(infra.kafka, topics, sentinels)
        later = {str(r.data.round_id) for r in sentinels}

        def complete(out: Output) -> bool:
            done = out.of("MatchingRoundCompleted")
            return later <= {d["round_id"] for d in done} and sum(
                d["proposed"] for d in done
            ) == len(out.of("MatchProposed"))

        out = await collect(infra.kafka, topics, complete)
        # a replica joining mid-stream hands no batch over twice (shared/rebalance.py): no
        # event reached the inbox a second time
        duplicated = [await metric_total(p.url, "apl_events_duplicated_total") for p in procs]
        assert duplicated == [0.0] * replicas
    finally:
        for p in procs:
            p.stop()
    last = [d for d in out.of("MatchingRoundCompleted") if d["round_id"] in later]
    assert [(d["proposed"], d["cancelled"]) for d in last] == [(0, 0)] * len(REGIONS)
    out.events = {k: e for k, e in out.events.items() if e["data"].get("round_id") not in later}
    return out, requests


async def test_two_replicas_match_like_one(
    infra: Infra,
    database_url: str,
    make_topics: Callable[[], Awaitable[Topics]],
    tmp_path: Path,
) -> None:
    one, _ = await _scenario(infra, database_url, make_topics, tmp_path, replicas=1)
    two, requests = await _scenario(infra, database_url, make_topics, tmp_path, replicas=2)

    rounds = Counter(d["round_id"] for d in two.of("MatchingRoundCompleted"))
    assert rounds == Counter({str(r.data.round_id): 1 for r in requests})
    proposed = Counter(p["student_id"] for p in two.of("MatchProposed"))
    assert proposed
    assert max(proposed.values()) == 1
    capacity = {
        e.data.placement_id: e.data.capacity
        for e in _input()[0]
        if isinstance(e, ev.PlacementPosted)
    }
    per_placement = Counter(standing(two).values())
    assert all(n <= capacity[pid] for pid, n in per_placement.items())
    assert standing(two) == standing(one)
    assert len(standing(one)) == sum(
        d["figures"]["placed"] for d in one.of("MatchingRoundCompleted")
    )
    # one completed round per region in both runs
    for out in (one, two):
        assert len(out.of("MatchingRoundCompleted")) == len(REGIONS)
