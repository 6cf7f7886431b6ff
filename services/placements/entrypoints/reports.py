"""A round's report and a region's competence gap as the API serves them: JSON (`ReportOut`,
`GapOut`), CSV and XLSX downloads, with the words (blocking pairs explained, the groups left
out, the biggest gaps) in the request's language.

The figures come from `domain/outcomes.report` and `domain/gap.report`; words from the web
application's catalogues (`web/i18n.Words`: English message ids, Swedish and Finnish
translations).
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import Literal

import xlsxwriter
from pydantic import BaseModel, Field
from starlette.responses import Response

from shared.contracts.vocabulary import Language

from ..domain import gap, outcomes
from ..domain.outcomes import MIN_GROUP, Group, SmallGroups
from .schemas import RoundOut
from .web.i18n import Words

CSV_MEDIA = "text/csv; charset=utf-8"
XLSX_MEDIA = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def download(body: bytes | str, media_type: str, filename: str) -> Response:
    """A report as a file to save (never cached: reports may name students)."""
    return Response(
        body,
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


class GroupOut(BaseModel):
    key: str = Field(description='The group (a programme, a priority; "other": small ones).')
    students: int | None = Field(description="None: suppressed (under 5 people).")
    placed: int | None
    placement_rate: float | None
    first_choice: int | None
    filled: int | None

    @classmethod
    def of(cls, g: Group) -> GroupOut:
        return cls(
            key=g.key,
            students=g.students,
            placed=g.placed,
            placement_rate=g.placement_rate,
            first_choice=g.first_choice,
            filled=g.filled,
        )


class SmallGroupsOut(BaseModel):
    dimension: str
    merged: int = Field(description="Groups under 5 people merged into `other`.")
    merged_students: int
    suppressed: bool = Field(description="`other` itself had under 5 people: not shown.")
    text: str


class VacanciesOut(BaseModel):
    placements: int = Field(description="Open placements of the region.")
    slots: int
    taken: int = Field(description="Slots the round's outcome fills.")
    free_slots: int
    placements_with_free_slots: int


class DistanceOut(BaseModel):
    measured: int = Field(description="Placed students with home and site known.")
    median_km: float | None
    p90_km: float | None
    suppressed: bool = Field(description="Fewer than 5 measured: not shown.")


class BlockingOut(BaseModel):
    count: int
    text: str = Field(description="What they mean, in words.")


class ReportOut(BaseModel):
    """A round's figures (docs/product.md "Reports a coordinator can use")."""

    round: RoundOut
    lang: Language
    students: int
    placed: int
    placement_rate: float | None
    pinned: int = Field(description="Kept from before (confirmed, accepted, by hand).")
    moved: int = Field(description="Placed elsewhere (or nowhere) than their standing match.")
    ranks: dict[str, int] = Field(description='"1" ... "10", "unranked", "filled", "unplaced".')
    unplaced_by_reason: dict[str, int]
    vacancies: VacanciesOut
    by_programme: list[GroupOut]
    by_priority: list[GroupOut]
    distance: DistanceOut
    blocking_pairs: BlockingOut
    small_groups: list[SmallGroupsOut] = Field(
        description=f"What the breakdowns hid: no group under {MIN_GROUP} people is shown."
    )


def blocking_text(report: outcomes.Report, t: Words) -> str:
    n = report.blocking_pairs
    if n == 0:
        return t.gettext(
            "No blocking pairs: no student and placement would both rather be matched with each "
            "other than with what this round gave them."
        )
    text = t.ngettext(
        "%(n)s blocking pair: a student and a placement they ranked better than their outcome "
        "would both rather be matched with each other (the placement has a free slot, or "
        "ranks the student above one it got).",
        "%(n)s blocking pairs: each is a student and a placement they ranked better than their "
        "outcome that would both rather be matched with each other (the placement has a free "
        "slot, or ranks the student above one it got).",
        n,
    ) % {"n": n}
    if report.round.policy == "optimal":
        text += " " + t.gettext(
            "The optimal policy accepts them for a better rank total; the stable policy "
            "leaves none."
        )
    return text


