"""The page access rows of the coordinator's pages (entrypoints/web/coordinator.py)."""

from __future__ import annotations

from tests.inmemory.placements.test_authorisation import OWN_ROUND

from . import PageRow, Visit

#              anon st-own st-oth co-own co-oth crd-in crd-out oper svc
COORDINATOR = "303 403 403 403 403 ok 403 403 403"
RUN = "403 403 403 403 403 303 403 403 403"  # anonymous: no session, so no CSRF token
# A form the handler refuses in this world (an error page for the one who may post it).
REFUSED = "403 403 403 403 403 ok 403 403 403"

R = "/regions/SE-AB"
PAIR = f"a={OWN_ROUND}&b={OWN_ROUND}"
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
    PageRow(("GET", "/regions/{region}/rounds"), Visit("GET", f"{R}/rounds"), COORDINATOR),
    PageRow(
        ("GET", "/rounds/{round_id}/outcomes"),
        Visit("GET", f"/rounds/{OWN_ROUND}/outcomes?placed=no&reason=choices_full"),
        COORDINATOR,
    ),
    PageRow(
        ("GET", "/rounds/{round_id}/report.csv"),
        Visit("GET", f"/rounds/{OWN_ROUND}/report.csv"),
        COORDINATOR,
    ),
    PageRow(
        ("GET", "/rounds/{round_id}/report.xlsx"),
        Visit("GET", f"/rounds/{OWN_ROUND}/report.xlsx"),
        COORDINATOR,
    ),
    PageRow(
        ("POST", "/regions/{region}/compare"), Visit("POST", f"{R}/compare", {"fill": "1"}), RUN
    ),
    PageRow(("GET", "/rounds/compare"), Visit("GET", f"/rounds/compare?{PAIR}"), COORDINATOR),
    PageRow(
        ("GET", "/rounds/compare/status"),
        Visit("GET", f"/rounds/compare/status?{PAIR}"),
        COORDINATOR,
    ),
    PageRow(("GET", "/regions/{region}/vacancies"), Visit("GET", f"{R}/vacancies"), COORDINATOR),
    PageRow(
        ("GET", "/regions/{region}/competence-gap"),
        Visit("GET", f"{R}/competence-gap?term=2027-spring"),
        COORDINATOR,
    ),
    PageRow(
        ("GET", "/regions/{region}/competence-gap.csv"),
        Visit("GET", f"{R}/competence-gap.csv"),
        COORDINATOR,
    ),
    PageRow(
        ("GET", "/regions/{region}/competence-gap.xlsx"),
        Visit("GET", f"{R}/competence-gap.xlsx"),
        COORDINATOR,
    ),
    PageRow(
        ("POST", "/regions/{region}/assignments"),
        Visit(
            "POST",
            f"{R}/assignments",
            {"student_id": "s-own", "placement_id": "p-own", "reason": "by hand"},
        ),
        REFUSED,  # s-own's match is at p-own already: refused next to the placement
    ),
    PageRow(
        ("POST", "/regions/{region}/supplementary"),
        Visit("POST", f"{R}/supplementary", {"ranks_until": ""}),
        REFUSED,  # no round completed: no unplaced students
    ),
)
