"""`apl match`: solve one matching round offline, from files (docs/product.md, "Files and
the offline command").

    apl match --students S --placements P [--pinned F] [--previous F] --out O
              [--summary J] [--policy optimal|stable] [--fill] [--explain STUDENT_ID]
              [--timings]

`--fill` adds the fill phase (docs/engine.md, "Fill"): output lines say `"filled": true` for a
student placed at a vacancy it did not rank. `--explain` prints the student's explained
outcome in English, in the words the services use (`shared.explain.describe`). `--timings`
prints the seconds spent reading, solving and writing to stderr (bench/offline.py reads it).

Reading is the larger part of a national run (docs/engine.md, "Reading a national round"):
each file is read and decoded at once, every record decoded by the msgspec decoder derived
from its contract model (`shared.contracts.fastdecode`; a line it cannot be sure of goes to
the model's own validator), with the cyclic garbage collector paused (a one-off run frees
nothing before the end, and the collector would otherwise walk every record made so far
again and again), supervisors' addresses by `shared.contracts.email_address` (`EmailStr`'s
answers, sooner). Large inputs are read by two forked children while the engine is imported
and its kernel loaded (`Reading`), and the process ends without freeing its records. The
output is written as `json.dumps` wrote it, a line at a time, without its per-call overhead.

Inputs are JSON Lines, or CSV when the name ends in `.csv` (list fields separated by `;`,
`home`/`site` as `*_lat`/`*_lon` columns, `supervisor` as `supervisor_name`/`_email`/
`_language`, an empty cell meaning "absent"). Every input problem is printed to stderr as
`file:line: field: message`; then the exit code is 2 and no output file is written. An
output that cannot be written is reported the same way (`out:0: -: cannot write: ...`, exit
2, no output left). Exit 1 is an internal error (one line, no traceback); exit 0 success.
"""

from __future__ import annotations

import argparse
import csv
import errno
import io
import json
import os
import pickle
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TextIO, TypeVar

import msgspec
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.matching.engine.gcpause import paused_gc
from shared.contracts.fastdecode import fast_decoder
from shared.contracts.profiles import PinnedPair, PlacementOffer, StudentProfile

if TYPE_CHECKING:
    from services.matching.engine import Outcome, RoundResult

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

_LINE_END = re.compile(r"(\r\n|\r|\n)")
_json_str = json.encoder.encode_basestring_ascii  # what json.dumps writes for a str

LIST_FIELDS = frozenset(
    {"skills", "preferences", "required_skills", "programmes", "ranking", "available_weeks"}
)
INT_FIELDS = frozenset({"capacity", "priority", "rank"})
FLOAT_FIELDS = frozenset({"max_travel_km"})
# CSV column -> (point field, coordinate): `home_lat` -> home.lat
POINT_COLUMNS = {f"{pt}_{xy}": (pt, xy) for pt in ("home", "site") for xy in ("lat", "lon")}
PROGRESS_MIN = 10_000  # records; smaller inputs are quick enough to need no progress


class PreviousProposal(BaseModel):
    """A line of `--previous`: a pinned-style pair, or a line of an earlier `--out`."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    student_id: str = Field(min_length=1, description="Student id.")
    placement_id: str | None = Field(description="Previously proposed placement, or null.")
    rank: int | None = Field(default=None, description="Ignored.")
    filled: bool | None = Field(default=None, description="Ignored.")
    reason: str | None = Field(default=None, description="Ignored.")


@dataclass(slots=True)
class Loaded(Generic[T]):
    """Records of one file with the line each came from."""

    records: list[T]
    lines: list[int]


class Problems:
    """Collects `file:line: field: message` lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, path: str, line: int, field: str, message: str) -> None:
        self.lines.append(f"{path}:{line}: {field}: {message}")

    def add_validation(self, path: str, line: int, err: ValidationError) -> None:
        for e in err.errors(include_url=False):
            loc = ".".join(str(x) for x in e["loc"])
            msg = str(e["msg"]).removeprefix("Value error, ")
            if not loc and ": " in msg and msg.split(": ", 1)[0].isidentifier():
                loc, msg = msg.split(": ", 1)  # model-level checks name their field first
            self.add(path, line, loc or "-", msg)


def _progress(message: str, count: int) -> None:
    if count >= PROGRESS_MIN and sys.stderr.isatty():
        print(f"apl match: {message}", file=sys.stderr, flush=True)


