"""The page access rows of the company's pages (entrypoints/web/company.py)."""

from __future__ import annotations

from tests.inmemory.placements.test_authorisation import OWN_MATCH

from . import PageRow, Visit

#       anon st-own st-oth co-own co-oth crd-in crd-out oper svc
STAFF = "303 403 403 ok 403 ok 403 403 403"
STAFF_POST = "403 403 403 303 403 303 403 403 403"  # done: sent on to the page
POSTERS = "303 403 403 ok 403 ok ok 403 403"  # a coordinator may post in their own regions

OFFER = {"placement_id": "p-new", "region": "SE-AB", "capacity": "2", "title": "Welder"}

ROWS: tuple[PageRow, ...] = (
    PageRow(("GET", "/companies/{company_id}"), Visit("GET", "/companies/c-own"), STAFF),
    PageRow(
        ("POST", "/companies/{company_id}/channel"),
        Visit("POST", "/companies/c-own/channel", {"channel": "email"}),
        STAFF_POST,
    ),
    PageRow(
        ("GET", "/companies/{company_id}/placements/new"),
        Visit("GET", "/companies/c-own/placements/new"),
        POSTERS,
    ),
    PageRow(
        ("POST", "/companies/{company_id}/placements/new"),
        Visit("POST", "/companies/c-own/placements/new", OFFER),
        STAFF_POST,
    ),
    PageRow(("GET", "/placements/{placement_id}"), Visit("GET", "/placements/p-own"), STAFF),
    PageRow(
        ("POST", "/placements/{placement_id}"),
        Visit("POST", "/placements/p-own", {"capacity": "3"}),
        STAFF_POST,
    ),
    PageRow(
        ("POST", "/placements/{placement_id}/withdraw"),
        Visit("POST", "/placements/p-own/withdraw", {"confirm": "yes"}),
        STAFF_POST,
    ),
    PageRow(
        ("GET", "/placements/{placement_id}/matches"),
        Visit("GET", "/placements/p-own/matches"),
        STAFF,
    ),
    PageRow(
        ("POST", "/matches/{match_id}/company-answer"),
        Visit("POST", f"/matches/{OWN_MATCH}/company-answer", {"answer": "accept"}),
        STAFF_POST,
    ),
)
