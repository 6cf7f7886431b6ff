"""A teacher's own profile page: the subject they teach, the skills they want to update at a
company and the ISO weeks they can spend there (`/teachers/{id}/profile`). The rest of a
teacher's journey is the students' pages, which speak of working-life periods for a teacher's
record: `/students/{id}` (the proposal, its answer, the latest round's outcome) and
`/students/{id}/choices` (the region's periods for teachers, ranked).

The page calls the API's handlers under the API's rule `teacher-self` (the teacher themselves,
or a coordinator of the region); a bad field comes back with the form, named in an error
summary that links to it, and nothing is saved.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from shared.contracts.profiles import MAX_AVAILABLE_WEEKS, MAX_SKILLS

from ... import handlers
from ...domain.commands import UpdateTeacher
from ...domain.errors import FieldError, Invalid
from ...domain.model import Student
from ..auth import rule
from .i18n import N_
from .render import page
from .session import Page, require_csrf

router = APIRouter(tags=["web"], include_in_schema=False)

WEEK: Final = re.compile(r"^[0-9]{4}-W[0-9]{2}$")
SEPARATORS: Final = re.compile(r"[\s,;]+")
PROBLEMS: Final[dict[str, str]] = {
    "subject": N_("Give the subject you teach."),
    "skills": N_("Give at most %(max)s skills, each at most 100 characters."),
    "available_weeks": N_(
        "Give each week once as year, W and week number, like 2027-W10, and only weeks of the "
        "calendar (at most %(max)s)."
    ),
}
"""What a bad field says, by the field it names."""


def _split(text: str) -> list[str]:
    return [item for item in SEPARATORS.split(text.strip()) if item]


def _skills(text: str) -> list[str]:
    return [item.strip() for item in re.split(r"[,;\n]+", text) if item.strip()]


def _own(access: Any, teacher_id: str) -> bool:
    who = access.principal
    return who is not None and who.has("teacher") and who.student_id == teacher_id


def _form_of(teacher: Student) -> dict[str, str]:
    profile = teacher.profile
    return {
        "subject": profile.subject or "",
        "skills": ", ".join(profile.skills),
        "available_weeks": ", ".join(profile.available_weeks),
    }


def _problems(form: dict[str, str]) -> dict[str, str]:
    """The fields this page checks before the handler (the formats a text field can break)."""
    found: dict[str, str] = {}
    if not form["subject"].strip() or len(form["subject"].strip()) > 100:
        found["subject"] = PROBLEMS["subject"]
    skills = _skills(form["skills"])
    if len(skills) > MAX_SKILLS or any(len(s) > 100 for s in skills):
        found["skills"] = PROBLEMS["skills"]
    weeks = _split(form["available_weeks"])
    if len(weeks) > MAX_AVAILABLE_WEEKS or not all(WEEK.match(w) for w in weeks):
        found["available_weeks"] = PROBLEMS["available_weeks"]
    return found


def _field(error: FieldError) -> str:
    return error.field.split("[", 1)[0]


async def _page(
    request: Request,
    access: Any,
    teacher_id: str,
    *,
    form: dict[str, str] | None = None,
    problems: dict[str, str] | None = None,
    saved: bool = False,
    status: int = 200,
) -> HTMLResponse:
    teacher = await handlers.get_teacher(teacher_id, request.app.state.container.uow(access.actor))
    return page(
        request,
        "web/teacher/profile.html.j2",
        who=access.principal,
        status=status,
        teacher=teacher,
        profile=teacher.profile,
        own=_own(access, teacher_id),
        form=form or _form_of(teacher),
        problems=problems or {},
        limits={"skills": MAX_SKILLS, "available_weeks": MAX_AVAILABLE_WEEKS},
        saved=saved,
    )


@router.get("/teachers/{teacher_id}/profile", openapi_extra=rule("teacher-self"))
async def profile(
    request: Request,
    teacher_id: str,
    access: Page,
    saved: Annotated[str | None, Query(max_length=5)] = None,
) -> HTMLResponse:
    """The teacher's profile as matching reads it, in a form to change it."""
    return await _page(request, access, teacher_id, saved=saved == "1")


@router.post(
    "/teachers/{teacher_id}/profile",
    openapi_extra=rule("teacher-self"),
    dependencies=[Depends(require_csrf)],
)
async def save_profile(request: Request, teacher_id: str, access: Page) -> Response:
    """Save the subject, the skills to update (separated by commas or lines) and the available
    weeks (separated by commas or spaces); back to the page, which says it is saved."""
    sent = await request.form()
    form = {
        name: value.strip() if isinstance(value := sent.get(name), str) else ""
        for name in ("subject", "skills", "available_weeks")
    }
    problems = _problems(form)
    if not problems:
        command = UpdateTeacher(
            teacher_id,
            form["subject"],
            tuple(dict.fromkeys(_skills(form["skills"]))),
            tuple(_split(form["available_weeks"])),
        )
        try:
            await handlers.update_teacher(command, request.app.state.container.uow(access.actor))
        except Invalid as error:
            problems = {
                _field(e): PROBLEMS.get(_field(e), PROBLEMS["subject"]) for e in error.errors
            }
    if problems:
        return await _page(request, access, teacher_id, form=form, problems=problems, status=422)
    return RedirectResponse(f"/teachers/{teacher_id}/profile?saved=1", status_code=303)