def small_text(note: SmallGroups, t: Words) -> str:
    """What a breakdown hid, one whole sentence per dimension (so that it translates)."""
    values = {"n": note.merged, "students": note.merged_students}
    if note.dimension == "programme":
        if note.suppressed:
            return (
                t.ngettext(
                    "%(n)s programme under 5 people (%(students)s students) is not shown.",
                    "%(n)s programmes under 5 people (%(students)s students) are not shown.",
                    note.merged,
                )
                % values
            )
        return (
            t.ngettext(
                "%(n)s programme under 5 people is counted in \u201cother\u201d.",
                "%(n)s programmes under 5 people are counted in \u201cother\u201d.",
                note.merged,
            )
            % values
        )
    if note.suppressed:
        return (
            t.ngettext(
                "%(n)s priority group under 5 people (%(students)s students) is not shown.",
                "%(n)s priority groups under 5 people (%(students)s students) are not shown.",
                note.merged,
            )
            % values
        )
    return (
        t.ngettext(
            "%(n)s priority group under 5 people is counted in \u201cother\u201d.",
            "%(n)s priority groups under 5 people are counted in \u201cother\u201d.",
            note.merged,
        )
        % values
    )


def render(report: outcomes.Report, t: Words) -> ReportOut:
    v, d = report.vacancies, report.distance
    return ReportOut(
        round=RoundOut.of(report.round),
        lang=t.lang,
        students=report.students,
        placed=report.placed,
        placement_rate=report.placement_rate,
        pinned=report.pinned,
        moved=report.moved,
        ranks=report.ranks,
        unplaced_by_reason=report.unplaced_by_reason,
        vacancies=VacanciesOut(
            placements=v.placements,
            slots=v.slots,
            taken=v.taken,
            free_slots=v.free_slots,
            placements_with_free_slots=v.placements_with_free_slots,
        ),
        by_programme=[GroupOut.of(g) for g in report.by_programme],
        by_priority=[GroupOut.of(g) for g in report.by_priority],
        distance=DistanceOut(
            measured=d.measured,
            median_km=None if d.median_km is None else round(d.median_km, 1),
            p90_km=None if d.p90_km is None else round(d.p90_km, 1),
            suppressed=d.suppressed,
        ),
        blocking_pairs=BlockingOut(count=report.blocking_pairs, text=blocking_text(report, t)),
        small_groups=[
            SmallGroupsOut(
                dimension=n.dimension,
                merged=n.merged,
                merged_students=n.merged_students,
                suppressed=n.suppressed,
                text=small_text(n, t),
            )
            for n in report.small_groups
        ],
    )


Cell = str | int | float | None


def rows(out: ReportOut) -> Iterator[tuple[str, str, str, Cell]]:
    """The report as (section, key, figure, value) rows: the CSV's lines, the XLSX's sheet."""
    r = out.round
    for key, value in (
        ("round_id", str(r.round_id)),
        ("region", r.region),
        ("policy", r.policy),
        ("kind", r.kind),
        ("fill", str(r.fill).lower()),
        ("dry_run", str(r.dry_run).lower()),
        ("completed_at", r.completed_at.isoformat() if r.completed_at else None),
    ):
        yield ("round", key, "value", value)
    for key, number in (
        ("students", out.students),
        ("placed", out.placed),
        ("placement_rate", out.placement_rate),
        ("pinned", out.pinned),
        ("moved", out.moved),
    ):
        yield ("summary", key, "value", number)
    for key, n in out.ranks.items():
        yield ("rank", key, "students", n)
    for key, n in out.unplaced_by_reason.items():
        yield ("unplaced_by_reason", key, "students", n)
    for key, n in out.vacancies.model_dump().items():
        yield ("vacancies", key, "value", n)
    for section, groups in (("programme", out.by_programme), ("priority", out.by_priority)):
        for g in groups:
            for figure in ("students", "placed", "placement_rate", "first_choice", "filled"):
                yield (section, g.key, figure, getattr(g, figure))
    for key, value in out.distance.model_dump().items():
        yield ("distance_km", key, "value", value)
    yield ("blocking_pairs", "count", "value", out.blocking_pairs.count)
    yield ("blocking_pairs", "text", "value", out.blocking_pairs.text)
    for note in out.small_groups:
        yield ("small_groups", note.dimension, "text", note.text)


