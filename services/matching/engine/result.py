"""What a round returns: outcomes in input order, the round figures, and explanations.

Explanations are the contract's `StudentOutcome` models (shared/contracts/outcomes.py), built
for all students at once: statuses, failed rules with their figures and the holders of full
choices are computed with numpy over every explained choice of the round; only the models
themselves are made one by one (`_construct`, with shared sub-models where they repeat).
A round that publishes them takes their JSON texts instead (`student_outcome_texts`: the
same classification, each distinct note's text made once, no outcome models).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from itertools import pairwise, repeat
from operator import attrgetter
from typing import Any, Literal, TypeVar, get_args

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, TypeAdapter

from services.matching.engine.gcpause import paused_gc
from services.matching.engine.optimal import weight_classes
from services.matching.engine.problem import (
    I64,
    RULE_DISTANCE,
    RULE_EXCLUDED,
    RULE_PERIOD,
    RULE_PROGRAMME,
    RULE_SKILLS,
    RULE_WEEKS,
    U8,
    Bools,
    Problem,
    _flatten,
    factor_rows,
)
from services.matching.engine.stable import placement_order_key
from shared.contracts.outcomes import (
    ChoiceNote,
    ChoiceStatus,
    Explanation,
    HeldBy,
    RuleFailure,
    StudentOutcome,
    outcome_json,
)

Reason = Literal["no_eligible_choice", "choices_full", "no_eligible_vacancy"]
Policy = Literal["optimal", "stable"]

M = TypeVar("M", bound=BaseModel)
_SETATTR = object.__setattr__
# BaseModel's slots, set directly (the models' own __setattr__ refuses: they are frozen).
_SET_FIELDS_SET = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_SET_EXTRA = BaseModel.__dict__["__pydantic_extra__"].__set__
_SET_PRIVATE = BaseModel.__dict__["__pydantic_private__"].__set__


def _build(
    cls: type[M],
    fields: tuple[str, ...],
    columns: Sequence[Sequence[Any]],
    make: Callable[..., dict[str, Any]] | None = None,
) -> list[M]:
    """`cls.model_construct(**dict(zip(fields, row)))` for every row of `columns` (one
    sequence per field, all of one length), for values known to be valid and given for
    every field: the same models, made in C loops (`map`) instead of one call each (about
    5x faster than model_construct, and faster than validating). `make`, if given, builds
    a row's dict from its values (a dict display beats `dict(zip(...))`). Tests check the
    results equal validated models. The models of one class share one fields-set (every
    field is set; pydantic only reads it, and `model_copy` copies it)."""
    fields_set = _FIELDS_SETS.get(cls)
    if fields_set is None or fields_set != set(fields):
        fields_set = _FIELDS_SETS[cls] = set(fields)
    new = cls.__new__

    def model(values: dict[str, Any]) -> M:
        m = new(cls)
        _SETATTR(m, "__dict__", values)
        _SET_FIELDS_SET(m, fields_set)
        _SET_EXTRA(m, None)
        _SET_PRIVATE(m, None)
        return m

    if make is not None:
        dicts: Iterable[dict[str, Any]] = map(make, *columns)
    else:
        dicts = map(dict, map(zip, repeat(fields), zip(*columns, strict=True)))
    return list(map(model, dicts))


def _note_values(
    rank: int, placement_id: str, status: str, rules: Any, held_by: Any
) -> dict[str, Any]:
    return {
        "rank": rank,
        "placement_id": placement_id,
        "status": status,
        "rules": rules,
        "held_by": held_by,
    }


def _explanation_values(better_choices: Any, choices: int) -> dict[str, Any]:
    return {"better_choices": better_choices, "choices": choices}


def _outcome_values(
    student_id: str,
    placement_id: str | None,
    rank: int | None,
    filled: bool,  # noqa: FBT001
    pinned: bool,  # noqa: FBT001
    reason: str | None,
    previous_placement_id: str | None,
    explanation: Explanation,
) -> dict[str, Any]:
    return {
        "student_id": student_id,
        "placement_id": placement_id,
        "rank": rank,
        "filled": filled,
        "pinned": pinned,
        "reason": reason,
        "previous_placement_id": previous_placement_id,
        "explanation": explanation,
    }


_FIELDS_SETS: dict[type[BaseModel], set[str]] = {}


_json_str: Callable[[str], str] = json.encoder.encode_basestring
"""A string as a JSON string literal, as pydantic's serializer writes it (non-ASCII kept; `"`,
`\\` and control characters escaped: tests/unit/test_serialised.py compares them)."""
_JSON_NULL = "null"
_STATUS_TEXT = {status: _json_str(status) for status in get_args(ChoiceStatus)}


def _json_or_null(value: str | None) -> str:
    return _JSON_NULL if value is None else _json_str(value)


def _check_fields(cls: type[BaseModel], fields: tuple[str, ...], optional: set[str]) -> None:
    """`fields` must be `cls`'s fields in its order and `optional` those with a default, so a
    field added to the contract is not left out of the texts below."""
    if tuple(cls.model_fields) != fields:
        raise RuntimeError(f"{cls.__name__}: fields {tuple(cls.model_fields)}, not {fields}")
    defaults = {n for n, f in cls.model_fields.items() if not f.is_required()}
    if defaults != optional:
        raise RuntimeError(f"{cls.__name__}: fields with defaults {defaults}, not {optional}")


# The texts `outcome_json` gives (`model_dump_json(exclude_defaults=True)`): every field in the
# model's order, no spaces, a field at its default left out. The holes of optional fields take
# their whole member with its comma, or nothing.
_OUTCOME_FIELDS = (
    "student_id",
    "placement_id",
    "rank",
    "filled",
    "pinned",
    "reason",
    "previous_placement_id",
    "explanation",
)
_check_fields(StudentOutcome, _OUTCOME_FIELDS, {"filled", "pinned", "previous_placement_id"})
_check_fields(Explanation, ("better_choices", "choices"), {"better_choices"})
# A student's outcome with its explanation inline: student, placement, rank, filled, pinned,
# reason, previous placement, the better choices (their notes' texts joined), the choices.
_OUTCOME_TEXT: Callable[..., str] = (
    '{{"student_id":{0},"placement_id":{1},"rank":{2}{3}{4},"reason":{5}{6},'
    '"explanation":{{{7}"choices":{8}}}}}'
).format
_FILLED = {False: "", True: ',"filled":true'}
_PINNED = {False: "", True: ',"pinned":true'}
_check_fields(
    ChoiceNote, ("rank", "placement_id", "status", "rules", "held_by"), {"rules", "held_by"}
)
_NOTE_TEXT: Callable[..., str] = '{{"rank":{0},"placement_id":{1},"status":{2}{3}{4}}}'.format


def _previous_member(value: str | None) -> str:
    return "" if value is None else ',"previous_placement_id":' + _json_str(value)


def _better_member(notes: str) -> str:
    return '"better_choices":[' + notes + "]," if notes else ""


_RULES = TypeAdapter(list[RuleFailure])
_NEXT_RULE = '},{"rule":'


def _rule_texts(models: list[RuleFailure]) -> list[str]:
    """Each rule's `outcome_json` text (`model_dump_json(exclude_defaults=True)`), from one
    dump of them all: every rule's text starts with its first field, `rule` (it has no
    default), and no text inside one (strings escape their quotes) can hold the `},{"rule":`
    between two."""
    if not models:
        return []
    whole = _RULES.dump_json(models, exclude_defaults=True).decode("utf-8")
    if not whole.startswith('[{"rule":'):
        raise RuntimeError("RuleFailure: its JSON does not start with its rule")
    inner = whole[2:-2].split(_NEXT_RULE)  # without the outer [{ and }]
    if len(inner) != len(models):
        return [m.model_dump_json(exclude_defaults=True) for m in models]
    return ["{" + inner[0] + "}", *["{" + '"rule":' + x + "}" for x in inner[1:]]]


@dataclass(frozen=True, slots=True)
class _Notes:
    """Some students' explained choices (`RoundResult._notes`), each distinct note once: its
    rank, placement (or unknown id), status, failed rules and holder counts (an index into
    `held_models`, -1 when not full)."""

    rank: list[int]
    placement_id: list[str]
    status: list[str]
    rule_combo: list[int]
    """Per note, its failed rules as an index into `combos` (an empty one unless ineligible)."""
    combos: list[list[int]]
    """The distinct combinations of failed rules, each as indices into `rule_models`."""
    held: list[int]
    rule_models: list[RuleFailure]
    held_models: list[HeldBy]
    per_choice: list[int]
    """Per explained choice (by student, then rank), its distinct note."""
    bounds: list[int]
    """Student i's explained choices are `per_choice[bounds[i]:bounds[i + 1]]`."""
    choices: list[int]
    """Per student, how many placements it ranked."""


