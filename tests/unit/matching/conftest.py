"""Fixtures shared by the engine tests."""

from __future__ import annotations

import pytest

from services.matching.engine import ssp


@pytest.fixture(params=["interpreted", "compiled"])
def kernel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the sparse solver's kernel one way, then the other (`ssp.KERNEL`)."""
    monkeypatch.setattr(ssp, "KERNEL", request.param)
    return str(request.param)