HEADER = ("section", "key", "figure", "value")


def to_csv(out: ReportOut) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADER)
    for row in rows(out):
        writer.writerow(["" if c is None else c for c in row])
    return buffer.getvalue().encode("utf-8")


def to_xlsx(out: ReportOut) -> bytes:
    """One sheet of all rows, and one per breakdown (ranks, programmes, priorities)."""
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    bold = book.add_format({"bold": True})
    percent = book.add_format({"num_format": "0.0%"})
    sheet = book.add_worksheet("Report")
    sheet.write_row(0, 0, HEADER, bold)
    for i, row in enumerate(rows(out), start=1):
        sheet.write_row(i, 0, ["" if c is None else c for c in row])
    sheet.set_column(0, 1, 22)
    sheet.set_column(3, 3, 40)
    ranks = book.add_worksheet("Ranks")
    ranks.write_row(0, 0, ("rank", "students"), bold)
    for i, (key, n) in enumerate(out.ranks.items(), start=1):
        ranks.write_row(i, 0, (key, n))
    for title, groups in (("Programmes", out.by_programme), ("Priorities", out.by_priority)):
        ws = book.add_worksheet(title)
        ws.write_row(0, 0, ("group", "students", "placed", "rate", "first choice", "filled"), bold)
        for i, g in enumerate(groups, start=1):
            ws.write_row(i, 0, (g.key, g.students, g.placed))
            if g.placement_rate is not None:
                ws.write_number(i, 3, g.placement_rate, percent)
            ws.write_row(i, 4, (g.first_choice, g.filled))
    book.close()
    return buffer.getvalue()


# ------------------------------------------------------------------------- competence gap

LESS_THAN = f"< {MIN_GROUP}"
"""How a hidden count of students reads in the downloads."""
SUPPRESSED_HELP = (
    f"The counts of students here that are null because they are under {MIN_GROUP} (0 to "
    f'{MIN_GROUP - 1}; shown as "{LESS_THAN}"). A null count not named here is not known.'
)


class KeyTrendOut(BaseModel):
    round_id: uuid.UUID
    empty_slots: int = Field(description="Slots the round left empty for want of it.")
    students: int | None = Field(description="Students of the round who have it (are of it).")
    unplaced_missing: int | None = Field(
        description="Students the round left unplaced with a choice failed for want of it."
    )
    suppressed: list[str] = Field(description=SUPPRESSED_HELP, examples=[["unplaced_missing"]])


class KeyGapOut(BaseModel):
    """A skill's or a programme's demand and supply in the term."""

    dimension: Literal["skill", "programme"]
    key: str = Field(description="The skill, or the programme code.", examples=["battery-hv"])
    placements: int = Field(
        description="Open placements of the term requiring the skill (for a programme: "
        "accepting only some programmes, this one among them)."
    )
    slots: int = Field(description="Their slots: the demand.", examples=[12])
    empty_slots: int = Field(
        description="Slots the latest round left empty for want of it: no student it left "
        "unplaced who met the placement's other rules had it, while some of them lacked it."
    )
    students: int | None = Field(
        description="Students of the term's rounds who have the skill (are of the programme): "
        "the supply.",
        examples=[None],
    )
    unplaced_missing: int | None = Field(
        description="Students the latest round left unplaced with a choice of the term they "
        "failed for want of it (from the outcomes' explanations)."
    )
    shortfall: int = Field(
        description="Slots beyond the students shown to have it (a hidden count counts as 0)."
    )
    suppressed: list[str] = Field(description=SUPPRESSED_HELP, examples=[["students"]])
    text: str = Field(
        description="The figures in words.",
        examples=["12 slots needed `battery-hv`; fewer than 5 students had it."],
    )
    trend: list[KeyTrendOut] = Field(description="After each round of the term, oldest first.")


class RoundGapOut(BaseModel):
    round_id: uuid.UUID
    kind: str
    policy: str
    fill: bool
    completed_at: datetime | None
    students: int | None = Field(description="Students of the round.")
    unplaced: int | None = Field(description="Students the round left unplaced.")
    free_slots: int = Field(description="Slots of the term's open placements the round left free.")
    empty_for_want: int = Field(
        description="Of them, those left empty for want of a skill or a programme (once each)."
    )
    unplaced_missing: int | None = Field(
        description="Students left unplaced with a choice failed for want of a skill or a "
        "programme (once each)."
    )
    suppressed: list[str] = Field(description=SUPPRESSED_HELP)


