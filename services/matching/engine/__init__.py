"""The matching engine: pure functions over plain data (no Kafka, no database).

`solve` takes students, placements and pinned pairs and returns a `RoundResult`: one
`Outcome` per student in input order, the round figures (`RoundSummary`) and, per student,
its explained outcome (the contract's `StudentOutcome`: `student_outcomes()`, `explain()`).
`solve(..., fill=True)` adds the fill phase. `SolverOptions` are its knobs (which kernel,
dense or sparse components), passed as `solve(..., options=)`. See docs/engine.md.
"""

from services.matching.engine.api import solve
from services.matching.engine.options import KernelMode, SolverOptions
from services.matching.engine.problem import InputProblem, MatchingInputError
from services.matching.engine.result import (
    Outcome,
    Policy,
    Reason,
    RoundResult,
    RoundSummary,
)

__all__ = [
    "InputProblem",
    "KernelMode",
    "MatchingInputError",
    "Outcome",
    "Policy",
    "Reason",
    "RoundResult",
    "RoundSummary",
    "SolverOptions",
    "solve",
]
