"""engine.gcpause.paused_gc: overlapping pauses, and the collector's state given back."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from services.matching.engine.gcpause import paused_gc


@pytest.fixture(autouse=True)
def _enabled_after() -> Iterator[None]:
    yield
    gc.enable()


def test_the_collector_is_off_while_any_overlapping_pause_lasts() -> None:
    gc.enable()
    first = paused_gc()
    second = paused_gc()
    first.__enter__()
    assert not gc.isenabled()
    second.__enter__()
    first.__exit__(None, None, None)  # the first ends while the second goes on
    assert not gc.isenabled()
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_a_collector_turned_off_before_stays_off() -> None:
    gc.disable()
    with paused_gc():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_the_collector_comes_back_after_an_error() -> None:
    gc.enable()
    with pytest.raises(ValueError, match="boom"), paused_gc():
        raise ValueError("boom")
    assert gc.isenabled()
