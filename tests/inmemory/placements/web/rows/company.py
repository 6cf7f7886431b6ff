"""The page access rows of the company's pages (entrypoints/web/company.py)."""

from __future__ import annotations

from . import PageRow

ROWS: tuple[PageRow, ...] = ()
