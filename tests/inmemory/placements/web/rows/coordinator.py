"""The page access rows of the coordinator's pages (entrypoints/web/coordinator.py)."""

from __future__ import annotations

from tests.inmemory.placements.test_authorisation import OWN_ROUND

from . import PageRow, Visit

#              anon st-own st-oth co-own co-oth crd-in crd-out oper svc
COORDINATOR = "303 403 403 403 403 ok 403 403 403"
RUN = "403 403 403 403 403 303 403 403 403"  # anonymous: no session, so no CSRF token

R = "/regions/SE-AB"
ROWS: tuple[PageRow, ...] = (
    PageRow(("GET", "/regions/{region}"), Visit("GET", R), COORDINATOR),
    PageRow(
        ("POST", "/regions/{region}/rounds"),
        Visit("POST", f"{R}/rounds", {"policy": "optimal"}),
        RUN,
    ),
    PageRow(("GET", "/rounds/{round_id}"), Visit("GET", f"/rounds/{OWN_ROUND}"), COORDINATOR),
    PageRow(
        ("GET", "/rounds/{round_id}/status"),
        Visit("GET", f"/rounds/{OWN_ROUND}/status"),
        COORDINATOR,
    ),
    PageRow(("GET", "/regions/{region}/unplaced"), Visit("GET", f"{R}/unplaced"), COORDINATOR),
    PageRow(("GET", "/regions/{region}/audit"), Visit("GET", f"{R}/audit"), COORDINATOR),
    PageRow(
        ("GET", "/regions/{region}/matches.csv"), Visit("GET", f"{R}/matches.csv"), COORDINATOR
    ),
    PageRow(
        ("GET", "/regions/{region}/matches.xlsx"), Visit("GET", f"{R}/matches.xlsx"), COORDINATOR
    ),
)
