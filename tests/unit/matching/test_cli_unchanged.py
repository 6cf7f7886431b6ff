"""`apl match` answers as it did before its reading was made faster (#16 item 7).

tests/unit/matching/data/cli holds a 240-student round (from `devtools.synthetic`, with
supervisors; padded and non-ASCII ids, a U+2028 inside an id, a blank line; placements with
CRLF line ends and e-mail addresses in every form `EmailStr` accepts; pins without a final line
end), files with bad records of every kind (bad JSON, field errors, model checks, bad e-mail
addresses; CR line ends), a file that is not UTF-8, and in `expected.json` the exit code,
stdout and stderr that the former `apl match` gave for each run, its `--out` files
(`<run>.out.jsonl`) and summaries (`<run>.summary.json`, `solve_seconds` set to 0). The former
command read each line through the text layer and `model_validate_json`, with the cyclic
collector running and `EmailStr` checking every address; it wrote each line with `json.dumps`.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
from pathlib import Path

import msgspec
import pytest

from services.matching import cli
from services.matching.engine import Outcome

DATA = Path(__file__).parent / "data" / "cli"
EXPECTED: dict[str, dict[str, object]] = json.loads((DATA / "expected.json").read_text("utf-8"))


@pytest.fixture
def inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The inputs in a working directory of their own (stderr names them as given)."""
    for path in DATA.glob("*.jsonl"):
        shutil.copy(path, tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("parallel", [False, True], ids=["read here", "read by children"])
@pytest.mark.parametrize("run", sorted(EXPECTED))
def test_same_outputs_and_errors_as_before(
    run: str,
    parallel: bool,
    inputs: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Read here, or (as for national inputs) by forked children while the engine loads."""
    monkeypatch.setattr(cli, "PARALLEL_MIN_BYTES", 0 if parallel else 1 << 60)
    forks: list[int] = []
    fork = os.fork

    def counted() -> int:
        forks.append(1)
        return fork()

    monkeypatch.setattr(os, "fork", counted)
    expected = EXPECTED[run]
    args = expected["args"]
    assert isinstance(args, list)
    for name in (f"{run}.out.jsonl", f"{run}.summary.json"):
        (inputs / name).unlink(missing_ok=True)  # the pinned run reads optimal.out.jsonl

    assert cli.main(args) == expected["code"]
    assert len(forks) == (2 if parallel else 0)  # students and placements
    got = capsys.readouterr()
    assert (got.out, got.err) == (expected["stdout"], expected["stderr"])
    assert gc.isenabled()  # the collector is paused for the run only

    for before in DATA.glob(f"{run}.*"):
        after = inputs / before.name
        if before.name.endswith(".summary.json"):
            figures = json.loads(after.read_text())
            assert figures["solve_seconds"] > 0
            figures["solve_seconds"] = 0
            assert json.dumps(figures, indent=2) + "\n" == before.read_text()
        else:
            assert after.read_bytes() == before.read_bytes(), before.name
    if expected["code"] != 0:  # nothing written on bad input
        assert not (inputs / str(args[args.index("--out") + 1])).exists()


def test_every_run_is_compared() -> None:
    """The data set covers the successful runs and the bad inputs."""
    assert {"optimal", "fill", "stable", "pinned", "bad", "not_utf8"} <= set(EXPECTED)
    assert "supervisor.email: value is not a valid email address" in str(EXPECTED["bad"])


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome("s-1", "p-1", 1, None, filled=False),
        Outcome("s-2", None, None, "choices_full"),
        Outcome("s-3", "p-9", None, None, filled=True),
        Outcome('s-"Åsa"\\\n\t\x00\u2028😀', 'p-"ä"', 10**30, None, filled=True),
    ],
)
def test_out_lines_are_json_dumps_of_each_outcome(outcome: Outcome) -> None:
    assert list(cli.outcome_lines([outcome])) == [json.dumps(outcome.as_dict()) + "\n"]


class _Other(Outcome):
    """An outcome of other shapes than the writer knows: written by `json.dumps`."""

    def as_dict(self) -> dict[str, str | int | bool | None]:
        return {"student_id": self.student_id, "rank": self.rank, "extra": True}


def test_outcomes_of_another_shape_are_written_by_json_dumps() -> None:
    odd = [
        _Other("s-1", "p-1", 2, None),
        Outcome("s-2", "p-1", rank=True, reason=None),  # a bool where the rank goes
        Outcome("s-3", "p-1", 2.0, None),  # type: ignore[arg-type]  # a float rank
    ]
    assert list(cli.outcome_lines(odd)) == [json.dumps(o.as_dict()) + "\n" for o in odd]
    assert list(cli.outcome_lines(odd))[1] == (
        '{"student_id": "s-2", "placement_id": "p-1", "rank": true, "filled": false, '
        '"reason": null}\n'
    )


def test_a_failing_child_is_read_again_here(
    inputs: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child that cannot send its records ends with a failure, and the file is read here."""
    monkeypatch.setattr(cli, "PARALLEL_MIN_BYTES", 0)

    def broken(_: object) -> bytes:
        raise RuntimeError("cannot send")

    monkeypatch.setattr(msgspec.msgpack, "encode", broken)
    expected = EXPECTED["optimal"]
    args = expected["args"]
    assert isinstance(args, list)
    assert cli.main(args) == expected["code"]
    got = capsys.readouterr()
    assert (got.out, got.err) == (expected["stdout"], expected["stderr"])
    assert (inputs / "optimal.out.jsonl").read_bytes() == (DATA / "optimal.out.jsonl").read_bytes()
