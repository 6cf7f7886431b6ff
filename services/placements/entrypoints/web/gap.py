"""The coordinator's competence gap page: for a region and a term, the demand for each skill and
programme in the term's placements against the supply in its students, the biggest gaps in
words, a chart of them and one of the slots left empty for want of a skill after each round,
the tables, and the report as CSV and XLSX.

The rule is the API's `coordinator-region`; the figures and the words are the API's
(`handlers.competence_gap`, `reports.render_gap`), so the page, the JSON and the downloads say
the same. A term that is not one, or one the region has nothing in, is the form's error, next
to the term field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from ... import handlers
from ...domain import gap
from ...domain.errors import Invalid
from ...ports import PlacementsUnitOfWork
from .. import reports
from ..auth import Access, rule
from . import i18n
from .charts import BAR_HEIGHT, LABEL_LINE, ROW, VALUE_ROOM, WIDTH, Chart, charts_of
from .render import page
from .session import Page

if TYPE_CHECKING:
    from ...bootstrap import Container

router = APIRouter(tags=["web"], include_in_schema=False)
TermQuery = Annotated[str | None, Query(max_length=40)]

TOP: Final = 5
GROUP_GAP: Final = 12
"""Room between two skills' bars in the demand and supply chart."""


def _uow(request: Request, access: Access) -> PlacementsUnitOfWork:
    container: Container = request.app.state.container
    return container.uow(actor=access.actor)


def _words(request: Request) -> i18n.Words:
    return i18n.Words(i18n.of_request(request))


# ---------------------------------------------------------------------------------- charts


@dataclass(frozen=True)
class PairBar:
    """One bar of a pair: its label, its value (None: hidden, under 5) and the value in words."""

    label: str
    value: int | None
    text: str


@dataclass(frozen=True)
class PairedChart:
    """A chart of pairs of bars, a pair per skill or programme: the slots needing it, and the
    students who have it. A hidden count draws no bar and reads "< 5"."""

    chart_id: str
    title: str
    description: str
    pairs: tuple[tuple[str, tuple[PairBar, PairBar]], ...]

    def spoken(self) -> str:
        said = "; ".join(
            f"{name}: " + ", ".join(f"{b.label} {b.text}" for b in bars)
            for name, bars in self.pairs
        )
        return f"{self.description} {said}." if said else self.description


def paired_chart(chart: PairedChart) -> Markup:
    """The chart as an `<svg>` (no script, no style attribute; the colours are app.css's
    `svg.bars`): per pair its name, then each bar under its own label with its value after it,
    lengths proportional to the biggest value shown."""
    cid = chart.chart_id
    biggest = max((b.value or 0 for _, bars in chart.pairs for b in bars), default=0)
    room = WIDTH - VALUE_ROOM
    block = LABEL_LINE + 2 * ROW + GROUP_GAP
    height = max(len(chart.pairs), 1) * block + 4
    parts = [
        Markup(
            '<svg class="bars" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" '
            'role="img" aria-labelledby="{}-title {}-desc" focusable="false">'
        ).format(WIDTH, height, cid, cid),
        Markup('<title id="{}-title">{}</title>').format(cid, chart.title),
        Markup('<desc id="{}-desc">{}</desc>').format(cid, chart.spoken()),
    ]
    for index, (name, bars) in enumerate(chart.pairs):
        top = index * block + 2
        parts.append(
            Markup('<g class="pair"><text class="bar-value" x="0" y="{}">{}</text>').format(
                top + LABEL_LINE - 3, name
            )
        )
        for number, bar in enumerate(bars):
            row = top + LABEL_LINE + number * ROW
            bar_top = row + LABEL_LINE + 4
            length = round(room * (bar.value or 0) / biggest) if biggest > 0 else 0
            parts.append(
                Markup(
                    '<text class="bar-label" x="0" y="{label_y}">{label}</text>'
                    '<rect class="bar-track" x="0" y="{bar_y}" width="{room}" height="{h}"/>'
                    '<rect class="bar-fill" x="0" y="{bar_y}" width="{length}" height="{h}"/>'
                    '<text class="bar-value" x="{value_x}" y="{value_y}">{value}</text>'
                ).format(
                    label_y=row + LABEL_LINE - 3,
                    label=bar.label,
                    bar_y=bar_top,
                    room=room,
                    h=BAR_HEIGHT,
                    length=length,
                    value_x=length + 6,
                    value_y=bar_top + BAR_HEIGHT - 5,
                    value=bar.text,
                )
            )
        parts.append(Markup("</g>"))
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def count_text(value: int | None, t: i18n.Words) -> str:
    """A count of students as the page shows it: "< 5" when hidden."""
    return reports.LESS_THAN if value is None else t.number(value)


def key_name(g: reports.KeyGapOut, t: i18n.Words) -> str:
    if g.dimension == "skill":
        return t.gettext("skill %(key)s") % {"key": g.key}
    return t.gettext("programme %(key)s") % {"key": g.key}


def demand_chart(out: reports.GapOut, t: i18n.Words) -> PairedChart | None:
    """The biggest gaps: the slots needing each, and the students who have it."""
    if not out.gaps:
        return None
    _ = t.gettext
    pairs = tuple(
        (
            key_name(g, t),
            (
                PairBar(_("Slots needing it"), g.slots, t.number(g.slots)),
                PairBar(
                    _("Students who have it") if g.dimension == "skill" else _("Students in it"),
                    g.students,
                    count_text(g.students, t),
                ),
            ),
        )
        for g in out.gaps
    )
    return PairedChart(
        "gap-demand",
        _("The biggest gaps: slots needed and students who have it"),
        _(
            "For each of the biggest gaps, the slots of the term's placements that need the "
            "skill or programme, and the students of the term's rounds who have it. A count "
            "under 5 is not drawn and reads “< 5”."
        ),
        pairs,
    )


