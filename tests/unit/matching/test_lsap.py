"""The engine's `linear_sum_assignment` is SciPy's, loaded without `scipy.optimize`."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment as scipys

from services.matching.engine import lsap


def test_it_is_loaded_from_the_compiled_module_itself() -> None:
    assert lsap._from_its_file() is not None
    assert lsap.linear_sum_assignment.__module__ in (None, "scipy.optimize._lsap")


@pytest.mark.parametrize("seed", range(20))
def test_the_same_answers_as_scipy_optimize(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows, cols = rng.integers(1, 12, size=2)
    cost = rng.integers(0, 5, size=(rows, cols)).astype(np.int64)  # ties on purpose
    for maximize in (False, True):
        ours = lsap.linear_sum_assignment(cost, maximize=maximize)
        theirs = scipys(cost, maximize=maximize)
        assert all(np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True))


def test_errors_are_scipys() -> None:
    with pytest.raises(ValueError, match="invalid"):
        lsap.linear_sum_assignment(np.array([[np.nan, 1.0], [1.0, 2.0]]))


def test_the_engine_imports_without_scipy_optimize_or_sparse() -> None:
    code = (
        "import sys\n"
        "from services.matching.engine import solve\n"
        "import services.matching.engine.optimal\n"
        "print('scipy.optimize' in sys.modules, 'scipy.sparse' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def _scipys_components(n: int, u: np.ndarray, v: np.ndarray) -> tuple[int, np.ndarray]:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as scipys_components

    graph = coo_matrix((np.ones(len(u), dtype=np.int8), (u, v)), shape=(n, n))
    count, label = scipys_components(graph, directed=False)
    return int(count), np.asarray(label)


def _graphs() -> list[tuple[int, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(5)
    out = [(1, np.zeros(0, np.int64), np.zeros(0, np.int64)), (4, np.array([3]), np.array([3]))]
    for _ in range(40):
        n = int(rng.integers(1, 300))
        m = int(rng.integers(0, 2 * n))
        out.append((n, rng.integers(0, n, m), rng.integers(0, n, m)))
    n = 257  # paths whose labels alternate high and low, a star, a comb
    order = np.array([i // 2 if i % 2 == 0 else n - 1 - i // 2 for i in range(n)])
    out.append((n, order[:-1], order[1:]))
    out.append((n, np.full(n - 1, n - 1), np.arange(n - 1)))
    out.append((n, np.arange(0, n - 1, 2), np.arange(1, n, 2)))
    return out


@pytest.mark.parametrize("graph", _graphs())
def test_connected_components_are_scipys(graph: tuple[int, np.ndarray, np.ndarray]) -> None:
    from services.matching.engine.optimal import connected_components

    n, u, v = graph
    count, label = connected_components(n, u.astype(np.int64), v.astype(np.int64))
    theirs_count, theirs = _scipys_components(n, u, v)
    assert count == theirs_count
    assert np.array_equal(label, theirs)
