"""Bar charts drawn on the server as inline SVG: no script and no style attribute (the pages'
Content-Security-Policy allows neither); the colours are app.css's (`svg.bars`).

A chart is an image with a name and a description (`role="img"`, `<title>`, `<desc>` naming
every bar and its value), and the page puts its figures in a table next to it
(templates/web/coordinator/_chart.html.j2), so nothing depends on seeing the picture. Every bar
carries its label and its value in words; no colour carries meaning.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from markupsafe import Markup

WIDTH: Final = 480
"""The drawing's width in user units (it scales to the page's width)."""
VALUE_ROOM: Final = 72
"""Room right of the longest bar for its value."""
ROW: Final = 48
LABEL_LINE: Final = 17
BAR_HEIGHT: Final = 20
_ID: Final = re.compile(r"^[a-z][a-z0-9-]{0,60}$")


@dataclass(frozen=True)
class Chart:
    """A bar chart's words (in the page's language) and figures, one bar per (label, value)."""

    chart_id: str
    title: str
    description: str
    label_head: str
    value_head: str
    bars: tuple[tuple[str, int], ...]

    @property
    def total(self) -> int:
        return sum(value for _, value in self.bars)


def spoken(chart: Chart, number: Callable[[int], str]) -> str:
    """The chart's description followed by every bar and its value, for `<desc>`."""
    figures = "; ".join(f"{label}: {number(value)}" for label, value in chart.bars)
    return f"{chart.description} {figures}." if figures else chart.description


def bar_chart(chart: Chart, number: Callable[[int], str] = str) -> Markup:
    """The chart as an `<svg>` element: one horizontal bar per label, its length proportional to
    its value (all zero: no bar drawn), the label above it and the value after it."""
    if not _ID.match(chart.chart_id):
        raise ValueError(f"chart id {chart.chart_id!r}: lower-case letters, digits and dashes")
    cid = chart.chart_id
    biggest = max((value for _, value in chart.bars), default=0)
    room = WIDTH - VALUE_ROOM
    height = max(len(chart.bars), 1) * ROW + 4
    parts = [
        Markup(
            '<svg class="bars" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" '
            'role="img" aria-labelledby="{}-title {}-desc" focusable="false">'
        ).format(WIDTH, height, cid, cid),
        Markup('<title id="{}-title">{}</title>').format(cid, chart.title),
        Markup('<desc id="{}-desc">{}</desc>').format(cid, spoken(chart, number)),
    ]
    for index, (label, value) in enumerate(chart.bars):
        top = index * ROW + 2
        bar_top = top + LABEL_LINE + 4
        length = round(room * value / biggest) if biggest > 0 else 0
        parts.append(
            Markup(
                '<g class="bar"><text class="bar-label" x="0" y="{label_y}">{label}</text>'
                '<rect class="bar-track" x="0" y="{bar_y}" width="{room}" height="{h}"/>'
                '<rect class="bar-fill" x="0" y="{bar_y}" width="{length}" height="{h}"/>'
                '<text class="bar-value" x="{value_x}" y="{value_y}">{value}</text></g>'
            ).format(
                label_y=top + LABEL_LINE - 3,
                label=label,
                bar_y=bar_top,
                room=room,
                h=BAR_HEIGHT,
                length=length,
                value_x=length + 6,
                value_y=bar_top + BAR_HEIGHT - 5,
                value=number(value),
            )
        )
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def charts_of(items: Sequence[Chart], number: Callable[[int], str]) -> list[tuple[Chart, Markup]]:
    """Each chart with its drawing, for a template."""
    return [(chart, bar_chart(chart, number)) for chart in items]