def round_label(number: int, r: reports.RoundGapOut, t: i18n.Words) -> str:
    when = t.date(r.completed_at) if r.completed_at else ""
    label = t.gettext("Round %(n)s") % {"n": t.number(number)}
    return f"{label} ({when})" if when else label


def trend_chart(out: reports.GapOut, t: i18n.Words) -> Chart | None:
    """The slots left empty for want of a skill or a programme after each round."""
    if not out.rounds:
        return None
    _ = t.gettext
    bars = tuple(
        (round_label(n, r, t), r.empty_for_want) for n, r in enumerate(out.rounds, start=1)
    )
    return Chart(
        "gap-trend",
        _("Slots left empty for want of a skill or programme, after each round"),
        _(
            "Each round of the term, oldest first: the slots of the term's placements it left "
            "free when no student it left unplaced who could reach them had what they need."
        ),
        _("Round"),
        _("Slots"),
        bars,
    )


# ----------------------------------------------------------------------------------- pages


def _query(term: str | None) -> str:
    return "?" + urlencode({"term": term}) if term else ""


def _page(
    request: Request,
    access: Access,
    region: str,
    *,
    out: reports.GapOut | None,
    terms: Sequence[gap.Term],
    chosen: str,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    t = _words(request)
    pair = demand_chart(out, t) if out is not None else None
    trend = trend_chart(out, t) if out is not None else None
    return page(
        request,
        "web/coordinator/gap.html.j2",
        who=access.principal,
        status=status,
        region=region,
        out=out,
        terms=[(x.code, reports.term_name(x, t)) for x in terms],
        chosen=chosen,
        error=error,
        demand=(pair, paired_chart(pair)) if pair is not None else None,
        trend=charts_of([trend], t.number) if trend is not None else [],
        count=lambda value: count_text(value, t),
        key_name=lambda g: key_name(g, t),
        round_label=lambda n, r: round_label(n, r, t),
        downloads=_query(out.term if out is not None else None),
    )


@router.get("/regions/{region}/competence-gap", openapi_extra=rule("coordinator-region"))
async def gap_page(
    request: Request, region: str, access: Page, term: TermQuery = None
) -> HTMLResponse:
    """The region's competence gap in a term (the form chooses among its terms; left out: the
    newest term with a round): the biggest gaps in words and as a chart, the empty slots after
    each round, a table of the skills and one of the programmes, and the downloads."""
    uow = _uow(request, access)
    wanted = (term or "").strip() or None
    t = _words(request)
    if wanted is not None and not _is_term(wanted):
        terms = await handlers.gap_terms(region, uow)
        error = t.gettext("Give a term as a year and a half year, like 2027-spring or 2027-autumn.")
        return _page(
            request, access, region, out=None, terms=terms, chosen=wanted, error=error, status=422
        )
    try:
        found = await handlers.competence_gap(region, wanted, uow, top=TOP)
    except Invalid:
        terms = await handlers.gap_terms(region, uow)
        if wanted is None:  # the region has no term at all: nothing to choose yet
            return _page(request, access, region, out=None, terms=terms, chosen="")
        if terms:
            names = ", ".join(reports.term_name(x, t) for x in terms)
            error = t.gettext(
                "The region has no placements or rounds in this term. Its terms: %(terms)s."
            ) % {"terms": names}
        else:
            error = t.gettext("The region has no placements with dates and no rounds yet.")
        return _page(
            request, access, region, out=None, terms=terms, chosen=wanted, error=error, status=422
        )
    out = reports.render_gap(found, t)
    return _page(request, access, region, out=out, terms=found.terms, chosen=out.term)


def _is_term(text: str) -> bool:
    try:
        gap.parse_term(text)
    except ValueError:
        return False
    return True


async def _rendered(
    request: Request, access: Access, region: str, term: str | None
) -> reports.GapOut:
    found = await handlers.competence_gap(
        region, (term or "").strip() or None, _uow(request, access), top=TOP
    )
    return reports.render_gap(found, _words(request))


def _filename(region: str, out: reports.GapOut, extension: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in region)
    return f"competence-gap-{safe}-{out.term}.{extension}"


@router.get("/regions/{region}/competence-gap.csv", openapi_extra=rule("coordinator-region"))
async def gap_csv(request: Request, region: str, access: Page, term: TermQuery = None) -> Response:
    """The competence gap as CSV (the API's `competence-gap.csv`, in the page's language)."""
    out = await _rendered(request, access, region, term)
    return reports.download(reports.gap_csv(out), reports.CSV_MEDIA, _filename(region, out, "csv"))


@router.get("/regions/{region}/competence-gap.xlsx", openapi_extra=rule("coordinator-region"))
async def gap_xlsx(request: Request, region: str, access: Page, term: TermQuery = None) -> Response:
    """The competence gap as an Excel workbook (the API's `competence-gap.xlsx`)."""
    out = await _rendered(request, access, region, term)
    return reports.download(
        reports.gap_xlsx(out), reports.XLSX_MEDIA, _filename(region, out, "xlsx")
    )
