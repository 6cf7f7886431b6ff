"""Automatic rounds: debounced per region, retried after a failure, stopped by close()."""

from __future__ import annotations

import asyncio

from services.matching.auto import AutoRounds
from tests.support.waiting import eventually


def _auto(runs: list[str], *, fail_first: int = 0) -> AutoRounds:
    failures = {"left": fail_first}

    async def run_round(region: str) -> None:
        runs.append(region)
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("database unavailable")

    return AutoRounds(
        run_round=run_round,
        is_automatic=lambda r: r.startswith("SE-"),
        delay=0.05,
        retry_delay=0.05,
    )


async def test_a_burst_of_changes_runs_one_round_per_region() -> None:
    runs: list[str] = []
    auto = _auto(runs)
    for _ in range(3):
        auto.touch(["SE-AB"])
    auto.touch(["SE-O", "SE-AB", "FI-19"])  # FI-19 is not in automatic mode
    assert not auto.idle
    await eventually(lambda: auto.idle, wait=5, interval=0.01, what="the rounds")
    assert sorted(runs) == ["SE-AB", "SE-O"]  # idle: nothing else is scheduled


async def test_a_failed_round_is_tried_again() -> None:
    runs: list[str] = []
    auto = _auto(runs, fail_first=1)
    auto.touch(["SE-AB"])
    await eventually(lambda: auto.idle and len(runs) >= 2, wait=5, interval=0.01, what="a retry")
    assert runs == ["SE-AB", "SE-AB"]


async def test_regions_not_in_automatic_mode_schedule_nothing() -> None:
    runs: list[str] = []
    auto = _auto(runs)
    auto.touch(["FI-19"])
    assert auto.idle
    assert runs == []


async def test_run_cancels_what_is_scheduled_when_it_is_cancelled() -> None:
    runs: list[str] = []
    auto = _auto(runs)
    auto.delay = 60.0
    task = asyncio.create_task(auto.run())
    await asyncio.sleep(0)  # let it start
    auto.touch(["SE-AB"])
    assert not auto.idle
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert auto.idle
    auto.touch(["SE-AB"])  # closed: a late change schedules nothing
    assert auto.idle
    assert runs == []
