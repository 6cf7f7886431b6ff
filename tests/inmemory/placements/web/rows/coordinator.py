"""The page access rows of the coordinator's pages (entrypoints/web/coordinator.py)."""

from __future__ import annotations

from . import PageRow

ROWS: tuple[PageRow, ...] = ()