def _skill_names(names: tuple[str, ...], mask: npt.NDArray[np.uint64]) -> tuple[str, ...]:
    return tuple(name for b, name in enumerate(names) if int(mask[b >> 6]) >> (b & 63) & 1)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One student's result: a placement with its rank (None when filled, or pinned outside
    its preferences), or unplaced with a reason. `filled`: placed by fill."""

    student_id: str
    placement_id: str | None
    rank: int | None
    reason: Reason | None
    filled: bool = False

    def as_dict(self) -> dict[str, str | int | bool | None]:
        return {
            "student_id": self.student_id,
            "placement_id": self.placement_id,
            "rank": self.rank,
            "filled": self.filled,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class RoundSummary:
    """The round figures of docs/product.md. `solve_seconds` times the assignment step (from
    eligible pairs to the assignment, fill included); building eligibility from profiles
    before it and these figures after it are not in it. `filled`: students placed by fill;
    `no_eligible_vacancy`: students unplaced after fill (0 without fill)."""

    students: int
    placed: int
    placed_weight: int
    total_rank_cost: int
    first_choice: int
    top3: int
    unknown_preferences: int
    blocking_pairs: int
    solve_seconds: float
    solver: str
    filled: int = 0
    no_eligible_vacancy: int = 0

    def as_dict(self) -> dict[str, int | float | str]:
        return {
            "students": self.students,
            "placed": self.placed,
            "filled": self.filled,
            "placed_weight": self.placed_weight,
            "total_rank_cost": self.total_rank_cost,
            "first_choice": self.first_choice,
            "top3": self.top3,
            "unknown_preferences": self.unknown_preferences,
            "no_eligible_vacancy": self.no_eligible_vacancy,
            "blocking_pairs": self.blocking_pairs,
            "solve_seconds": round(self.solve_seconds, 6),
            "solver": self.solver,
        }


_RULE_BITS: tuple[tuple[int, str], ...] = (
    (RULE_SKILLS, "required_skills"),
    (RULE_PROGRAMME, "programmes"),
    (RULE_PERIOD, "period"),
    (RULE_WEEKS, "available_weeks"),
    (RULE_DISTANCE, "max_travel_km"),
    (RULE_EXCLUDED, "declined"),
)
_N_RULES = len(_RULE_BITS)  # columns of a choice's key for its failed rules (3 + it <= 10)
# Choice statuses, as codes while classifying.
_UNKNOWN, _INELIGIBLE, _FULL, _FREE = 0, 1, 2, 3
_STATUS = ("unknown", "ineligible", "full", "free")
_HELD_GROUPS = (
    "pinned",
    "higher_priority",
    "better_rank",
    "same_rank",
    "worse_rank",
    "lower_priority",
    "unranked",
)


def _day(ordinal: int) -> date | None:
    return None if ordinal < 0 else date.fromordinal(ordinal)


class RoundResult:
    """Outcomes in input order, the summary, and every student's explained outcome."""

    def __init__(
        self,
        problem: Problem,
        assignment: I64,
        policy: Policy,
        solve_seconds: float,
        solver: str,
        *,
        filled: Bools | None = None,
        withdrawn: Collection[str] = (),
    ) -> None:
        """`filled` marks the students placed by fill (None: fill did not run);
        `withdrawn` are placement ids known to be withdrawn (for explanations)."""
        self.problem = problem
        self.assignment = assignment
        self.policy: Policy = policy
        self.fill_ran = filled is not None
        self.filled: Bools = np.zeros(problem.n_students, dtype=bool) if filled is None else filled
        self.withdrawn = frozenset(withdrawn)
        pb = problem
        # Rank of each student's assignment (0 when filled or pinned outside its preferences).
        self._rank = np.zeros(pb.n_students, dtype=np.int64)
        hit = pb.edge_placement == assignment[pb.edge_student]
        self._rank[pb.edge_student[hit]] = pb.edge_rank[hit]
        has_eligible = np.zeros(pb.n_students, dtype=bool)
        has_eligible[pb.edge_student[pb.eligible]] = True
        outcomes: list[Outcome] = []
        sid, pid = pb.student_ids, pb.placement_ids
        rows = zip(
            assignment.tolist(),
            self._rank.tolist(),
            has_eligible.tolist(),
            self.filled.tolist(),
            strict=True,
        )
        for s, (p, r, el, fl) in enumerate(rows):
            if p >= 0:
                outcomes.append(Outcome(sid[s], pid[p], r or None, None, fl))
            elif self.fill_ran:
                outcomes.append(Outcome(sid[s], None, None, "no_eligible_vacancy"))
            else:
                reason: Reason = "choices_full" if el else "no_eligible_choice"
                outcomes.append(Outcome(sid[s], None, None, reason))
        self.outcomes = tuple(outcomes)
        placed = assignment >= 0
        ranks = self._rank[placed]
        ranks = ranks[ranks > 0]
        self.summary = RoundSummary(
            students=pb.n_students,
            placed=int(np.count_nonzero(placed)),
            placed_weight=sum(1 + pb.priority[s] for s in np.flatnonzero(placed).tolist()),
            total_rank_cost=int((ranks * ranks).sum()),
            first_choice=int(np.count_nonzero(ranks == 1)),
            top3=int(np.count_nonzero(ranks <= 3)),
            unknown_preferences=pb.unknown_preferences,
            blocking_pairs=count_blocking_pairs(pb, assignment),
            solve_seconds=solve_seconds,
            solver=solver,
            filled=int(np.count_nonzero(self.filled)),
            no_eligible_vacancy=int(np.count_nonzero(~placed)) if self.fill_ran else 0,
        )

    def outcome(self, student_id: str) -> Outcome:
        return self.outcomes[self.problem.student_index[student_id]]

    def explain(self, student_id: str) -> StudentOutcome:
        """Why `student_id` got its outcome. Raises KeyError for an unknown student."""
        s = self.problem.student_index[student_id]
        students = np.array([s], dtype=np.int64)
        return self._student_outcomes(students, self._explanations(students), [None])[0]

    def student_outcomes(
        self, previous: Mapping[str, str] | None = None
    ) -> tuple[StudentOutcome, ...]:
        """Every student's outcome with its explanation, in input order; `previous` maps
        student id to its standing match before the round (`previous_placement_id`)."""
        with paused_gc():  # a burst of small objects: see gcpause
            pb = self.problem
            prev = list(map((previous or {}).get, pb.student_ids))
            every = np.arange(pb.n_students, dtype=np.int64)
            return tuple(self._student_outcomes(every, self._all_explanations, prev))

    def student_outcome_texts(self, previous: Mapping[str, str] | None = None) -> list[str]:
        """`student_outcomes(previous)` as JSON: each student's `StudentOutcome` as the text
        `outcome_json` gives of its model (its fields at their defaults left out), in input
        order, made without the models (the explained choices are classified as for them, each
        distinct note's text is made once, and a student's text joins its notes'). For a round
        that publishes every outcome: the matching service sends these texts; tests compare
        them with the models'."""
        with paused_gc():
            pb = self.problem
            every = np.arange(pb.n_students, dtype=np.int64)
            notes = self._notes(every)
            better = self._better_choices_texts(notes)
            mine = self.outcomes
            pinned = (pb.pinned >= 0).tolist()
            prev = map(_previous_member, map((previous or {}).get, pb.student_ids))
            return list(
                map(
                    _OUTCOME_TEXT,
                    (_json_str(o.student_id) for o in mine),
                    (_json_or_null(o.placement_id) for o in mine),
                    (_JSON_NULL if o.rank is None else str(o.rank) for o in mine),
                    (_FILLED[o.filled] for o in mine),
                    map(_PINNED.__getitem__, pinned),
                    (_json_or_null(o.reason) for o in mine),
                    prev,
                    map(_better_member, better),
                    map(str, notes.choices),
                )
            )

    def _student_outcomes(
        self, students: I64, explanations: list[Explanation], previous: list[str | None]
    ) -> list[StudentOutcome]:
        mine = [self.outcomes[s] for s in students.tolist()]
        columns = [
            list(map(attrgetter(k), mine)) for k in ("student_id", "placement_id", "rank", "filled")
        ]
        columns.append((self.problem.pinned[students] >= 0).tolist())
        columns.append(list(map(attrgetter("reason"), mine)))
        return _build(
            StudentOutcome, _OUTCOME_FIELDS, (*columns, previous, explanations), _outcome_values
        )

    @cached_property
    def _all_explanations(self) -> list[Explanation]:
        return self._explanations(np.arange(self.problem.n_students, dtype=np.int64))

    def _explanations(self, students: I64) -> list[Explanation]:
        """The explanation of each of `students` (see `_notes`): each distinct note, rule
        and holder count made once (`_build`) and shared by every choice it describes."""
        notes_of = self._notes(students)
        rule_models, held_models = notes_of.rule_models, notes_of.held_models
        combos = [tuple([rule_models[r] for r in c]) for c in notes_of.combos]
        notes = _build(
            ChoiceNote,
            ("rank", "placement_id", "status", "rules", "held_by"),
            (
                notes_of.rank,
                notes_of.placement_id,
                notes_of.status,
                list(map(combos.__getitem__, notes_of.rule_combo)),
                [None if h < 0 else held_models[h] for h in notes_of.held],
            ),
            _note_values,
        )
        per_choice = list(map(notes.__getitem__, notes_of.per_choice))
        better = [tuple(per_choice[a:b]) for a, b in pairwise(notes_of.bounds)]
        choices = notes_of.choices
        # Students with no better choice (placed at their first) share one per length.
        some = [i for i, b in enumerate(better) if b]
        made = _build(
            Explanation,
            ("better_choices", "choices"),
            ([better[i] for i in some], [choices[i] for i in some]),
            _explanation_values,
        )
        lengths = sorted(set(choices))
        empty = dict(
            zip(
                lengths,
                _build(
                    Explanation,
                    ("better_choices", "choices"),
                    ([()] * len(lengths), lengths),
                    _explanation_values,
                ),
                strict=True,
            )
        )
        out = [empty[c] for c in choices]
        for i, e in zip(some, made, strict=True):
            out[i] = e
        return out

    def _better_choices_texts(self, notes_of: _Notes) -> list[str]:
        """Per student, the JSON text of its explanation's `better_choices` without the
        brackets (what `_explanations` makes, as `outcome_json` dumps it): each distinct rule and
        holder count dumped by its model once, each distinct note's text made once, a
        student's notes joined."""
        rule_texts = _rule_texts(notes_of.rule_models)
        held_texts = [',"held_by":' + outcome_json(m) for m in notes_of.held_models]
        held_texts.append("")  # index -1: not full
        combos = [
            ',"rules":[' + ",".join([rule_texts[r] for r in c]) + "]" if c else ""
            for c in notes_of.combos
        ]
        note_texts = list(
            map(
                _NOTE_TEXT,
                map(str, notes_of.rank),
                map(_json_str, notes_of.placement_id),
                map(_STATUS_TEXT.__getitem__, notes_of.status),
                map(combos.__getitem__, notes_of.rule_combo),
                map(held_texts.__getitem__, notes_of.held),
            )
        )
        per_choice = list(map(note_texts.__getitem__, notes_of.per_choice))
        return [",".join(per_choice[a:b]) for a, b in pairwise(notes_of.bounds)]

    def _notes(self, students: I64) -> _Notes:
        """The explained choices of `students`: every choice ranked better than the outcome
        (all of them when unplaced, filled, or pinned outside the preferences).

        Every explained choice is classified with numpy (status, the failed rules as ids of
        distinct `RuleFailure`s, the holder counts of a full choice); equal choices (same
        status, rank, placement and figures) are one distinct note."""
        pb = self.problem
        n_p = pb.n_placements
        prefs = pb.preferences
        rows, pos, ids = _flatten([prefs[s] for s in students.tolist()], pb.placement_index)
        owner = students[rows]
        rank = pos + 1
        own_rank = self._rank[owner]
        # Choices better than the outcome: ranks below a placed rank, or every choice.
        keep = (own_rank == 0) | (rank < own_rank)
        rows, owner, rank, ids = rows[keep], owner[keep], rank[keep], ids[keep]
        n = len(rows)
        # Known choices map to candidate edges: edges are the known entries, in order.
        known = ids >= 0
        fails = np.zeros(n, dtype=np.uint8)
        if known.any():
            lo = np.searchsorted(pb.edge_student, owner[known])
            e_idx = lo + _offsets(pb, owner[known], rank[known], lo)
            fails[known] = pb.fails[e_idx]
        used = np.bincount(self.assignment[self.assignment >= 0], minlength=n_p)
        p_safe = np.where(known, ids, 0)
        is_full = known & (fails == 0) & (used[p_safe] >= pb.capacity[p_safe])
        status = np.where(
            ~known, _UNKNOWN, np.where(fails != 0, _INELIGIBLE, np.where(is_full, _FULL, _FREE))
        )
        # One key per choice: (status, rank, placement or id code, 7 figures): rule ids of
        # an ineligible choice, holder counts of a full one.
        key = np.zeros((n, 10), dtype=np.int64)
        key[:, 0], key[:, 1], key[:, 2] = status, rank, ids
        unknown_i = np.flatnonzero(~known)
        unknown_ids = [
            prefs[s][k - 1]
            for s, k in zip(owner[unknown_i].tolist(), rank[unknown_i].tolist(), strict=True)
        ]
        id_code = {pid: i for i, pid in enumerate(dict.fromkeys(unknown_ids))}
        key[unknown_i, 2] = [id_code[pid] for pid in unknown_ids]
        full_i = np.flatnonzero(is_full)
        if len(full_i):
            key[full_i, 3:] = self._held_by(owner[full_i], ids[full_i], rank[full_i])
        inel = np.flatnonzero(status == _INELIGIBLE)
        rule_models: list[RuleFailure] = []
        if len(inel):
            key[inel, 3 : 3 + _N_RULES] = self._rule_ids(
                owner[inel], ids[inel], fails[inel], rule_models
            )
        first, inverse = factor_rows(key)
        # The distinct notes.
        fk = key[first]
        f_status = fk[:, 0]
        unknown = f_status == _UNKNOWN
        # A known note's placement, an unknown one's id (by its code, after the placements).
        names = [*pb.placement_ids, *id_code]
        col_id = list(map(names.__getitem__, (fk[:, 2] + unknown * pb.n_placements).tolist()))
        col_status = list(map(_STATUS.__getitem__, f_status.tolist()))
        for j in np.flatnonzero(unknown).tolist():
            col_status[j] = "withdrawn" if col_id[j] in self.withdrawn else "unknown"
        # The failed rules of each ineligible note, as one of their distinct combinations.
        rule_cols = np.where((f_status == _INELIGIBLE)[:, None], fk[:, 3 : 3 + _N_RULES], -1)
        c_first, combo = factor_rows(rule_cols)
        held_models, held = self._held_models(fk)
        return _Notes(
            rank=fk[:, 1].tolist(),
            placement_id=col_id,
            status=col_status,
            rule_combo=combo.tolist(),
            combos=[[r for r in row if r >= 0] for row in rule_cols[c_first].tolist()],
            held=held,
            rule_models=rule_models,
            held_models=held_models,
            per_choice=inverse.tolist(),
            bounds=np.searchsorted(rows, np.arange(len(students) + 1)).tolist(),
            choices=[len(prefs[s]) for s in students.tolist()],
        )

    def _held_models(self, fk: I64) -> tuple[list[HeldBy], list[int]]:
        """The distinct `HeldBy` of the full notes (rows of `fk` with status full), and per
        row the index of its own among them, -1 when not full (equal counts share one)."""
        held = np.full(len(fk), -1, dtype=np.int64)
        j_full = np.flatnonzero(fk[:, 0] == _FULL)
        if len(j_full) == 0:
            return [], held.tolist()
        counts = np.column_stack((self.problem.capacity[fk[j_full, 2]], fk[j_full, 3:]))
        first, inverse = factor_rows(counts)
        models = _build(HeldBy, ("slots", *_HELD_GROUPS), counts[first].T.tolist())
        held[j_full] = inverse
        return models, held.tolist()

    def _rule_ids(self, owner: I64, p: I64, fails: U8, models: list[RuleFailure]) -> I64:
        """Per ineligible choice (student `owner`, placement `p`, failed `fails`), the index in
        `models` of each of its failed rules in `_RULE_BITS` order, -1 where it passes;
        `models` receives one `RuleFailure` per distinct rule and figures."""
        f = self.problem.features
        out = np.full((len(owner), _N_RULES), -1, dtype=np.int64)
        empty: dict[str, Any] = {
            "rule": None,
            "missing": (),
            "programme": None,
            "accepted": (),
            "available_from": None,
            "available_to": None,
            "starts_on": None,
            "ends_on": None,
            "unavailable_weeks": (),
            "distance_km": None,
            "limit_km": None,
        }
        fields = tuple(empty)
        for col, (bit, name) in enumerate(_RULE_BITS):
            hit = np.flatnonzero(fails & bit)
            if len(hit) == 0:
                continue
            s, q = owner[hit], p[hit]
            figures: dict[str, list[Any]]
            if bit == RULE_SKILLS:
                masks = f.need[q] & ~f.have[s]
                first, inverse = factor_rows(masks.view(np.int64))
                figures = {"missing": [_skill_names(f.skill_names, m) for m in masks[first]]}
            elif bit == RULE_PROGRAMME:
                first, inverse = factor_rows(np.column_stack((self._programme_code[s], q)))
                figures = {
                    "programme": [f.student_programme[x] for x in s[first].tolist()],
                    "accepted": [f.placement_programmes[x] for x in q[first].tolist()],
                }
            elif bit == RULE_PERIOD:
                dates = np.column_stack((f.s_from[s], f.s_to[s], f.p_start[q], f.p_end[q]))
                first, inverse = factor_rows(dates)
                figures = {
                    name_: [_day(d) for d in dates[first, i].tolist()]
                    for i, name_ in enumerate(
                        ("available_from", "available_to", "starts_on", "ends_on")
                    )
                }
            elif bit == RULE_WEEKS:
                weeks = f.weeks
                spans = np.column_stack((weeks.code[s], f.p_week0[q], f.p_week1[q]))
                first, inverse = factor_rows(np.column_stack((spans, f.p_start[q], f.p_end[q])))
                figures = {
                    "starts_on": [_day(d) for d in f.p_start[q[first]].tolist()],
                    "ends_on": [_day(d) for d in f.p_end[q[first]].tolist()],
                    "unavailable_weeks": [weeks.missing(*row) for row in spans[first].tolist()],
                }
            elif bit == RULE_DISTANCE:
                # Rounded up to 0.1 km, so the figure stays above the limit it exceeds.
                tenths = np.ceil(f.distance_km(s, q) * 10)
                both = np.column_stack((tenths, f.travel[s]))
                first, inverse = factor_rows(both)
                figures = {
                    "distance_km": (both[first, 0] / 10).tolist(),
                    "limit_km": both[first, 1].tolist(),
                }
            else:
                first, inverse = np.zeros(1, dtype=np.int64), np.zeros(len(hit), dtype=np.int64)
                figures = {}
            m = len(first)
            columns = [figures.get(k, [v] * m) for k, v in empty.items()]
            columns[0] = [name] * m
            out[hit, col] = len(models) + inverse
            models.extend(_build(RuleFailure, fields, columns))
        return out

    @cached_property
    def _programme_code(self) -> I64:
        names = self.problem.features.student_programme
        vocab: dict[str | None, int] = {}
        return np.fromiter(
            (vocab.setdefault(x, len(vocab)) for x in names), dtype=np.int64, count=len(names)
        )

    def _held_by(self, who: I64, places: I64, ranks: I64) -> I64:
        """Per full choice (student `who` ranked `places` at `ranks`): counts of its holders
        in each `_HELD_GROUPS` group, each holder in the first group that fits."""
        pb = self.problem
        a = self.assignment
        placed = np.flatnonzero(a >= 0)
        order = placed[np.argsort(a[placed], kind="stable")]
        bounds = np.searchsorted(a[order], np.arange(pb.n_placements + 1))
        count = bounds[places + 1] - bounds[places]
        note = np.repeat(np.arange(len(who)), count)
        offset = np.arange(len(note)) - np.repeat(np.cumsum(count) - count, count)
        holder = order[bounds[places][note] + offset]
        k = self._priority_class
        kh, ks = k[holder], k[who][note]
        rh, rs = self._rank[holder], ranks[note]
        code = np.select(
            [
                pb.pinned[holder] >= 0,
                kh > ks,
                (kh == ks) & (rh > 0) & (rh < rs),
                (kh == ks) & (rh == rs),
                (kh == ks) & (rh > rs),
                kh < ks,
            ],
            [0, 1, 2, 3, 4, 5],
            default=6,
        )
        out: I64 = np.bincount(note * 7 + code, minlength=len(who) * 7).reshape(len(who), 7)
        return out

    @cached_property
    def _priority_class(self) -> I64:
        pb = self.problem
        return weight_classes(pb.priority, np.arange(pb.n_students, dtype=np.int64))


