"""The coordinator's pages: a region's dashboard (its figures, the form to run a round, the
links to the rest), a round's page (its status, polled while matching works, then the report
with its charts), the region's students without a standing match, its audit trail, and its
matches as CSV or XLSX.

The rules are the API's: `coordinator-region` for the region's pages, `round-read` for a
round's, and `round-request`, decided here with the region the form posts to, as
`POST /v1/rounds` decides with the body's.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Final

import xlsxwriter
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from shared.contracts.events import Policy, RoundKind
from shared.contracts.vocabulary import Participant

from ... import handlers
from ...domain.audit import AuditQuery
from ...domain.commands import RequestRound
from ...domain.errors import FieldError, Invalid
from ...domain.model import MatchRecord, Round
from ...domain.outcomes import RANKS
from ...domain.reports import (
    DISTANCE_BOUNDS_KM,
    RegionOverview,
    RoundBreakdown,
    RoundReport,
    UnplacedQuery,
)
from ...ports import PlacementsUnitOfWork
from .. import reports
from ..auth import Access, rule
from . import i18n
from . import outcomes as outcome_pages
from .charts import Chart, charts_of
from .i18n import N_
from .outcomes import PARTICIPANT_NAMES
from .render import page
from .session import Page, require_csrf

if TYPE_CHECKING:
    from ...bootstrap import Container

router = APIRouter(tags=["web"], include_in_schema=False)
Offset = Annotated[int, Query(ge=0, le=10_000_000)]

PAGE_SIZE: Final = 50
POLL_SECONDS: Final = 2
POLICIES: Final[dict[str, Policy]] = {"optimal": "optimal", "stable": "stable"}
POLICY_NAMES: Final[dict[str, str]] = {
    "optimal": N_("Optimal: as many students as possible near the top of their lists"),
    "stable": N_("Stable: no student and placement would both rather have each other"),
}
REASONS: Final[dict[str, str]] = outcome_pages.REASON_NAMES
KINDS: Final[dict[str, RoundKind]] = {"ordinary": "ordinary", "supplementary": "supplementary"}
KIND_NAMES: Final[dict[str, str]] = {
    "ordinary": N_("Ordinary: every student of the region is matched again"),
    "supplementary": N_(
        "Supplementary: standing matches are kept, only the unplaced students are placed"
    ),
}
PARTICIPANTS: Final[dict[str, Participant]] = {"student": "student", "teacher": "teacher"}
FIELD_ERRORS: Final[dict[str, str]] = {
    "participant": N_(
        "The region has no open working-life period for teachers or no registered teacher: a "
        "round of teachers would place no one."
    ),
    "kind": N_(
        "The region has no unplaced students: a supplementary round would place no one. Run "
        "an ordinary round."
    ),
    "policy": N_("Choose how the round matches."),
}
ROLES: Final[dict[str, str]] = {
    "student": N_("Student"),
    "teacher": N_("Teacher"),
    "company": N_("Company"),
    "coordinator": N_("Coordinator"),
    "operator": N_("Operator"),
    "service": N_("Service"),
    "supervisor": N_("Supervisor"),
    "system": N_("System"),
}
EVENTS: Final[dict[str, str]] = {
    "PlacementPosted": N_("A placement was posted"),
    "PlacementUpdated": N_("A placement was changed"),
    "PlacementWithdrawn": N_("A placement was withdrawn"),
    "StudentRegistered": N_("A student was registered"),
    "StudentPreferencesUpdated": N_("A student changed their choices"),
    "StudentWithdrawn": N_("A student was withdrawn and their personal data erased"),
    "MatchingRoundRequested": N_("A matching round was requested"),
    "MatchingRoundCompleted": N_("A matching round was completed"),
    "MatchProposed": N_("A match was proposed"),
    "MatchAccepted": N_("A match was accepted"),
    "MatchDeclined": N_("A match was declined"),
    "MatchConfirmed": N_("A match was confirmed"),
    "MatchCancelled": N_("A match was cancelled"),
    "NotificationDelivered": N_("A notice was delivered"),
    "NotificationFailed": N_("A notice could not be delivered"),
    "SupervisorTrainingRecorded": N_("A supervisor's course was recorded"),
    "ReadinessSettingsChanged": N_("The region's supervisor readiness settings were changed"),
}
DISTANCE_LABELS: Final = (
    N_("Under 5 km"),
    N_("5 to 10 km"),
    N_("10 to 25 km"),
    N_("25 to 50 km"),
    N_("50 to 100 km"),
    N_("100 km or more"),
)
if len(DISTANCE_LABELS) != len(DISTANCE_BOUNDS_KM) + 1:  # a band without words is a bug
    raise RuntimeError("DISTANCE_LABELS must name every band of DISTANCE_BOUNDS_KM")

EXPORT_COLUMNS: Final = (
    ("match_id", 38),
    ("round_id", 38),
    ("student_id", 16),
    ("placement_id", 16),
    ("company_id", 18),
    ("rank", 7),
    ("state", 11),
    ("updated_at", 22),
)
XLSX: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_UNSAFE_NAME: Final = re.compile(r"[^A-Za-z0-9_-]+")


def _uow(request: Request, access: Access) -> PlacementsUnitOfWork:
    container: Container = request.app.state.container
    return container.uow(actor=access.actor)


def _words(request: Request) -> i18n.Words:
    return i18n.Words(i18n.of_request(request))


# ------------------------------------------------------------------------------- dashboard


@dataclass(frozen=True)
class RoundForm:
    """The run form's choices: policy, kind, fill, dry run."""

    policy: str = "optimal"
    kind: str = "ordinary"
    fill: bool = False
    dry_run: bool = False
    participant: str = "student"