class GapOut(BaseModel):
    """A region's competence gap in a term (docs/placements.md "The competence gap")."""

    region: str
    term: str = Field(description="The term: a half year, `2027-spring` or `2027-autumn`.")
    term_name: str = Field(description="The term in words.", examples=["spring term 2027"])
    starts_on: date
    ends_on: date
    terms: list[str] = Field(
        description="The region's terms (of its open placements and its rounds), oldest first."
    )
    lang: Language
    placements: int = Field(description="Open placements for students that start in the term.")
    slots: int
    open_slots: int = Field(description="Of them, the slots open to every programme.")
    undated_slots: int = Field(
        description="Slots of the region's open placements without dates (of no term)."
    )
    students: int | None = Field(
        description="Students of the term's rounds; null: under 5, or no round yet."
    )
    suppressed: list[str] = Field(description=SUPPRESSED_HELP)
    rounds: list[RoundGapOut] = Field(description="The term's rounds, oldest first.")
    gaps: list[KeyGapOut] = Field(
        description="The biggest gaps, biggest first: most slots left empty for want of it, "
        "then most students left unplaced for want of it, then most slots beyond the students "
        "who have it."
    )
    skills: list[KeyGapOut]
    programmes: list[KeyGapOut]
    notes: list[str] = Field(description="What the figures count, in words.")


def term_name(term: gap.Term, t: Words) -> str:
    if term.half == gap.SPRING:
        return t.gettext("spring term %(year)s") % {"year": term.year}
    return t.gettext("autumn term %(year)s") % {"year": term.year}


def gap_text(g: gap.KeyGap, t: Words) -> str:
    """A skill's or a programme's figures in whole sentences (each one translates), e.g.
    "12 slots needed `battery-hv`; 3 students had it."; a hidden count reads "fewer than 5"."""
    n, key = t.number(g.slots), g.key
    if g.dimension == "skill":
        demand = t.ngettext(
            "%(n)s slot needed `%(key)s`", "%(n)s slots needed `%(key)s`", g.slots
        ) % {"n": n, "key": key}
        if not g.supply_known:
            supply = t.gettext("no round of the term has counted the students yet")
        elif g.students is None:
            supply = t.gettext("fewer than 5 students had it")
        else:
            supply = t.ngettext("%(n)s student had it", "%(n)s students had it", g.students) % {
                "n": t.number(g.students)
            }
    else:
        demand = t.ngettext(
            "%(n)s slot asked for the programme `%(key)s`",
            "%(n)s slots asked for the programme `%(key)s`",
            g.slots,
        ) % {"n": n, "key": key}
        if not g.supply_known:
            supply = t.gettext("no round of the term has counted the students yet")
        elif g.students is None:
            supply = t.gettext("fewer than 5 students were in it")
        else:
            supply = t.ngettext(
                "%(n)s student was in it", "%(n)s students were in it", g.students
            ) % {"n": t.number(g.students)}
    sentences = [t.gettext("%(demand)s; %(supply)s.") % {"demand": demand, "supply": supply}]
    if g.empty_slots:
        sentences.append(
            t.ngettext(
                "%(n)s slot stayed empty for want of it.",
                "%(n)s slots stayed empty for want of it.",
                g.empty_slots,
            )
            % {"n": t.number(g.empty_slots)}
        )
    if g.unplaced_missing is not None:
        sentences.append(
            t.ngettext(
                "%(n)s student was left unplaced for want of it.",
                "%(n)s students were left unplaced for want of it.",
                g.unplaced_missing,
            )
            % {"n": t.number(g.unplaced_missing)}
        )
    if len(g.trend) > 1 and any(x.empty_slots for x in g.trend):
        series = " → ".join(t.number(x.empty_slots) for x in g.trend)
        sentences.append(
            t.gettext("Slots empty for want of it after each round: %(series)s.")
            % {"series": series}
        )
    return " ".join(sentences)