def _offsets(pb: Problem, owners: I64, ranks: I64, starts: I64) -> I64:
    """Offset of each known preference entry among its student's candidate edges: edges of
    a student are its known entries in rank order, so it is the count of its edges with a
    smaller rank."""
    ends = np.searchsorted(pb.edge_student, owners, side="right")
    out = np.zeros(len(owners), dtype=np.int64)
    # Few edges per student: walk them with numpy, one offset step at a time.
    width = int((ends - starts).max(initial=0))
    for j in range(width):
        e = starts + j
        inside = e < ends
        e_safe = np.where(inside, e, 0)
        out += inside & (pb.edge_rank[e_safe] < ranks)
    return out


def count_blocking_pairs(problem: Problem, assignment: I64) -> int:
    """Blocking pairs of docs/product.md: (s, p) with p eligible for s, s unplaced or placed at a
    worse rank than p, and p with a free slot or, where p has a ranking, preferring s to one
    of its placed students (absent students rank below all in the ranking). Every placed
    student counts, pinned or not; a placement outside a pinned student's preferences counts
    as worse than any of its choices."""
    pb = problem
    n_p = pb.n_placements
    rank = np.full(pb.n_students, np.iinfo(np.int64).max, dtype=np.int64)
    hit = pb.edge_placement == assignment[pb.edge_student]
    rank[pb.edge_student[hit]] = pb.edge_rank[hit]
    rank[assignment < 0] = np.iinfo(np.int64).max
    el = pb.eligible
    cand = np.flatnonzero(el & (pb.edge_rank < rank[pb.edge_student]))
    placed = assignment >= 0
    used = np.bincount(assignment[placed], minlength=n_p)
    has_free = used < pb.capacity
    count = int(np.count_nonzero(has_free[pb.edge_placement[cand]]))
    if not pb.ranking_pos:
        return count
    worst: dict[int, int] = {}
    for s in np.flatnonzero(placed).tolist():
        p = int(assignment[s])
        if p in pb.ranking_pos:
            k = placement_order_key(pb, p, s)
            if k > worst.get(p, -1):
                worst[p] = k
    rest = cand[~has_free[pb.edge_placement[cand]]]
    for s, p in zip(pb.edge_student[rest].tolist(), pb.edge_placement[rest].tolist(), strict=True):
        if p in worst and placement_order_key(pb, p, s) < worst[p]:
            count += 1
    return count
