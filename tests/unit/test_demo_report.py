"""The demo's report of the competence gap, from the gap reports its coordinators read."""

from __future__ import annotations

import time
from typing import Any

import pytest

from devtools.demo.run import Phase, _gap_report, _phase_report, _wait_until


def _gap(term: str, free: int, empty: int, texts: list[str]) -> dict[str, Any]:
    return {
        "term": term,
        "term_name": "spring term 2027",
        "slots": 120,
        "rounds": [
            {"free_slots": free - 3, "empty_for_want": 0},
            {"free_slots": free, "empty_for_want": empty},
        ],
        "gaps": [{"text": t} for t in texts],
    }


def test_every_region_in_a_row_and_the_top_gaps_of_se_ab_in_words() -> None:
    gaps = {
        "SE-AB": _gap("2027-spring", 40, 2, ["69 slots needed `cad`; 342 students had it.", "x"]),
        "SE-O": _gap("2027-spring", 12, 0, []),
    }
    text = _gap_report(gaps)
    assert (
        "| SE-AB | 2027-spring | 120 | 40 | 2 | 69 slots needed `cad`; 342 students had it. |"
        in text
    )
    assert "| SE-O | 2027-spring | 120 | 12 | 0 | none |" in text  # the latest round's figures
    assert "Top 5 gaps of SE-AB, spring term 2027:" in text
    assert "1. 69 slots needed `cad`; 342 students had it.\n2. x" in text


def test_without_se_ab_the_first_region_is_told_and_without_regions_only_the_table() -> None:
    assert "Top 5 gaps of SE-O" in _gap_report({"SE-O": _gap("2027-spring", 1, 0, ["y"])})
    assert "Top" not in _gap_report({})


def test_each_phase_with_its_rate_and_the_time_to_the_last_notice() -> None:
    phases = [
        Phase("placements posted", 4663, "placements", 2.5),
        Phase("rounds completed", 13, "rounds", 3.0),
        Phase("round of teachers completed", 1, "rounds", 0.5),
        Phase("notices delivered", 13645, "notices", 23.1),
    ]
    text = _phase_report(phases, 31.84)
    assert "| placements posted | 4,663 placements | 2.5 | 1,865 |" in text
    assert "| rounds completed | 13 rounds | 3.0 | 4.3 |" in text
    assert "| round of teachers completed | 1 round | 0.5 | 2.0 |" in text
    assert "| notices delivered | 13,645 notices | 23.1 | 591 |" in text
    assert "From services ready to the last notice delivered: 31.8 s" in text


async def test_a_wait_says_its_rate(capsys: pytest.CaptureFixture[str]) -> None:
    seen = iter([(0, 4), (4, 4)])

    async def check() -> tuple[int, int]:
        return next(seen)

    async def check_again() -> tuple[int, int]:
        return 4, 4

    phase = await _wait_until("rounds completed", check, 10, "rounds")
    assert (phase.label, phase.count, phase.unit) == ("rounds completed", 4, "rounds")
    assert " rounds per second" in capsys.readouterr().err
    earlier = await _wait_until("again", check_again, 10, "rounds", since=time.monotonic() - 2)
    assert earlier.seconds >= 2
    assert "s since the work began" in capsys.readouterr().err
