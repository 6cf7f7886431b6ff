"""Input wake-ups across replicas (services/matching/wakeup.py) on the real PostgreSQL: an input
applied on one replica wakes the rounds another replica has waiting on the same producer and
region, by NOTIFY, and no other round."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest

from services.matching.wakeup import InputSignals
from tests.support.waiting import eventually

pytestmark = pytest.mark.infra


async def test_an_input_applied_on_one_replica_wakes_the_rounds_waiting_on_another(
    database_url: str,
) -> None:
    schema = f"wake_{uuid.uuid4().hex[:8]}"  # only names the channel: nothing is created
    here, there = InputSignals(), InputSignals()
    elsewhere = InputSignals()  # another schema's replica: never woken by ours
    tasks = [
        asyncio.create_task(here.run(database_url, schema)),
        asyncio.create_task(there.run(database_url, schema)),
        asyncio.create_task(elsewhere.run(database_url, f"{schema}_other")),
    ]
    try:
        await eventually(
            lambda: here.listening and there.listening and elsewhere.listening,
            wait=30,
            interval=0.02,
            what="the listeners",
        )
        waiting = there.ticket("placements", "SE-AB")
        other_region = there.ticket("placements", "SE-O")
        other_schema = elsewhere.ticket("placements", "SE-AB")
        here.applied("placements", "SE-AB")
        await asyncio.wait_for(waiting.wait(), 10)
        await asyncio.sleep(0.2)  # time for a wrong wake-up to arrive too
        assert not other_region.is_set()
        assert not other_schema.is_set()
        # after a wake-up the next wait needs the next input
        again = there.ticket("placements", "SE-AB")
        assert again is not waiting
        assert not again.is_set()
        here.applied("placements", "SE-AB")
        await asyncio.wait_for(again.wait(), 10)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
