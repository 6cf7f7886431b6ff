"""The demo's report of the competence gap, from the gap reports its coordinators read."""

from __future__ import annotations

from typing import Any

from devtools.demo.run import _gap_report


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
