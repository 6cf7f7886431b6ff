"""The page access rows of the student's pages (entrypoints/web/student.py)."""

from __future__ import annotations

from . import PageRow

ROWS: tuple[PageRow, ...] = ()
