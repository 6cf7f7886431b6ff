"""`apl match` end to end through `main`, with files in a temporary directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.matching import cli
from services.matching.engine import api as engine_api

STUDENTS: list[dict[str, object]] = [
    {
        "student_id": "s1",
        "region": "SE-AB",
        "programme": "EE",
        "skills": ["wiring"],
        "preferences": ["p1", "p2", "gone"],
    },
    {"student_id": "s2", "region": "SE-AB", "preferences": ["p1"], "priority": 1},
    {"student_id": "s3", "region": "SE-AB", "preferences": ["p2", "p1"]},
]
PLACEMENTS_CSV = (
    "placement_id,company_id,region,capacity,required_skills,programmes,site_lat,site_lon,ranking\n"
    "p1,c1,SE-AB,1,,,59.3,18.0,s1;s2\n"
    "p2,c2,SE-AB,1,wiring,EE,,,\n"
)


def _jsonl(path: Path, rows: list[dict[str, object]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "placements.csv").write_text(PLACEMENTS_CSV)
    return {
        "students": _jsonl(tmp_path / "students.jsonl", STUDENTS),
        "placements": str(tmp_path / "placements.csv"),
        "out": str(tmp_path / "out.jsonl"),
        "summary": str(tmp_path / "summary.json"),
    }


def _run(files: dict[str, str], *extra: str) -> int:
    args = [
        "--students",
        files["students"],
        "--placements",
        files["placements"],
        "--out",
        files["out"],
    ]
    return cli.main([*args, "--summary", files["summary"], *extra])


def test_jsonl_and_csv_in_jsonl_out(
    files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(files, "--explain", "s3") == 0
    out = [json.loads(line) for line in Path(files["out"]).read_text().splitlines()]
    assert out == [
        {"student_id": "s1", "placement_id": "p2", "rank": 2, "filled": False, "reason": None},
        {"student_id": "s2", "placement_id": "p1", "rank": 1, "filled": False, "reason": None},
        {
            "student_id": "s3",
            "placement_id": None,
            "rank": None,
            "filled": False,
            "reason": "choices_full",
        },
    ]
    summary = json.loads(Path(files["summary"]).read_text())
    assert summary["placed"] == 2
    assert summary["unknown_preferences"] == 1
    assert summary["blocking_pairs"] == 1  # p1 ranks s1 above s2
    assert set(summary) == {
        "students",
        "placed",
        "filled",
        "placed_weight",
        "total_rank_cost",
        "first_choice",
        "top3",
        "unknown_preferences",
        "no_eligible_vacancy",
        "blocking_pairs",
        "solve_seconds",
        "solver",
    }
    assert (summary["filled"], summary["no_eligible_vacancy"]) == (0, 0)
    assert capsys.readouterr().out.splitlines() == [
        "Not placed: every choice that fits was needed by others.",
        "Choice 1 (p2): lacks the required skill wiring; no programme given; it accepts EE",
        "Choice 2 (p1): full: its 1 slot went to 1 student of higher priority",
    ]


def test_fill_places_the_unplaced_at_vacancies(
    files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "placements.csv").write_text(
        PLACEMENTS_CSV + "p3,c3,SE-AB,2,,,59.4,18.1,\n" + "p4,c4,SE-O,1,,,,,\n"
    )
    assert _run(files, "--fill", "--explain", "s3") == 0
    out = [json.loads(line) for line in Path(files["out"]).read_text().splitlines()]
    assert out[2] == {
        "student_id": "s3",
        "placement_id": "p3",
        "rank": None,
        "filled": True,
        "reason": None,
    }
    assert [o["filled"] for o in out[:2]] == [False, False]
    summary = json.loads(Path(files["summary"]).read_text())
    assert (summary["placed"], summary["filled"], summary["no_eligible_vacancy"]) == (3, 1, 0)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Placed at p3: a vacancy that fits, not among the choices."
    assert len(lines) == 3  # both choices explained
    # An earlier --out with "filled" is a valid --previous.
    files["previous"] = str(tmp_path / "previous.jsonl")
    Path(files["previous"]).write_text(Path(files["out"]).read_text())
    assert _run(files, "--fill", "--previous", files["previous"]) == 0


def test_fill_leaves_no_eligible_vacancy(files: dict[str, str]) -> None:
    assert _run(files, "--fill") == 0
    out = [json.loads(line) for line in Path(files["out"]).read_text().splitlines()]
    assert out[2]["reason"] == "no_eligible_vacancy"
    summary = json.loads(Path(files["summary"]).read_text())
    assert (summary["filled"], summary["no_eligible_vacancy"]) == (0, 1)


def test_students_as_csv_and_stable_policy(files: dict[str, str], tmp_path: Path) -> None:
    csv_path = tmp_path / "students.csv"
    csv_path.write_text(
        "student_id,region,programme,skills,preferences,priority,home_lat,home_lon,max_travel_km\n"
        "s1,SE-AB,EE,wiring,p1;p2;gone,,59.3,18.0,10\n"
        "s2,SE-AB,,,p1,1,,,\n"
        "s3,SE-AB,,,p2;p1,,,,\n"
    )
    files["students"] = str(csv_path)
    assert _run(files, "--policy", "stable") == 0
    out = [json.loads(line) for line in Path(files["out"]).read_text().splitlines()]
    assert [o["placement_id"] for o in out] == ["p1", None, None]
    assert json.loads(Path(files["summary"]).read_text())["blocking_pairs"] == 0


def test_bad_input_lists_every_problem_and_writes_nothing(
    files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"student_id": "s1", "region": "SE-AB", "preferences": ["p1", "p1"]}\n'
        "\n"
        '{"student_id": "", "region": "SE-AB", "priority": -1, "colour": "red"}\n'
        "not json\n"
        '{"student_id": "s4", "region": "SE-AB", "home": {"lat": 100}}\n'
    )
    files["students"] = str(bad)
    assert _run(files) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{bad}:1: preferences: 'p1' is listed more than once",
        f"{bad}:3: student_id: String should have at least 1 character",
        f"{bad}:3: priority: Input should be greater than or equal to 0",
        f"{bad}:3: colour: Extra inputs are not permitted",
        f"{bad}:4: -: Invalid JSON: expected ident at line 1 column 2",
        f"{bad}:5: home.lat: Input should be less than or equal to 90",
        f"{bad}:5: home.lon: Field required",
    ]
    assert not Path(files["out"]).exists()
    assert not Path(files["summary"]).exists()


def test_bad_csv_cells(
    files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "placements.csv"
    bad.write_text(
        "placement_id,company_id,region,capacity,site_lat\n"
        "p1,c1,SE-AB,two,59.3\n"
        "p2,c2,SE-AB,1,\n"
        "p1,c3,SE-AB,1,\n"
    )
    files["placements"] = str(bad)
    assert _run(files) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{bad}:2: capacity: Input should be a valid integer",
        f"{bad}:2: site.lon: Field required",
    ]
    assert not Path(files["out"]).exists()


def test_engine_input_errors_point_at_lines(
    files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pins = _jsonl(
        tmp_path / "pinned.jsonl",
        [
            {"student_id": "s1", "placement_id": "p1"},
            {"student_id": "s2", "placement_id": "p1"},
            {"student_id": "ghost", "placement_id": "p2"},
        ],
    )
    assert _run(files, "--pinned", pins) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{pins}:2: placement_id: placement 'p1' has capacity 1, pinned beyond it",
        f"{pins}:3: student_id: unknown student 'ghost'",
    ]
    assert not Path(files["out"]).exists()


def test_duplicate_student_ids(
    files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files["students"] = _jsonl(tmp_path / "dup.jsonl", [STUDENTS[0], STUDENTS[1], STUDENTS[0]])
    assert _run(files) == 2
    assert capsys.readouterr().err.strip() == (
        f"{files['students']}:3: student_id: 's1' appears more than once (first at 0)"
    )


def test_previous_run_output_is_accepted(files: dict[str, str], tmp_path: Path) -> None:
    assert _run(files) == 0
    previous = tmp_path / "previous.jsonl"
    Path(files["out"]).rename(previous)
    assert _run(files, "--previous", str(previous)) == 0
    assert Path(files["out"]).exists()


def test_missing_file_and_usage_errors(
    files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    files["students"] = "/nonexistent/students.jsonl"
    assert _run(files) == 2
    assert capsys.readouterr().err.startswith("/nonexistent/students.jsonl:0: -: cannot read")
    assert cli.main(["--students", "x"]) == 2
    assert cli.main(["--students", "a", "--placements", "b", "--out", "c", "--policy", "best"]) == 2


def test_unknown_explain_id(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(files, "--explain", "nobody") == 2
    assert "unknown student 'nobody'" in capsys.readouterr().err
    assert not Path(files["out"]).exists()


def test_unwritable_output_is_reported_and_leaves_nothing(
    files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files["out"] = str(tmp_path / "missing" / "out.jsonl")
    assert _run(files) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{files['out']}:0: -: cannot write: ")
    assert len(err.splitlines()) == 1
    assert not Path(files["summary"]).exists()

    files["out"] = str(tmp_path / "out.jsonl")
    files["summary"] = str(tmp_path)  # a directory
    assert _run(files) == 2
    assert capsys.readouterr().err.startswith(f"{tmp_path}:0: -: cannot write: ")
    assert not Path(files["out"]).exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_internal_error_is_one_line(
    files: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("solver exploded")

    monkeypatch.setattr(engine_api, "solve", boom)  # the command imports it when it runs
    assert _run(files) == 1
    assert capsys.readouterr().err == "apl match: internal error: RuntimeError: solver exploded\n"
    assert not Path(files["out"]).exists()
