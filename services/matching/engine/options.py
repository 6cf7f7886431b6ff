"""How the engine solves: `SolverOptions`, passed to `solve(..., options=)`.

The options change how fast a round is solved, never its objective: every choice reaches
the same lexicographic optimum (docs/engine.md, "Solving"). Callers that pass none get the
defaults, which are what the matching service and `apl match` run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

# Which kernel the sparse solver runs (`ssp.min_cost_assignment`): "auto" uses the compiled
# kernel once it is loaded, and loads it for a problem of at least `jit_min_arcs` arcs;
# "compiled" loads it whatever the size; "interpreted" never uses it. Values beyond 64 bits
# always run interpreted.
KernelMode = Literal["auto", "compiled", "interpreted"]


@dataclass(frozen=True, slots=True)
class SolverOptions:
    """The engine's knobs, with the defaults it has always run with.

    * `kernel`: which kernel the successive shortest path solver runs (`KernelMode`).
    * `jit_min_arcs`: under `kernel="auto"`, problems with at least this many arcs load the
      compiled kernel if it is not loaded yet (the interpreter needs about 2 microseconds
      per arc, loading the kernel about half a second).
    * `lsa_max_cells`: a component goes to dense `linear_sum_assignment` when its cost
      matrix (students x (slots + students)) has at most this many cells; beyond that the
      sparse solver is faster. 0 sends every component to the sparse solver.
    * `fill_nearest`: fill's first restricted solve uses each student's this many nearest
      eligible vacancies (column generation adds what the prices show is missing).
    * `fill_direct_pairs`: up to this many candidate pairs (each block's students times its
      vacancies, summed), fill enumerates every eligible pair and solves on all of them at
      once (quicker on small rounds); beyond, it runs the lazy column generation
      (`fill.fill_lazy`), which builds only the pairs the prices cannot rule out.
    """

    kernel: KernelMode = "auto"
    jit_min_arcs: int = 200_000
    lsa_max_cells: int = 4096
    fill_nearest: int = 16
    fill_direct_pairs: int = 250_000

    def __post_init__(self) -> None:
        if self.kernel not in get_args(KernelMode):
            raise ValueError(f"unknown kernel {self.kernel!r}")
        if self.jit_min_arcs < 0 or self.lsa_max_cells < 0:
            raise ValueError("jit_min_arcs and lsa_max_cells must not be negative")
        if self.fill_direct_pairs < 0:
            raise ValueError("fill_direct_pairs must not be negative")
        if self.fill_nearest < 1:
            raise ValueError("fill_nearest must be at least 1")


DEFAULT_OPTIONS = SolverOptions()
