"""`apl match` with teachers: a round of teachers from CSV (`available_weeks` a `;` list),
explained in the weeks' words, and a round that mixes students and teachers refused with every
offending line named, no output written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.matching import cli

TEACHERS_CSV = (
    "student_id,participant,subject,region,skills,available_weeks,preferences\n"
    "t1,teacher,Electrical installation,SE-AB,battery-hv,2027-W10;2027-W11,w1;w2\n"
    "t2,teacher,Automation,SE-AB,battery-hv,,w1\n"
)
PERIODS_CSV = (
    "placement_id,kind,company_id,region,capacity,required_skills,starts_on,ends_on\n"
    "w1,teacher,c1,SE-AB,1,battery-hv,2027-03-08,2027-03-24\n"
    "w2,teacher,c2,SE-AB,1,battery-hv,2027-03-08,2027-03-19\n"
)


def _run(tmp_path: Path, students: str, placements: str, *extra: str) -> int:
    s, p = tmp_path / "people.csv", tmp_path / "places.csv"
    s.write_text(students)
    p.write_text(placements)
    out = tmp_path / "out.jsonl"
    return cli.main(["--students", str(s), "--placements", str(p), "--out", str(out), *extra])


def test_a_round_of_teachers_from_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(tmp_path, TEACHERS_CSV, PERIODS_CSV, "--explain", "t1") == 0
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    # w1 touches 2027-W12, which t1 did not give: t1 gets w2; t2 (no week limit) gets w1
    assert [(o["student_id"], o["placement_id"], o["rank"]) for o in lines] == [
        ("t1", "w2", 2),
        ("t2", "w1", 1),
    ]
    assert capsys.readouterr().out.splitlines() == [
        "Placed at w2, choice 2.",
        "Choice 1 (w1): period 2027-03-08 to 2027-03-24 touches week 2027-W12, not among the "
        "available weeks",
    ]


def test_students_and_teachers_in_one_round_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mixed = TEACHERS_CSV + "s1,student,,SE-AB,wiring,,w1\n"
    placements = PERIODS_CSV + "p1,student,c3,SE-AB,1,,,\n"
    assert _run(tmp_path, mixed, placements) == 2
    err = capsys.readouterr().err.splitlines()
    people, places = str(tmp_path / "people.csv"), str(tmp_path / "places.csv")
    assert err == [
        f"{people}:4: participant: a student in a round of teachers (by the first student's); "
        "rounds never mix students and teachers",
        f"{places}:4: kind: a placement for students in a round of teachers (by the first "
        "student's); rounds never mix students and teachers",
    ]
    assert not (tmp_path / "out.jsonl").exists()