def _region_page(
    request: Request,
    access: Access,
    overview: RegionOverview,
    *,
    status: int = 200,
    chosen: RoundForm | None = None,
    errors: Sequence[FieldError] = (),
) -> HTMLResponse:
    return page(
        request,
        "web/coordinator/region.html.j2",
        who=access.principal,
        status=status,
        region=overview.region,
        overview=overview,
        last=overview.last_round,
        policies=POLICY_NAMES,
        kinds=KIND_NAMES,
        participants=PARTICIPANT_NAMES,
        chosen=chosen or RoundForm(),
        errors=list(errors),
        error_of={e.field: e.message for e in errors},
        today=datetime.now(UTC).date(),
    )


@router.get("/regions/{region}", openapi_extra=rule("coordinator-region"))
async def region_page(request: Request, region: str, access: Page) -> HTMLResponse:
    """The region's figures, its latest round, the form to run one, and the links."""
    overview = await handlers.region_overview(region, _uow(request, access))
    return _region_page(request, access, overview)


@router.post(
    "/regions/{region}/rounds",
    openapi_extra=rule("round-request"),
    dependencies=[Depends(require_csrf)],
)
async def run_round(request: Request, region: str, access: Page) -> Response:
    """Ask for a round of the region with the chosen policy, kind, fill and dry run; on to the
    round's page. A supplementary round of a region without unplaced students is refused next
    to the kind."""
    access.permit(region=region)
    uow = _uow(request, access)
    form = await request.form()

    def text(name: str) -> str:
        value = form.get(name)
        return value if isinstance(value, str) else ""

    chosen = RoundForm(
        text("policy"),
        text("kind") or "ordinary",
        text("fill") == "1",
        text("dry_run") == "1",
        text("participant") or "student",
    )
    policy = POLICIES.get(chosen.policy)
    kind = KINDS.get(chosen.kind)
    who = PARTICIPANTS.get(chosen.participant)
    errors: list[FieldError] = []
    if who is None:
        errors.append(FieldError("participant", N_("Choose students or teachers.")))
    if policy is None:
        errors.append(FieldError("policy", N_("Choose how the round matches.")))
    if kind is None:
        errors.append(FieldError("kind", N_("Choose an ordinary or a supplementary round.")))
    if policy is not None and kind is not None and who is not None:
        command = RequestRound(
            region,
            policy,
            kind=kind,
            fill=chosen.fill,
            dry_run=chosen.dry_run,
            participant=who,
        )
        try:
            round_id = await handlers.request_round(command, uow)
        except Invalid as error:
            errors += [
                FieldError(e.field, FIELD_ERRORS.get(e.field, e.message)) for e in error.errors
            ]
        else:
            return RedirectResponse(f"/rounds/{round_id}?requested=1", status_code=303)
    overview = await handlers.region_overview(region, uow)
    return _region_page(request, access, overview, status=422, chosen=chosen, errors=errors)