def _jsonl_lines(text: str) -> Iterator[tuple[int, str, str]]:
    """(number, line, its line end) of every line that is not blank. Lines end at `\\n`,
    `\\r\\n` or `\\r`, as in a file opened with `newline=""` (a U+2028 inside a JSON
    string ends no line)."""
    if "\r" in text:
        parts = _LINE_END.split(text)
        ends = parts[1::2]
        ends.append("")
        for number, (line, end) in enumerate(zip(parts[0::2], ends, strict=True), start=1):
            if line.strip():
                yield number, line, end
        return
    lines = text.split("\n")
    last = len(lines)
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield number, line, "" if number == last else "\n"


def _csv_value(column: str, cell: str) -> Any:
    if column in LIST_FIELDS:
        return [item.strip() for item in cell.split(";") if item.strip()]
    if column in INT_FIELDS:
        try:
            return int(cell)
        except ValueError:
            return cell  # let validation name the field
    if column in FLOAT_FIELDS or column in POINT_COLUMNS:
        try:
            return float(cell)
        except ValueError:
            return cell
    return cell


def _csv_record(row: dict[str, str | None]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for column, raw in row.items():
        cell = (raw or "").strip()
        if not cell:
            continue
        if column in POINT_COLUMNS:
            point, coordinate = POINT_COLUMNS[column]
            record.setdefault(point, {})[coordinate] = _csv_value(column, cell)
        elif column.startswith("supervisor_"):
            record.setdefault("supervisor", {})[column.removeprefix("supervisor_")] = cell
        else:
            record[column] = _csv_value(column, cell)
    return record


def _csv_lines(handle: TextIO, path: str, problems: Problems) -> Iterator[tuple[int, str, str]]:
    reader = csv.DictReader(handle)
    if reader.fieldnames is None:
        return
    if None in reader.fieldnames or len(set(reader.fieldnames)) != len(reader.fieldnames):
        problems.add(path, 1, "-", "header has empty or repeated column names")
        return
    start = reader.line_num + 1
    for row in reader:
        if None in row:  # more cells than header columns
            problems.add(path, start, "-", "row has more cells than the header")
        elif any((v or "").strip() for v in row.values()):
            yield start, json.dumps(_csv_record(dict(row))), ""
        start = reader.line_num + 1


def _failure(validate: Callable[[str], object], text: str) -> ValidationError:
    """The error of validating `text`, which fails (it failed without its line end)."""
    try:
        validate(text)
    except ValidationError as err:
        return err
    raise AssertionError("a line passed with its line end that failed without it")


def load(path: str, model: type[M], problems: Problems) -> Loaded[M]:
    """Read and validate one input file; problems are collected, not raised.

    The file is read and decoded at once (a file that is not UTF-8 is one problem, at line
    0). Each record is validated by the contract model's own validator, as
    `model_validate_json` does it; a JSON line that fails is validated again with its line
    end, so that the error names the position it always named (`EOF while parsing an
    object at line 2 column 0`)."""
    loaded: Loaded[M] = Loaded([], [])
    try:
        with open(path, "rb") as raw:
            text = raw.read().decode("utf-8")
        lines = (
            _csv_lines(io.StringIO(text, newline=""), path, problems)
            if path.lower().endswith(".csv")
            else _jsonl_lines(text)
        )
        validate = model.__pydantic_validator__.validate_json
        fast = fast_decoder(model)
        decode = validate if fast is None else fast.decode
        records, numbers = loaded.records, loaded.lines
        for number, line, end in lines:
            try:
                record = decode(line)
            except ValidationError:
                problems.add_validation(path, number, _failure(validate, line + end))
            else:
                records.append(record)
                numbers.append(number)
    except OSError as err:
        problems.add(path, 0, "-", f"cannot read: {err.strerror or err}")
    except UnicodeDecodeError as err:
        problems.add(path, 0, "-", f"not UTF-8 text: {err.reason}")
    except csv.Error as err:
        problems.add(path, 0, "-", f"not valid CSV: {err}")
    return loaded


def _parallel_min_bytes(default: int = 4 << 20) -> int:
    raw = os.environ.get("APL_MATCH_PARALLEL_MIN_BYTES", "")
    return int(raw) if raw.strip().isdigit() else default  # anything else: the default


PARALLEL_MIN_BYTES = _parallel_min_bytes()
"""Inputs of at least this size (both files together; `APL_MATCH_PARALLEL_MIN_BYTES`, a
number of bytes) are read in child processes while the engine is imported and its kernel
loaded (`Reading`)."""


class Reading(Generic[M]):
    """One input file read by a forked child process while this one goes on; `result` gives
    what `load` would have given here.

    The child sends its records back through a pipe as msgpack: a record that took the fast
    way (`shared.contracts.fastdecode`) as its `Struct`, one pydantic validated as a pickle
    of the model, with the record's line numbers and the file's problems. Where there is no
    fork (not Linux), or the child fails, the file is read here instead, by `load`."""

    def __init__(self, path: str, model: type[M], *, fork: bool) -> None:
        self.path, self.model = path, model
        self._child: tuple[int, int] | None = None  # (pid, read end of the pipe)
        fast = fast_decoder(model)
        if not fork or fast is None:
            return
        records_type: Any = list[fast.struct | bytes]  # type: ignore[name-defined]
        self._batch: Any = msgspec.defstruct(
            "Batch", [("records", records_type), ("lines", list[int]), ("problems", list[str])]
        )
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: read, send, and end without running the parent's code
            code = 1
            try:
                os.close(read_end)
                problems = Problems()
                loaded = load(path, model, problems)
                records = [
                    r if isinstance(r, fast.struct) else pickle.dumps(r) for r in loaded.records
                ]
                batch = self._batch(records, loaded.lines, problems.lines)
                with os.fdopen(write_end, "wb") as out:
                    out.write(msgspec.msgpack.encode(batch))
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        self._child = (pid, read_end)

    def result(self, problems: Problems) -> Loaded[M]:
        """The file's records; its problems are added to `problems`."""
        if self._child is not None:
            pid, read_end = self._child
            self._child = None
            with os.fdopen(read_end, "rb") as inp:
                data = inp.read()
            _, status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(status) == 0:
                batch = msgspec.msgpack.decode(data, type=self._batch)
                for line in batch.problems:
                    problems.lines.append(line)
                # the pickles are of models this process's own child made
                records = [
                    pickle.loads(r) if isinstance(r, bytes) else r  # noqa: S301
                    for r in batch.records
                ]
                return Loaded(records, batch.lines)
        return load(self.path, self.model, problems)


def _parallel(*paths: str) -> bool:
    """Read these files in child processes (`Reading`)? Only large inputs, and only where
    `os.fork` is safe to use here (Linux; no other thread has started yet)."""
    if not (sys.platform.startswith("linux") and hasattr(os, "fork")):
        return False
    try:
        return sum(os.path.getsize(p) for p in paths) >= PARALLEL_MIN_BYTES
    except OSError:
        return False  # `load` reports the file it cannot read


def _write_atomically(files: Sequence[tuple[str, Callable[[TextIO], None]]]) -> None:
    """Write every file to a temporary file beside it, then rename them all into place, so a
    failed write leaves no output behind. A target that is a directory, which would fail a
    later rename after an earlier one worked, is refused before anything is written. An
    `OSError` names the output path it hit."""
    for path, _ in files:
        if Path(path).is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    temps: list[tuple[str, str]] = []
    try:
        for path, write in files:
            try:
                target = Path(path)
                fd, tmp = tempfile.mkstemp(
                    prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
                )
                temps.append((tmp, path))
                with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                    write(handle)
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as err:
                raise OSError(err.errno, err.strerror, path) from err
        for tmp, path in temps:
            try:
                os.replace(tmp, path)
            except OSError as err:
                raise OSError(err.errno, err.strerror, path) from err
    except BaseException:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)
        raise


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="apl match",
        description="Solve a matching round offline from files (JSON Lines, or CSV by suffix).",
    )
    parser.add_argument("--students", required=True, help="student profiles")
    parser.add_argument("--placements", required=True, help="placement offers")
    parser.add_argument("--pinned", help="confirmed or accepted pairs to keep")
    parser.add_argument(
        "--previous", help="earlier proposals to keep where still optimal (an earlier --out)"
    )
    parser.add_argument("--out", required=True, help="where to write one JSON line per student")
    parser.add_argument("--summary", help="where to write the round figures as one JSON object")
    parser.add_argument("--policy", choices=("optimal", "stable"), default="optimal")
    parser.add_argument(
        "--fill",
        action="store_true",
        help="then place the still unplaced at eligible vacancies of their region",
    )
    parser.add_argument(
        "--explain", metavar="STUDENT_ID", help="print why a student got its outcome"
    )
    parser.add_argument(
        "--timings",
        action="store_true",
        help="print the seconds spent reading, solving and writing to stderr",
    )
    return parser