def gap_notes(found: gap.GapReport, t: Words) -> list[str]:
    """What the figures count, in words (the page's and the downloads' notes)."""
    notes = [
        t.gettext(
            "A term is a half year: the spring term runs from January to June, the autumn term "
            "from July to December. A placement belongs to the term it starts in; a round to "
            "the term most of the placements its outcomes name start in."
        ),
        t.gettext(
            "Demand: the slots of the term's open placements that require the skill, or that "
            "accept only some programmes, this one among them. Supply: the students of the "
            "term's rounds who have the skill, or are of the programme."
        ),
        t.gettext(
            "A slot stayed empty for want of a skill when the round left it free and no "
            "student it left unplaced who met the placement's other rules had the skill, "
            "while some of them lacked it."
        ),
        t.gettext("No count of fewer than 5 students is shown: such a count reads “< 5”."),
    ]
    if not found.rounds:
        notes.append(
            t.gettext(
                "No round of this term has been completed yet: the students are counted from "
                "the term's rounds, so only the demand is shown."
            )
        )
    if found.undated_slots:
        notes.append(
            t.ngettext(
                "%(n)s slot of the region's open placements has no dates and belongs to no "
                "term: it is left out.",
                "%(n)s slots of the region's open placements have no dates and belong to no "
                "term: they are left out.",
                found.undated_slots,
            )
            % {"n": t.number(found.undated_slots)}
        )
    return notes


def _key_out(g: gap.KeyGap, t: Words) -> KeyGapOut:
    return KeyGapOut(
        dimension=g.dimension,
        key=g.key,
        placements=g.placements,
        slots=g.slots,
        empty_slots=g.empty_slots,
        students=g.students,
        unplaced_missing=g.unplaced_missing,
        shortfall=g.shortfall,
        suppressed=list(g.suppressed),
        text=gap_text(g, t),
        trend=[
            KeyTrendOut(
                round_id=uuid.UUID(x.round_id),
                empty_slots=x.empty_slots,
                students=x.students,
                unplaced_missing=x.unplaced_missing,
                suppressed=list(x.suppressed),
            )
            for x in g.trend
        ],
    )


def render_gap(found: gap.GapReport, t: Words) -> GapOut:
    return GapOut(
        region=found.region,
        term=found.term.code,
        term_name=term_name(found.term, t),
        starts_on=found.term.starts_on,
        ends_on=found.term.ends_on,
        terms=[x.code for x in found.terms],
        lang=t.lang,
        placements=found.placements,
        slots=found.slots,
        open_slots=found.open_slots,
        undated_slots=found.undated_slots,
        students=found.students,
        suppressed=list(found.suppressed),
        rounds=[
            RoundGapOut(
                round_id=r.round.round_id,
                kind=r.round.kind,
                policy=r.round.policy,
                fill=r.round.fill,
                completed_at=r.round.completed_at,
                students=r.students,
                unplaced=r.unplaced,
                free_slots=r.free_slots,
                empty_for_want=r.empty_for_want,
                unplaced_missing=r.unplaced_missing,
                suppressed=list(r.suppressed),
            )
            for r in found.rounds
        ],
        gaps=[_key_out(g, t) for g in found.gaps],
        skills=[_key_out(g, t) for g in found.skills],
        programmes=[_key_out(g, t) for g in found.programmes],
        notes=gap_notes(found, t),
    )


def _count(value: int | None, suppressed: Sequence[str], name: str) -> Cell:
    """A count for a download: a hidden one reads "< 5", an unknown one is empty."""
    if value is None:
        return LESS_THAN if name in suppressed else None
    return value


KEY_FIGURES = ("placements", "slots", "empty_slots", "students", "unplaced_missing", "shortfall")
ROUND_FIGURES = ("students", "unplaced", "free_slots", "empty_for_want", "unplaced_missing")
TREND_FIGURES = ("empty_slots", "students", "unplaced_missing")