# ---------------------------------------------------------------------------------- rounds


def _placed_by_choice(round_: Round, t: i18n.Words) -> Chart | None:
    f = round_.figures
    if f is None:
        return None
    _ = t.gettext
    return Chart(
        "rank-figures",
        _("Students by the choice they were placed at"),
        _(
            "Every student of the round: placed at their first choice, second or third, lower, "
            "or not placed."
        ),
        _("Outcome"),
        _("Students"),
        (
            (_("First choice"), f.first_choice),
            (_("Second or third choice"), max(f.top3 - f.first_choice, 0)),
            (_("Below the third choice, or kept outside the choices"), max(f.placed - f.top3, 0)),
            (_("Not placed"), max(f.students - f.placed, 0)),
        ),
    )


def _unplaced_by_reason(round_: Round, t: i18n.Words) -> Chart | None:
    reasons = round_.unplaced_by_reason or {}
    if not reasons:
        return None
    _ = t.gettext
    return Chart(
        "unplaced-reasons",
        _("Unplaced students by reason"),
        _("Why the round placed these students nowhere."),
        _("Reason"),
        _("Students"),
        tuple((_(REASONS.get(k, k)), n) for k, n in sorted(reasons.items())),
    )


def _breakdown_charts(report: RoundReport, t: i18n.Words) -> list[Chart]:
    b = report.breakdown
    if b.proposals == 0:
        return []
    _ = t.gettext
    ranks = [r for r in b.by_rank if r is not None]
    by_rank = [
        (_("Choice {n}").format(n=t.number(r)), b.by_rank.get(r, 0))
        for r in range(1, max(ranks, default=0) + 1)
    ]
    if b.by_rank.get(None):
        by_rank.append((_("Not among their choices"), b.by_rank[None]))
    programmes = sorted(b.by_programme.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
    by_programme = [(p if p is not None else _("No programme recorded"), n) for p, n in programmes]
    by_distance = [(_(label), b.by_distance.get(i, 0)) for i, label in enumerate(DISTANCE_LABELS)]
    if b.by_distance.get(None):
        by_distance.append((_("Home or site not known"), b.by_distance[None]))
    return [
        Chart(
            "proposal-ranks",
            _("New proposals by the rank of the choice"),
            _("The round's new proposals by where the student ranked the placement."),
            _("Rank"),
            _("Proposals"),
            tuple(by_rank),
        ),
        Chart(
            "proposal-programmes",
            _("New proposals by programme"),
            _("The round's new proposals by the student's programme."),
            _("Programme"),
            _("Proposals"),
            tuple(by_programme),
        ),
        Chart(
            "proposal-distances",
            _("New proposals by distance from home to the workplace"),
            _(
                "The round's new proposals by the straight-line distance from the student's home "
                "to the placement's site, as both are recorded now."
            ),
            _("Distance"),
            _("Proposals"),
            tuple(by_distance),
        ),
    ]


def _outcome_charts(out: reports.ReportOut, t: i18n.Words) -> list[Chart]:
    """The outcome report's rank distribution (1st to 10th, kept, filled, unplaced) and its
    unplaced students by reason."""
    _ = t.gettext
    ranks = [(_("Choice {n}").format(n=t.number(r)), out.ranks.get(str(r), 0)) for r in RANKS]
    ranks += [
        (_("Kept or assigned, not among their choices"), out.ranks.get("unranked", 0)),
        (_("Filled: a vacancy not among their choices"), out.ranks.get("filled", 0)),
        (_("Not placed"), out.ranks.get("unplaced", 0)),
    ]
    charts = [
        Chart(
            "outcome-ranks",
            _("Every student of the round by the choice they were placed at"),
            _(
                "Each student of the round once: placed at their 1st to 10th choice, kept or "
                "assigned by hand outside their choices, placed by fill at a vacancy they did "
                "not rank, or not placed."
            ),
            _("Outcome"),
            _("Students"),
            tuple(ranks),
        )
    ]
    if out.unplaced_by_reason:
        charts.append(
            Chart(
                "outcome-reasons",
                _("Unplaced students by reason"),
                _("Why the round placed these students nowhere."),
                _("Reason"),
                _("Students"),
                tuple((_(REASONS.get(k, k)), n) for k, n in out.unplaced_by_reason.items()),
            )
        )
    return charts


def _round_context(
    request: Request, report: RoundReport, outcome: reports.ReportOut | None = None
) -> dict[str, Any]:
    t = _words(request)
    round_ = report.round
    completed = round_.status == "completed"
    if outcome is not None and outcome.students == 0:
        outcome = None  # a round that reported no outcomes (before v2): the figures alone
    if outcome is not None:
        figures: list[Chart | None] = list(_outcome_charts(outcome, t))
    elif completed:
        figures = [_placed_by_choice(round_, t), _unplaced_by_reason(round_, t)]
    else:
        figures = []
    charts = [c for c in figures if c is not None]
    breakdown = _breakdown_charts(report, t) if completed else []
    waited = None
    if round_.requested_at is not None and not completed:
        waited = max(int((datetime.now(UTC) - round_.requested_at).total_seconds()), 0)
    return {
        "round": round_,
        "region": round_.region,
        "figures": round_.figures if completed else None,
        "breakdown": report.breakdown,
        "charts": charts_of(charts, t.number),
        "proposal_charts": charts_of(breakdown, t.number),
        "policies": POLICY_NAMES,
        "waited": waited,
        "poll": POLL_SECONDS,
        "outcome": outcome,
        "reason_names": REASONS,
        "options": outcome_pages.kind_line(round_, t),
    }


async def _report(
    request: Request, round_id: uuid.UUID, access: Access
) -> tuple[RoundReport, reports.ReportOut | None]:
    """The round's breakdown of its proposals and, once completed, the report of its outcomes
    (in the page's language)."""
    uow = _uow(request, access)
    found = await handlers.get_round(round_id, uow)
    if found.status != "completed":
        return RoundReport(found, RoundBreakdown()), None
    breakdown = await handlers.round_report(round_id, uow)
    outcome = await handlers.round_outcome_report(round_id, uow)
    return breakdown, reports.render(outcome, _words(request))


@router.get("/rounds/{round_id}", openapi_extra=rule("round-read"))
async def round_page(request: Request, round_id: uuid.UUID, access: Page) -> HTMLResponse:
    """The round's status (polled while matching works) and, once completed, its report."""
    report, outcome = await _report(request, round_id, access)
    return page(
        request,
        "web/coordinator/round.html.j2",
        who=access.principal,
        requested=request.query_params.get("requested") == "1",
        fragment=False,
        **_round_context(request, report, outcome),
    )


@router.get("/rounds/{round_id}/status", openapi_extra=rule("round-read"))
async def round_status(request: Request, round_id: uuid.UUID, access: Page) -> HTMLResponse:
    """The round's status alone, for the page's polling; once completed, the report too (an
    out-of-band swap into the page)."""
    report, outcome = await _report(request, round_id, access)
    return page(
        request,
        "web/coordinator/round-status.html.j2",
        who=access.principal,
        fragment=True,
        **_round_context(request, report, outcome),
    )


# -------------------------------------------------------------------------------- unplaced


@router.get("/regions/{region}/unplaced", openapi_extra=rule("coordinator-region"))
async def unplaced_page(
    request: Request, region: str, access: Page, offset: Offset = 0
) -> HTMLResponse:
    """The region's registered students without a standing match, a page at a time, with the
    latest round's counts of why students stayed unplaced."""
    uow = _uow(request, access)
    overview = await handlers.region_overview(region, uow)
    query = UnplacedQuery(region, limit=PAGE_SIZE + 1, offset=offset)
    found = await handlers.unplaced_students(query, uow)
    last = overview.last_round
    return page(
        request,
        "web/coordinator/unplaced.html.j2",
        who=access.principal,
        region=region,
        overview=overview,
        last=last,
        reasons=sorted((last.unplaced_by_reason or {}).items()) if last else [],
        reason_names=REASONS,
        students=found[:PAGE_SIZE],
        offset=offset,
        previous=max(offset - PAGE_SIZE, 0) if offset > 0 else None,
        next=offset + PAGE_SIZE if len(found) > PAGE_SIZE else None,
    )


# ----------------------------------------------------------------------------------- audit


@router.get("/regions/{region}/audit", openapi_extra=rule("coordinator-region"))
async def audit_page(
    request: Request, region: str, access: Page, offset: Offset = 0
) -> HTMLResponse:
    """The region's audit trail, newest first, a page at a time."""
    query = AuditQuery(region, limit=PAGE_SIZE + 1, offset=offset)
    records = await handlers.audit_of_region(query, _uow(request, access))
    return page(
        request,
        "web/coordinator/audit.html.j2",
        who=access.principal,
        region=region,
        records=records[:PAGE_SIZE],
        events=EVENTS,
        roles=ROLES,
        offset=offset,
        previous=max(offset - PAGE_SIZE, 0) if offset > 0 else None,
        next=offset + PAGE_SIZE if len(records) > PAGE_SIZE else None,
    )


# ------------------------------------------------------------------------------- downloads


def _filename(region: str, extension: str) -> str:
    safe = _UNSAFE_NAME.sub("_", region).strip("_") or "region"
    return f"matches-{safe}-{datetime.now(UTC).date().isoformat()}.{extension}"


def _row(m: MatchRecord) -> list[str | int | None]:
    return [
        str(m.match_id),
        str(m.round_id) if m.round_id else None,
        m.student_id,
        m.placement_id,
        m.company_id,
        m.rank,
        m.state,
        m.updated_at.astimezone(UTC).isoformat(timespec="seconds"),
    ]


def matches_csv(matches: Sequence[MatchRecord]) -> bytes:
    """A header row and one row per match, UTF-8 with a byte order mark (spreadsheet programs
    read the encoding from it)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([name for name, _ in EXPORT_COLUMNS])
    for m in matches:
        writer.writerow(["" if v is None else v for v in _row(m)])
    return out.getvalue().encode("utf-8-sig")


def matches_xlsx(matches: Sequence[MatchRecord], region: str) -> bytes:
    """One sheet: a bold, frozen header row with a filter, sized columns, `updated_at` as a
    date-time (UTC)."""
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True, "remove_timezone": True})
    sheet = book.add_worksheet(f"Matches {_UNSAFE_NAME.sub('_', region)}"[:31])
    header = book.add_format({"bold": True, "bg_color": "#DCE6F1", "bottom": 1})
    when = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    for col, (name, width) in enumerate(EXPORT_COLUMNS):
        sheet.write_string(0, col, name, header)
        sheet.set_column(col, col, width)
    for row, m in enumerate(matches, start=1):
        values = _row(m)
        for col, value in enumerate(values[:-1]):
            if isinstance(value, int):
                sheet.write_number(row, col, value)
            elif value is not None:
                sheet.write_string(row, col, value)
        sheet.write_datetime(row, len(values) - 1, m.updated_at.astimezone(UTC), when)
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, max(len(matches), 1), len(EXPORT_COLUMNS) - 1)
    book.close()
    return buffer.getvalue()


@router.get("/regions/{region}/matches.csv", openapi_extra=rule("coordinator-region"))
async def matches_csv_download(request: Request, region: str, access: Page) -> Response:
    """The region's matches as CSV."""
    matches = await handlers.region_matches(region, _uow(request, access))
    return reports.download(
        matches_csv(matches), "text/csv; charset=utf-8", _filename(region, "csv")
    )


@router.get("/regions/{region}/matches.xlsx", openapi_extra=rule("coordinator-region"))
async def matches_xlsx_download(request: Request, region: str, access: Page) -> Response:
    """The region's matches as an Excel workbook."""
    matches = await handlers.region_matches(region, _uow(request, access))
    return reports.download(matches_xlsx(matches, region), XLSX, _filename(region, "xlsx"))
