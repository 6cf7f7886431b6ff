"""The page access rows of the supervisor readiness page (entrypoints/web/readiness.py)."""

from __future__ import annotations

from . import PageRow, Visit
from .coordinator import COORDINATOR, RUN

R = "/regions/SE-AB/readiness"
ROWS: tuple[PageRow, ...] = (
    PageRow(("GET", "/regions/{region}/readiness"), Visit("GET", R), COORDINATOR),
    PageRow(
        ("POST", "/regions/{region}/readiness/settings"),
        Visit("POST", f"{R}/settings", {"validity_years": "3", "require_readiness": "1"}),
        RUN,
    ),
    PageRow(
        ("POST", "/regions/{region}/readiness/training"),
        Visit(
            "POST",
            f"{R}/training",
            {
                "placement_id": "p-own",
                "company_id": "c-own",
                "email": "anna@example.se",
                "trained_on": "2026-01-05",
            },
        ),
        RUN,
    ),
)
