"""SciPy's `linear_sum_assignment`, without importing the whole of `scipy.optimize`.

The function is SciPy's compiled module `scipy.optimize._lsap`. Importing it the usual way
first runs `scipy/optimize/__init__.py`, which imports every optimiser SciPy has: about 0.4 s
on this project's machines, more than the rest of the engine's imports together, and paid by
every `apl match` and every start of the matching service. Here the compiled module is loaded
from its own file with the import system's own loader for extension modules, as the normal
import would load it, only without the package's other modules. Where that is not possible
(a SciPy that keeps the function elsewhere), it is imported the usual way. Either way it is
SciPy's own code: tests/unit/matching/test_lsap.py compares the two.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import scipy

MODULE = "scipy.optimize._lsap"


def _from_its_file() -> Callable[..., Any] | None:
    """`linear_sum_assignment` of the compiled module loaded from its file, or None."""
    folder = Path(scipy.__file__).parent / "optimize"
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = folder / f"_lsap{suffix}"
        if not path.is_file():
            continue
        loader = importlib.machinery.ExtensionFileLoader(MODULE, str(path))
        spec = importlib.util.spec_from_loader(MODULE, loader, origin=str(path))
        if spec is None:
            return None
        try:
            module = importlib.util.module_from_spec(spec)
            loader.exec_module(module)
        except ImportError:
            return None
        function = getattr(module, "linear_sum_assignment", None)
        return function if callable(function) else None
    return None


def _load() -> Callable[..., Any]:
    function = _from_its_file()
    if function is None:
        from scipy.optimize import linear_sum_assignment

        function = linear_sum_assignment
    return function


linear_sum_assignment: Callable[..., Any] = _load()
"""`scipy.optimize.linear_sum_assignment(cost_matrix, maximize=False) -> (rows, cols)`."""
