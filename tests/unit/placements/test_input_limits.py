"""The pieces behind "no input reaches a 500": problem replies capped at 50 errors with their
count, the NUL finder's field names, and the code a decline travels with."""

from __future__ import annotations

import json

import pytest

from services.placements.domain.errors import FieldError
from services.placements.domain.rules import decline_code
from services.placements.entrypoints.inputs import nul_paths
from services.placements.entrypoints.problems import MAX_DETAIL, MAX_ERRORS, problem


def test_a_problem_names_the_first_50_errors_and_counts_them_all() -> None:
    errors = [FieldError(f"preferences[{i}]", f"'p-{i}' is not known " * 5) for i in range(10_000)]
    response = problem(422, "Invalid request", "ignored when there are more than 50", errors)
    body = json.loads(bytes(response.body))
    assert len(body["errors"]) == MAX_ERRORS
    assert body["errors"][0]["field"] == "preferences[0]"
    assert body["errors_total"] == 10_000
    assert len(body["detail"]) <= MAX_DETAIL
    assert body["detail"].endswith("; and 9950 more")
    assert len(response.body) < 12_000


def test_a_small_problem_is_whole() -> None:
    one = problem(422, "Invalid request", "ends_on: before", [FieldError("ends_on", "before")])
    body = json.loads(bytes(one.body))
    assert (body["detail"], body["errors_total"], len(body["errors"])) == ("ends_on: before", 1, 1)


def test_nul_characters_are_named_where_they_are() -> None:
    body = {
        "title": "ok",
        "items": [{"title": "a\x00b"}, {"programmes": ["EE", "I\x00N"]}],
        "supervisor": {"name": "\x00"},
        "k\x00ey": 1,
    }
    assert list(nul_paths(body)) == [
        "items[0].title",
        "items[1].programmes[1]",
        "supervisor.name",
        "k\x00ey",
    ]
    assert list(nul_paths("\x00")) == ["(body)"]
    assert list(nul_paths({"fine": ["no", 1, None, 2.5]})) == []


@pytest.mark.parametrize(
    ("code", "reason", "travels"),
    [
        (None, None, None),
        (None, "  ", None),
        (None, "too_far", "too_far"),
        (None, "supervisor_declined", "supervisor_declined"),
        (None, "Call me on 070-123 45 67", "other"),
        ("period", "Call me on 070-123 45 67", "period"),
    ],
)
def test_a_decline_travels_with_a_code_never_with_words(
    code: str | None, reason: str | None, travels: str | None
) -> None:
    assert decline_code(code, reason) == travels  # type: ignore[arg-type]
