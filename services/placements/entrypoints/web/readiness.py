"""The coordinator's supervisor readiness page: the region's settings (its supervisor course's
address, how many years a course counts, whether a match is confirmed only once its supervisor
is ready) and its open placements whose supervisor is not ready, each with a form to record the
day the supervisor completed the course.

The rule is the API's `coordinator-region` (`GET/PUT /v1/regions/{region}/readiness-settings`,
`PUT .../supervisor-training`, `GET .../supervisors/not-ready` call the same handlers); a refused
form comes back on the page with its error next to the field and in the summary at the top.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ... import handlers
from ...domain import supervisors
from ...domain.commands import NotReadyQuery, RecordTraining, SetReadinessSettings
from ...domain.errors import Invalid
from ...ports import PlacementsUnitOfWork
from ..auth import Access, rule
from . import i18n
from .i18n import N_
from .render import page
from .session import Page, require_csrf

if TYPE_CHECKING:
    from ...bootstrap import Container

router = APIRouter(tags=["web"], include_in_schema=False)
Offset = Annotated[int, Query(ge=0, le=10_000_000)]

PAGE_SIZE: Final = 50
STATUS_NAMES: Final[dict[str, str]] = {
    "not_started": N_("No course recorded"),
    "expired": N_("Course expired"),
    "no_supervisor": N_("No supervisor named"),
}
SAVED: Final[dict[str, str]] = {
    "settings": N_("The region's settings are saved."),
    "training": N_("The course of the supervisor of %(placement)s is recorded."),
}
SETTING_ERRORS: Final[dict[str, str]] = {
    "course_url": N_("Give the course's address as a web address beginning with https://."),
    "validity_years": N_("Give a whole number of years from 1 to 50."),
}
TRAINING_ERRORS: Final[dict[str, str]] = {
    "missing": N_("Give the day the supervisor completed the course."),
    "unreadable": N_("Give the day as YYYY-MM-DD."),
    "future": N_("The day is in the future. Give the day the course was completed."),
    "too_old": N_("The day is before 1950. Check the year."),
    "email": N_("No placement of this company in the region names this supervisor now."),
}


def _uow(request: Request, access: Access) -> PlacementsUnitOfWork:
    container: Container = request.app.state.container
    return container.uow(actor=access.actor)


def _text(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


@dataclass(frozen=True)
class SettingsForm:
    """The settings form as shown: stored values, or what was typed, and its errors."""

    course_url: str = ""
    validity_years: str = str(supervisors.DEFAULT_VALIDITY_YEARS)
    require_readiness: bool = False
    errors: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, s: supervisors.ReadinessSettings) -> SettingsForm:
        return cls(s.course_url or "", str(s.validity_years), s.require_readiness)


@dataclass(frozen=True)
class TrainingRefusal:
    """A refused training form: its placement, what was typed, and the error."""

    placement_id: str
    trained_on: str
    message: str


async def _readiness_page(
    request: Request,
    access: Access,
    region: str,
    offset: int = 0,
    *,
    status: int = 200,
    notice: str | None = None,
    form: SettingsForm | None = None,
    refusal: TrainingRefusal | None = None,
) -> HTMLResponse:
    query = NotReadyQuery(region, limit=PAGE_SIZE, offset=offset)
    found = await handlers.supervisors_not_ready(query, _uow(request, access))
    previous = max(offset - PAGE_SIZE, 0) if offset > 0 else None
    following = offset + PAGE_SIZE if offset + PAGE_SIZE < found.total else None
    return page(
        request,
        "web/coordinator/readiness.html.j2",
        who=access.principal,
        status=status,
        region=region,
        found=found,
        settings=found.settings,
        form=form or SettingsForm.of(found.settings),
        refusal=refusal,
        notice=notice,
        status_names=STATUS_NAMES,
        offset=offset,
        previous=previous,
        next=following,
        today=datetime.now(UTC).date(),
        min_years=supervisors.MIN_VALIDITY_YEARS,
        max_years=supervisors.MAX_VALIDITY_YEARS,
    )


@router.get("/regions/{region}/readiness", openapi_extra=rule("coordinator-region"))
async def readiness_page(
    request: Request,
    region: str,
    access: Page,
    offset: Offset = 0,
    saved: Annotated[str | None, Query(max_length=20)] = None,
    placement: Annotated[str | None, Query(max_length=200)] = None,
) -> HTMLResponse:
    """The region's readiness settings and its open placements whose supervisor is not ready."""
    t = i18n.Words(i18n.of_request(request))
    notice = None
    if saved in SAVED:
        notice = t.gettext(SAVED[saved]) % {"placement": placement or ""}
    return await _readiness_page(request, access, region, offset, notice=notice)


@router.post(
    "/regions/{region}/readiness/settings",
    openapi_extra=rule("coordinator-region"),
    dependencies=[Depends(require_csrf)],
)
async def save_settings(request: Request, region: str, access: Page) -> Response:
    """Save the region's settings (`handlers.set_readiness_settings`)."""
    values = await request.form()
    typed = SettingsForm(
        _text(values, "course_url"),
        _text(values, "validity_years"),
        _text(values, "require_readiness") == "1",
    )
    errors: dict[str, str] = {}
    years = int(typed.validity_years) if typed.validity_years.isdigit() else None
    if years is None or len(typed.validity_years) > 3:
        errors["validity_years"] = SETTING_ERRORS["validity_years"]
    else:
        command = SetReadinessSettings(
            region, typed.course_url or None, years, typed.require_readiness
        )
        try:
            await handlers.set_readiness_settings(command, _uow(request, access))
        except Invalid as error:
            errors.update({e.field: SETTING_ERRORS.get(e.field, e.message) for e in error.errors})
        else:
            return RedirectResponse(
                f"/regions/{region}/readiness?saved=settings#notice", status_code=303
            )
    shown = SettingsForm(typed.course_url, typed.validity_years, typed.require_readiness, errors)
    return await _readiness_page(request, access, region, status=422, form=shown)


@router.post(
    "/regions/{region}/readiness/training",
    openapi_extra=rule("coordinator-region"),
    dependencies=[Depends(require_csrf)],
)
async def record_training(request: Request, region: str, access: Page) -> Response:
    """Record the day the supervisor of a placement completed the course
    (`handlers.record_training`); a day in the future is refused next to the field."""
    values = await request.form()
    placement_id = _text(values, "placement_id")
    typed = _text(values, "trained_on")
    digits = _text(values, "offset")
    offset = int(digits) if digits.isdigit() and len(digits) < 9 else 0
    problem: str | None = None
    day: date | None = None
    if not typed:
        problem = "missing"
    else:
        try:
            day = date.fromisoformat(typed)
        except ValueError:
            problem = "unreadable"
    if day is not None:
        command = RecordTraining(region, _text(values, "company_id"), _text(values, "email"), day)
        try:
            await handlers.record_training(command, _uow(request, access))
        except Invalid as error:
            named = {e.field for e in error.errors}
            if "trained_on" in named:
                problem = "future" if day > datetime.now(UTC).date() else "too_old"
            else:
                problem = "email"
        else:
            done = urlencode({"saved": "training", "placement": placement_id})
            return RedirectResponse(f"/regions/{region}/readiness?{done}#notice", status_code=303)
    t = i18n.Words(i18n.of_request(request))
    refusal = TrainingRefusal(placement_id, typed, t.gettext(TRAINING_ERRORS[problem or "email"]))
    return await _readiness_page(request, access, region, offset, status=422, refusal=refusal)
