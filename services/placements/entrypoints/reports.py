"""A round's report as the API serves it: JSON (`ReportOut`), CSV and XLSX downloads, with the
words (blocking pairs explained, the groups left out) in the request's language.

The figures come from `domain/outcomes.report`; words from the web application's catalogues
(`web/i18n.Words`: English message ids, Swedish and Finnish translations).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import xlsxwriter
from pydantic import BaseModel, Field

from shared.contracts.vocabulary import Language

from ..domain import outcomes
from ..domain.outcomes import MIN_GROUP, Group, SmallGroups
from .schemas import RoundOut
from .web.i18n import Words

CSV_MEDIA = "text/csv; charset=utf-8"
XLSX_MEDIA = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


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