def main(argv: list[str]) -> int:
    """Run `apl match` with `argv` (the arguments after `match`); returns the exit code."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage error
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    try:
        # A one-off run makes every record before it drops any: the cyclic collector would
        # walk them all again and again while they are read (half the reading time).
        with paused_gc():
            return _run(args)
    except KeyboardInterrupt:
        print("apl match: interrupted", file=sys.stderr)
        return 1
    except Exception as exc:  # an internal error: one line, no traceback
        print(f"apl match: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    problems = Problems()
    started = time.perf_counter()
    # Large inputs are read by two child processes while this one imports the engine and
    # loads its compiled kernel: on two cores the three take about as long as reading alone.
    parallel = _parallel(args.students, args.placements)
    reading_students = Reading(args.students, StudentProfile, fork=parallel)
    reading_placements = Reading(args.placements, PlacementOffer, fork=parallel)
    from services.matching.engine import MatchingInputError, solve

    if parallel:
        from services.matching.engine import ssp

        ssp.load_compiled()
    students = reading_students.result(problems)
    _progress(f"read {len(students.records)} students", len(students.records))
    placements = reading_placements.result(problems)
    pinned = load(args.pinned, PinnedPair, problems) if args.pinned else Loaded([], [])
    previous = load(args.previous, PreviousProposal, problems) if args.previous else Loaded([], [])
    if problems.lines:
        return _fail(problems)

    read = time.perf_counter()
    prev_map = {r.student_id: r.placement_id for r in previous.records if r.placement_id}
    _progress(f"solving {len(students.records)} students", len(students.records))
    try:
        result = solve(
            students.records,
            placements.records,
            pinned.records,
            previous=prev_map,
            policy=args.policy,
            fill=args.fill,
        )
    except MatchingInputError as err:
        where = {
            "student": (args.students, students.lines),
            "placement": (args.placements, placements.lines),
            "pinned": (args.pinned or "", pinned.lines),
        }
        for p in err.problems:
            path, lines = where[p.kind]
            problems.add(path, lines[p.index], p.field, p.message)
        return _fail(problems)

    if args.explain is not None and args.explain not in result.problem.student_index:
        problems.add(args.students, 0, "student_id", f"--explain: unknown student {args.explain!r}")
        return _fail(problems)

    solved = time.perf_counter()
    try:
        _write_outputs(result, args.out, args.summary)
    except OSError as err:
        problems.add(str(err.filename), 0, "-", f"cannot write: {err.strerror or err}")
        return _fail(problems)
    if args.timings:
        wrote = time.perf_counter()
        print(
            f"apl match: read {read - started:.3f} s, solved {solved - read:.3f} s, "
            f"wrote {wrote - solved:.3f} s",
            file=sys.stderr,
        )
    if args.explain is not None:
        from shared.explain import describe

        for line in describe(result.explain(args.explain)):
            print(line)
    return 0


_OUTCOME_KEYS = ("student_id", "placement_id", "rank", "filled", "reason")
_OTHER = (None,) * len(_OUTCOME_KEYS)  # an outcome of other keys: written by json.dumps


def outcome_lines(outcomes: Sequence[Outcome]) -> Iterator[str]:
    """The `--out` lines: `json.dumps(outcome.as_dict())` and a line end for each outcome.

    An outcome of the five keys in their order, with str ids and reason, an int rank and a
    bool `filled`, is written out here: the same text (`json.dumps`'s ASCII escapes, `": "`
    and `", "` between items), a few times faster. Any other goes to `json.dumps` itself."""
    for o in outcomes:
        d = o.as_dict()
        sid, pid, rank, filled, reason = d.values() if tuple(d) == _OUTCOME_KEYS else _OTHER
        if (
            type(sid) is str
            and (pid is None or type(pid) is str)
            and (rank is None or type(rank) is int)
            and type(filled) is bool
            and (reason is None or type(reason) is str)
        ):
            yield (
                f'{{"student_id": {_json_str(sid)}, '
                f'"placement_id": {"null" if pid is None else _json_str(pid)}, '
                f'"rank": {"null" if rank is None else int.__repr__(rank)}, '
                f'"filled": {"true" if filled else "false"}, '
                f'"reason": {"null" if reason is None else _json_str(reason)}}}\n'
            )
        else:
            yield json.dumps(d) + "\n"


def _write_outputs(result: RoundResult, out: str, summary: str | None) -> None:
    def outcomes(handle: TextIO) -> None:
        handle.writelines(outcome_lines(result.outcomes))

    def figures(handle: TextIO) -> None:
        handle.write(json.dumps(result.summary.as_dict(), indent=2) + "\n")

    files: list[tuple[str, Callable[[TextIO], None]]] = [(out, outcomes)]
    if summary:
        files.append((summary, figures))
    _write_atomically(files)


def _fail(problems: Problems) -> int:
    for line in problems.lines:
        print(line, file=sys.stderr)
    return 2
