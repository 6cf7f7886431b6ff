"""Fixtures shared by the engine tests."""

from __future__ import annotations

from typing import cast

import pytest

from services.matching.engine import KernelMode


@pytest.fixture(params=["interpreted", "compiled"])
def kernel(request: pytest.FixtureRequest) -> KernelMode:
    """The sparse solver's kernel one way, then the other (`SolverOptions.kernel`)."""
    return cast(KernelMode, request.param)
