"""The matching engine: pure functions over plain data (no Kafka, no database).

`solve` takes students, placements and pinned pairs and returns a `RoundResult`: one
`Outcome` per student in input order, the round figures (`RoundSummary`) and, per student,
its explained outcome (the contract's `StudentOutcome`: `student_outcomes()`, `explain()`).
`solve(..., fill=True)` adds the fill phase. `SolverOptions` are its knobs (which kernel,
dense or sparse components), passed as `solve(..., options=)`. See docs/engine.md.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Each name is imported when it is first asked for, so that importing one module of the
# engine (`gcpause`) does not import numpy and scipy: `apl match` reads its files while the
# engine is imported (services/matching/cli.py).
_HOMES = {
    "solve": "api",
    "KernelMode": "options",
    "SolverOptions": "options",
    "InputProblem": "problem",
    "MatchingInputError": "problem",
    "Outcome": "result",
    "Policy": "result",
    "Reason": "result",
    "RoundResult": "result",
    "RoundSummary": "result",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{home}"), name)


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
