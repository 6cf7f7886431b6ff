"""The page access rows of the student's pages (entrypoints/web/student.py)."""

from __future__ import annotations

from tests.inmemory.placements.test_authorisation import OWN_MATCH

from . import PageRow, Visit

#          anon st-own st-oth co-own co-oth crd-in crd-out oper svc
SELF_PAGE = "303 ok 403 403 403 ok 403 403 403"
SELF_FORM = "403 303 403 403 403 303 403 403 403"  # anonymous: no session, so no CSRF token

ROWS: tuple[PageRow, ...] = (
    PageRow(("GET", "/students/{student_id}"), Visit("GET", "/students/s-own"), SELF_PAGE),
    PageRow(
        ("GET", "/students/{student_id}/choices"),
        Visit("GET", "/students/s-own/choices"),
        SELF_PAGE,
    ),
    PageRow(
        ("POST", "/students/{student_id}/choices"),
        Visit("POST", "/students/s-own/choices", {"choice": "p-own"}),
        SELF_FORM,
    ),
    PageRow(
        ("POST", "/matches/{match_id}/answer"),
        Visit("POST", f"/matches/{OWN_MATCH}/answer", {"answer": "accept"}),
        SELF_FORM,
    ),
)
