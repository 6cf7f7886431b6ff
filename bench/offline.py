"""Benchmark of the offline command, `apl match`, at national scale.

    .venv/bin/python -m bench.offline [--students 100000] [--seed 7] [--repeat 3]
                                      [--data DIR] [--no-before]

One seeded synthetic round (`devtools.synthetic`: 13 regions, ~1.25 slots per student, five
choices) is written as JSON Lines, every placement with a supervisor whose address is its own
(`handledare.<placement>@<company>.example.se`: as many distinct addresses as placements, and
one host name per company). Then, each `--repeat` times, in a new process each:

* `apl match` without and with `--fill` (`python -m services.cli match ... --timings`):
  the seconds it spends reading and validating the files (`read`), solving (`solved`: the
  engine's `solve`, outcomes and figures included) and writing `--out` (`wrote`), and the
  wall time of the whole process (interpreter start, imports and freeing included);

and, in this process, in the same run:

* `parse`: pydantic's JSON parser alone over every line of both files, no validation: the
  limit that reading with validation is measured against (`read/parse`);
* `before`: both files read as `apl match` read them before (the text layer, one
  `model_validate_json` a line with the cyclic collector running, `EmailStr` checking every
  address), against `now`: `services.matching.cli.load` as the command runs it (the collector
  paused as the command pauses it).

Medians over the repeats are printed; the machine may be shared, so the spread is printed too.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pydantic_core
from pydantic import EmailStr

from devtools.synthetic import generate_round
from services.matching import cli
from services.matching.engine.gcpause import paused_gc
from shared.contracts.profiles import PlacementOffer, StudentProfile, Supervisor

STUDENTS_FILE, PLACEMENTS_FILE = "students.jsonl", "placements.jsonl"


def write_round(n: int, seed: int, folder: Path) -> None:
    """The seeded round as the two input files (kept: a second run with the same --data,
    students and seed reuses them)."""
    stamp = folder / "round.json"
    if stamp.exists() and json.loads(stamp.read_text()) == {"students": n, "seed": seed}:
        return
    rnd = generate_round(n, seed=seed)
    with open(folder / STUDENTS_FILE, "w", encoding="utf-8") as out:
        out.writelines(s.model_dump_json(exclude_none=True) + "\n" for s in rnd.students)
    with open(folder / PLACEMENTS_FILE, "w", encoding="utf-8") as out:
        for i, p in enumerate(rnd.placements):
            supervisor = Supervisor(
                name=f"Handledare {i}",
                email=f"handledare.{p.placement_id}@{p.company_id}.example.se",
                language="sv",
            )
            offer = p.model_copy(update={"supervisor": supervisor})
            out.write(offer.model_dump_json(exclude_none=True) + "\n")
    stamp.write_text(json.dumps({"students": n, "seed": seed}))


def run_command(folder: Path, *, fill: bool) -> dict[str, float]:
    """One `apl match` in a new process: its own read/solved/wrote seconds and the wall."""
    out = folder / "out.jsonl"
    command = [sys.executable, "-m", "services.cli", "match", "--timings"]
    command += ["--students", str(folder / STUDENTS_FILE)]
    command += ["--placements", str(folder / PLACEMENTS_FILE), "--out", str(out)]
    if fill:
        command.append("--fill")
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 (our own command)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"apl match failed ({done.returncode}): {done.stderr.strip()}")
    # "apl match: read 1.234 s, solved 0.987 s, wrote 0.100 s"
    words = done.stderr.strip().splitlines()[-1].removeprefix("apl match: ").split(", ")
    figures = {w.split()[0]: float(w.split()[1]) for w in words}
    figures["wall"] = wall
    return figures


class _SupervisorBefore(Supervisor):
    email: EmailStr  # the contract's type before #16 item 7


class _OfferBefore(PlacementOffer):
    supervisor: _SupervisorBefore | None = None


def read_before(path: Path, model: type[StudentProfile] | type[PlacementOffer]) -> int:
    """The file read as `apl match` read it before: text lines, `model_validate_json` each,
    the collector running."""
    count = 0
    with open(path, encoding="utf-8", newline="") as handle:
        for line in handle:
            if line.strip():
                model.model_validate_json(line)
                count += 1
    return count


def parse_only(path: Path) -> int:
    with open(path, "rb") as handle:
        lines = handle.read().decode("utf-8").split("\n")
    return len([pydantic_core.from_json(line) for line in lines if line.strip()])


def read_now(folder: Path) -> int:
    problems = cli.Problems()
    with paused_gc():
        students = cli.load(str(folder / STUDENTS_FILE), StudentProfile, problems)
        placements = cli.load(str(folder / PLACEMENTS_FILE), PlacementOffer, problems)
        if problems.lines:
            raise SystemExit("\n".join(problems.lines[:5]))
        count = len(students.records) + len(placements.records)
        del students, placements  # freed with the collector still paused, as in the command
    return count


def timed(fn: Callable[[], object]) -> float:
    gc.collect()
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _median(values: list[float]) -> str:
    spread = f"{min(values):.2f}-{max(values):.2f}" if len(values) > 1 else ""
    return f"{statistics.median(values):7.2f} {spread:>11}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.offline", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--students", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--data", help="folder for the input files (kept); default: a temporary one"
    )
    parser.add_argument(
        "--no-before", action="store_true", help="skip reading the files the former way"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="apl-bench-offline-") as scratch:
        folder = Path(args.data or scratch)
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        write_round(args.students, args.seed, folder)
        with open(folder / PLACEMENTS_FILE, encoding="utf-8") as handle:
            lines = sum(1 for _ in handle)
        print(
            f"{args.students} students, {lines} placements (and supervisor addresses) "
            f"ready in {time.perf_counter() - started:.1f} s; {args.repeat} repeats, medians "
            "(min-max)"
        )
        runs: dict[str, dict[str, list[float]]] = {"apl match": {}, "apl match --fill": {}}
        reads: dict[str, list[float]] = {"parse": [], "now": [], "before": []}
        for _ in range(args.repeat):
            for name, fill in (("apl match", False), ("apl match --fill", True)):
                for key, value in run_command(folder, fill=fill).items():
                    runs[name].setdefault(key, []).append(value)
            reads["parse"].append(
                timed(lambda: [parse_only(folder / f) for f in (STUDENTS_FILE, PLACEMENTS_FILE)])
            )
            reads["now"].append(timed(lambda: read_now(folder)))
            if not args.no_before:
                reads["before"].append(
                    timed(
                        lambda: (
                            read_before(folder / STUDENTS_FILE, StudentProfile),
                            read_before(folder / PLACEMENTS_FILE, _OfferBefore),
                        )
                    )
                )
        print(f"{'':18} {'read_s':>19} {'solve_s':>19} {'write_s':>19} {'wall_s':>19}")
        for name, figures in runs.items():
            cells = [_median(figures[k]) for k in ("read", "solved", "wrote", "wall")]
            print(f"{name:18} " + " ".join(cells))
        parse = statistics.median(reads["parse"])
        now = statistics.median(reads["now"])
        print(
            f"reading, same run: parse only {_median(reads['parse'])}, now {_median(reads['now'])}"
        )
        read_s = statistics.median(runs["apl match"]["read"])
        print(
            f"  apl match read / parse limit: {read_s / parse:.1f}x; "
            f"now / parse: {now / parse:.1f}x"
        )
        if reads["before"]:
            before = statistics.median(reads["before"])
            print(f"  before {_median(reads['before'])}: before / now {before / now:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