def gap_rows(out: GapOut) -> Iterator[tuple[str, str, str, Cell]]:
    """The gap report as (section, key, figure, value) rows: the CSV's lines, the XLSX's first
    sheet. A round is named by its number in the term (1 the oldest) in the trend's figures."""
    for key, value in (
        ("region", out.region),
        ("term", out.term),
        ("term_name", out.term_name),
        ("starts_on", out.starts_on.isoformat()),
        ("ends_on", out.ends_on.isoformat()),
        ("terms", " ".join(out.terms)),
    ):
        yield ("term", key, "value", value)
    for key in ("placements", "slots", "open_slots", "undated_slots"):
        yield ("summary", key, "value", getattr(out, key))
    yield ("summary", "students", "value", _count(out.students, out.suppressed, "students"))
    for number, r in enumerate(out.rounds, start=1):
        name = str(number)
        yield ("round", name, "round_id", str(r.round_id))
        yield ("round", name, "kind", r.kind)
        yield (
            "round",
            name,
            "completed_at",
            r.completed_at.isoformat() if r.completed_at else None,
        )
        for figure in ROUND_FIGURES:
            yield ("round", name, figure, _count(getattr(r, figure), r.suppressed, figure))
    for rank, g in enumerate(out.gaps, start=1):
        yield ("gap", str(rank), f"{g.dimension}:{g.key}", g.text)
    for section, items in (("skill", out.skills), ("programme", out.programmes)):
        for g in items:
            for figure in KEY_FIGURES:
                yield (section, g.key, figure, _count(getattr(g, figure), g.suppressed, figure))
            for number, x in enumerate(g.trend, start=1):
                for figure in TREND_FIGURES:
                    cell = _count(getattr(x, figure), x.suppressed, figure)
                    yield (section, g.key, f"round {number} {figure}", cell)
    for i, note in enumerate(out.notes, start=1):
        yield ("note", str(i), "text", note)


def gap_csv(out: GapOut) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADER)
    for row in gap_rows(out):
        writer.writerow(["" if c is None else c for c in row])
    return buffer.getvalue().encode("utf-8")


def gap_xlsx(out: GapOut) -> bytes:
    """Sheets: Gaps (the biggest, in words), Skills and Programmes (a row each, with the empty
    slots after each round), Rounds, and Report (every row of the CSV)."""
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    bold = book.add_format({"bold": True})
    wrap = book.add_format({"text_wrap": True, "valign": "top"})
    sheet = book.add_worksheet("Gaps")
    sheet.write_row(
        0, 0, ("rank", "dimension", "key", "slots", "empty slots", "students", "text"), bold
    )
    for i, g in enumerate(out.gaps, start=1):
        students = _count(g.students, g.suppressed, "students")
        sheet.write_row(i, 0, (i, g.dimension, g.key, g.slots, g.empty_slots, students))
        sheet.write(i, 6, g.text, wrap)
    sheet.set_column(2, 2, 22)
    sheet.set_column(6, 6, 80)
    rounds = [str(n) for n in range(1, len(out.rounds) + 1)]
    for title, items in (("Skills", out.skills), ("Programmes", out.programmes)):
        ws = book.add_worksheet(title)
        head = ["key", *KEY_FIGURES, *(f"empty slots after round {n}" for n in rounds)]
        ws.write_row(0, 0, head, bold)
        for i, g in enumerate(items, start=1):
            figures = [_count(getattr(g, f), g.suppressed, f) for f in KEY_FIGURES]
            ws.write_row(i, 0, [g.key, *figures, *(x.empty_slots for x in g.trend)])
        ws.set_column(0, 0, 22)
    ws = book.add_worksheet("Rounds")
    ws.write_row(0, 0, ("round", "round_id", "kind", "completed_at", *ROUND_FIGURES), bold)
    for i, r in enumerate(out.rounds, start=1):
        done = r.completed_at.isoformat() if r.completed_at else ""
        figures = [_count(getattr(r, f), r.suppressed, f) for f in ROUND_FIGURES]
        ws.write_row(i, 0, [i, str(r.round_id), r.kind, done, *figures])
    ws = book.add_worksheet("Report")
    ws.write_row(0, 0, HEADER, bold)
    for i, row in enumerate(gap_rows(out), start=1):
        ws.write_row(i, 0, ["" if c is None else c for c in row])
    ws.set_column(0, 2, 22)
    ws.set_column(3, 3, 60)
    book.close()
    return buffer.getvalue()
