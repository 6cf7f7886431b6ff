"""The page access rows of a teacher's profile page (entrypoints/web/teacher.py). The world's
s-own is a student's record: its region's coordinator gets the page's 404 (no such teacher),
everybody else the rule's refusal. A teacher's own calls are test_teacher_pages.py's."""

from __future__ import annotations

from . import PageRow, Visit

#             anon st-own st-oth co-own co-oth crd-in crd-out oper svc
TEACHER_PAGE = "303 403 403 403 403 ok 403 403 403"
TEACHER_FORM = "403 403 403 403 403 ok 403 403 403"  # anonymous: no session, no CSRF token

ROWS: tuple[PageRow, ...] = (
    PageRow(
        ("GET", "/teachers/{teacher_id}/profile"),
        Visit("GET", "/teachers/s-own/profile"),
        TEACHER_PAGE,
    ),
    PageRow(
        ("POST", "/teachers/{teacher_id}/profile"),
        Visit("POST", "/teachers/s-own/profile", {"subject": "Physics"}),
        TEACHER_FORM,
    ),
)
