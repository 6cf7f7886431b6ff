"""The matching engine: pure functions over plain data (no Kafka, no database).

`solve` takes students, placements and pinned pairs and returns a `RoundResult`: one
`Outcome` per student in input order, the round figures (`RoundSummary`) and, per student,
an `Explanation` of why it got its outcome. See docs/engine.md.
"""

from services.matching.engine.api import solve
from services.matching.engine.problem import InputProblem, MatchingInputError
from services.matching.engine.result import (
    ChoiceNote,
    Explanation,
    Occupant,
    Outcome,
    Policy,
    Reason,
    RoundResult,
    RoundSummary,
)

__all__ = [
    "ChoiceNote",
    "Explanation",
    "InputProblem",
    "MatchingInputError",
    "Occupant",
    "Outcome",
    "Policy",
    "Reason",
    "RoundResult",
    "RoundSummary",
    "solve",
]
