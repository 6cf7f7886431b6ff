"""The offline `apl match --explain` and the services say the same thing about a student.

One generated region is matched twice: offline by the CLI (`--fill --explain S`, its stdout),
and as the matching service does it (its solver port, then every outcome through the contract's
JSON as Kafka carries it). The placements service words a kept outcome with `shared.explain`
in the reader's language; in English that must be the CLI's text, line for line, for every kind
of outcome the round has (first choice, a worse choice, filled, unplaced).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from devtools.synthetic import generate_round
from services.matching.adapters.engine import engine_solver
from services.matching.cli import main as apl_match
from services.matching.domain.model import RoundProblem
from services.matching.handlers import outcome_parts
from services.placements.entrypoints.web.i18n import Words
from shared.contracts import events as ev
from shared.contracts.outcomes import StudentOutcome
from shared.contracts.profiles import PlacementOffer, StudentProfile
from shared.explain import describe

REGION = "SE-AB"


def _round() -> tuple[list[StudentProfile], list[PlacementOffer]]:
    generated = generate_round(400, seed=11)
    placements = [p.model_copy(update={"region": REGION}) for p in generated.placements]
    students = [s.model_copy(update={"region": REGION}) for s in generated.students]
    return students, placements


def _kinds(outcomes: list[StudentOutcome]) -> dict[str, StudentOutcome]:
    """One outcome of each kind the round has."""
    found: dict[str, StudentOutcome] = {}
    for o in outcomes:
        if o.filled:
            kind = "filled"
        elif o.placement_id is None:
            kind = "unplaced"
        elif o.rank == 1:
            kind = "first"
        else:
            kind = "worse"
        found.setdefault(kind, o)
    return found


def test_offline_and_online_explanations_are_the_same_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    students, placements = _round()
    solved = engine_solver(
        RoundProblem(students=tuple(students), placements=tuple(placements), fill=True)
    )
    # As Kafka carries them: the contract's JSON, parsed back.
    parts = outcome_parts(uuid.uuid4(), REGION, solved.student_outcomes, dry_run=False)
    carried = [
        o
        for part in parts
        for o in ev.parse_as(ev.MatchingRoundOutcomes, part.to_json()).data.outcomes
    ]
    kinds = _kinds(carried)
    assert set(kinds) == {"first", "worse", "filled", "unplaced"}, sorted(kinds)

    s_file, p_file = tmp_path / "students.jsonl", tmp_path / "placements.jsonl"
    s_file.write_text("".join(s.model_dump_json() + "\n" for s in students))
    p_file.write_text("".join(p.model_dump_json() + "\n" for p in placements))
    words = Words("en")
    for kind, outcome in kinds.items():
        out = tmp_path / f"{kind}.jsonl"
        code = apl_match(
            [
                "--students",
                str(s_file),
                "--placements",
                str(p_file),
                "--out",
                str(out),
                "--fill",
                "--explain",
                outcome.student_id,
            ]
        )
        assert code == 0
        offline = capsys.readouterr().out.splitlines()
        assert offline == describe(outcome, words), kind
        line = next(
            json.loads(x)
            for x in out.read_text().splitlines()
            if json.loads(x)["student_id"] == outcome.student_id
        )
        assert (line["placement_id"], line["rank"], line["filled"]) == (
            outcome.placement_id,
            outcome.rank,
            outcome.filled,
        )
    # Swedish and Finnish word the same codes in other words, with the same figures.
    unplaced = kinds["unplaced"]
    for lang in ("sv", "fi"):
        lines = describe(unplaced, Words(lang))
        assert len(lines) == len(describe(unplaced, words))
        assert lines != describe(unplaced, words)
