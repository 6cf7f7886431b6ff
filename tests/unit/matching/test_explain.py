"""Explained outcomes: valid contract models, holders counted as the contract defines."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from devtools.synthetic import generate_round, generate_teachers
from services.matching.engine import solve
from services.matching.engine.problem import factor_rows
from shared.contracts.outcomes import StudentOutcome, outcome_json
from shared.contracts.profiles import PinnedPair
from shared.explain import describe

from .helpers import placement, student


def _failed(res, s: int, placement_id: str) -> list[str]:
    """The rules (s, placement) fails, recounted from the features, in contract order."""
    pb = res.problem
    p = pb.placement_index[placement_id]
    bits = int(pb.features.pair_fails(np.array([s]), np.array([p]))[0])
    codes = ["required_skills", "programmes", "period", "max_travel_km"]
    return [c for i, c in enumerate(codes) if bits >> i & 1]


def _group(hp, hr, sp, sr) -> str:
    if hp > sp:
        return "higher_priority"
    if hp == sp and hr is not None and hr < sr:
        return "better_rank"
    if hp == sp and hr == sr:
        return "same_rank"
    if hp == sp and hr is not None and hr > sr:
        return "worse_rank"
    if hp < sp:
        return "lower_priority"
    return "unranked"


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 10_000), fill=st.booleans(), policy=st.sampled_from(["optimal", "stable"])
)
def test_outcomes_are_valid_and_held_by_counts_every_holder(seed, fill, policy) -> None:
    rnd = generate_round(300, seed=seed)
    res = solve(rnd.students, rnd.placements, policy=policy, fill=fill, withdrawn={"p-x"})
    previous = {rnd.students[0].student_id: "p-000001"}
    outcomes = res.student_outcomes(previous)
    assert [o.student_id for o in outcomes] == [s.student_id for s in rnd.students]
    assert outcomes[0].previous_placement_id == "p-000001"
    holders: dict[str, list[int]] = {}
    for s, o in enumerate(res.outcomes):
        if o.placement_id is not None:
            holders.setdefault(o.placement_id, []).append(s)
    for s, (o, so) in enumerate(zip(res.outcomes, outcomes, strict=True)):
        assert StudentOutcome.model_validate_json(so.model_dump_json()) == so
        assert (so.placement_id, so.rank, so.reason, so.filled) == (
            o.placement_id,
            o.rank,
            o.reason,
            o.filled,
        )
        assert so == res.explain(o.student_id).model_copy(
            update={"previous_placement_id": so.previous_placement_id}
        )
        prefs = rnd.students[s].preferences
        stop = o.rank if o.rank is not None else len(prefs) + 1
        assert [n.rank for n in so.explanation.better_choices] == list(range(1, stop))
        assert so.explanation.choices == len(prefs)
        describe(so)
        for note in so.explanation.better_choices:
            assert note.placement_id == prefs[note.rank - 1]
            if note.status == "ineligible":
                assert [r.rule for r in note.rules] == _failed(res, s, note.placement_id)
            if note.status != "full":
                continue
            assert note.held_by is not None
            there = holders[note.placement_id]
            expected = dict.fromkeys(
                ("pinned", "higher_priority", "better_rank", "same_rank", "worse_rank"), 0
            )
            expected |= {"lower_priority": 0, "unranked": 0}
            for h in there:
                hr = res.outcomes[h].rank
                expected[
                    _group(rnd.students[h].priority, hr, rnd.students[s].priority, note.rank)
                ] += 1
            got = note.held_by.model_dump()
            assert got.pop("slots") == len(there)
            assert got == expected


def test_pinned_free_withdrawn_and_unknown() -> None:
    studs = [
        student("s1", ["gone", "old", "p1", "p2"]),
        student("s2", ["p2"], priority=1),
        student("s3", ["p2"]),
    ]
    places = [placement("p1", 1), placement("p2", 2)]
    res = solve(
        studs,
        places,
        [PinnedPair(student_id="s1", placement_id="p2")],
        withdrawn=["old"],
    )
    one = res.explain("s1")
    assert one.pinned
    assert [n.status for n in one.explanation.better_choices] == ["unknown", "withdrawn", "free"]
    three = res.explain("s3")
    assert three.reason == "choices_full"
    note = three.explanation.better_choices[0]
    assert note.status == "full"
    assert note.held_by is not None
    assert (note.held_by.slots, note.held_by.pinned, note.held_by.higher_priority) == (2, 1, 1)


def test_shared_models_stay_independent() -> None:
    """Outcomes share sub-models and a fields-set per class; copies never leak into others."""
    rnd = generate_round(200, seed=3)
    res = solve(rnd.students, rnd.placements)
    a, b = res.student_outcomes()[:2]
    copied = a.model_copy(update={"previous_placement_id": "p-000002"})
    assert copied.previous_placement_id == "p-000002"
    assert "previous_placement_id" in copied.model_fields_set
    assert a.previous_placement_id is None
    assert b.model_fields_set == set(StudentOutcome.model_fields)
    assert a.model_dump(exclude_unset=True) == a.model_dump()


def _texts_are_the_models(res, previous=None) -> None:
    """`student_outcome_texts` is, student by student, the models' `outcome_json` (their
    fields at defaults left out), and reads back as the models."""
    models = res.student_outcomes(previous)
    texts = res.student_outcome_texts(previous)
    assert texts == [outcome_json(o) for o in models]
    assert [StudentOutcome.model_validate_json(t) for t in texts] == list(models)


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 10_000), fill=st.booleans(), policy=st.sampled_from(["optimal", "stable"])
)
def test_outcome_texts_are_the_models_json(seed, fill, policy) -> None:
    rnd = generate_round(300, seed=seed)
    declined = [(s.student_id, s.preferences[0]) for s in rnd.students[:20] if s.preferences]
    capacity = {p.placement_id: p.capacity for p in rnd.placements}
    pins: list[PinnedPair] = []
    for s in rnd.students[20:30]:
        free = [q for q in s.preferences if capacity.get(q, 0) > 0]
        if free:  # a pin takes one slot of a known placement
            capacity[free[-1]] -= 1
            pins.append(PinnedPair(student_id=s.student_id, placement_id=free[-1]))
    res = solve(
        rnd.students,
        rnd.placements,
        pins,
        policy=policy,
        fill=fill,
        excluded=declined,
        withdrawn={"p-x"},
    )
    previous = {s.student_id: "p-000001" for s in rnd.students[::7]}
    _texts_are_the_models(res, previous)
    _texts_are_the_models(res)


def test_outcome_texts_of_teachers_and_awkward_ids() -> None:
    """Teachers' weeks (dates and week lists in the rules), ids that JSON must escape, pinned,
    withdrawn, unknown, free and full choices, and students without choices."""
    rnd = generate_teachers(120, seed=5)
    res = solve(rnd.students, rnd.placements, fill=True)
    _texts_are_the_models(res, {rnd.students[0].student_id: "w-000001"})
    odd = 'p "quoted" \\ åäö\t{0}'
    studs = [
        student("s1", ["gone", "old", "p1", odd]),
        student('s "2" ö', [odd], priority=1),
        student("s3", [odd, "p1"]),
        student("s4", []),
    ]
    places = [placement("p1", 1), placement(odd, 2)]
    res = solve(studs, places, [PinnedPair(student_id="s1", placement_id=odd)], withdrawn=["old"])
    _texts_are_the_models(res, {"s1": odd, "s4": "p1"})


def _factor_rows_by_lexsort(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """factor_rows as it was: one lexsort of every column."""
    n = len(keys)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.lexsort(keys.T[::-1])
    ranked = keys[order]
    new = np.ones(n, dtype=bool)
    new[1:] = np.any(ranked[1:] != ranked[:-1], axis=1)
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return order[new].astype(np.int64), inverse


_WIDE = st.sampled_from([1, 3, 1000, 1 << 20, 1 << 40, 1 << 61, 1 << 62, (1 << 63) - 1])


@settings(max_examples=200, deadline=None)
@given(data=st.data(), rows=st.integers(0, 60), cols=st.integers(1, 10))
def test_factor_rows_numbers_rows_as_a_lexsort_of_every_column(data, rows, cols) -> None:
    """The columns packed into few words give the factorisation one lexsort of every column
    gives: ranges from one value to the whole of int64, negative values, repeated rows."""
    columns = []
    for _ in range(cols):
        wide = data.draw(_WIDE)
        low = data.draw(st.sampled_from([0, -wide, -(wide // 2), -(1 << 63)]))
        high = min(low + wide, (1 << 63) - 1)
        values = data.draw(st.lists(st.integers(low, high), min_size=rows, max_size=rows))
        columns.append(np.array(values, dtype=np.int64))
    keys = np.column_stack(columns) if rows else np.zeros((0, cols), dtype=np.int64)
    if rows > 2:
        keys[1] = keys[0]  # a repeated row
    got, expected = factor_rows(keys), _factor_rows_by_lexsort(keys)
    assert got[0].tolist() == expected[0].tolist()
    assert got[1].tolist() == expected[1].tolist()
    as_uint = keys.view(np.uint64)  # the skills' masks are unsigned words
    got, expected = factor_rows(as_uint), _factor_rows_by_lexsort(as_uint)
    assert (got[0].tolist(), got[1].tolist()) == (expected[0].tolist(), expected[1].tolist())
    floats = keys.astype(np.float64)  # distances and limits
    got, expected = factor_rows(floats), _factor_rows_by_lexsort(floats)
    assert (got[0].tolist(), got[1].tolist()) == (expected[0].tolist(), expected[1].tolist())
