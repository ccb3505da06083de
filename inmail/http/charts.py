"""Charts as SVG, drawn on the server: no JavaScript library, nothing fetched from elsewhere.

Two shapes cover the dashboard: grouped horizontal bars (response rates by tier,
kind or template; commands by outcome) and lines over time (a balance, command
rates). Every mark carries its value in ``data-value`` and a ``<title>`` tooltip;
colours come from the page's style sheet (classes ``s0``, ``s1``, ...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

WIDTH = 640
LABEL_WIDTH = 190
BAR_HEIGHT = 14
ROW_GAP = 10
LINE_HEIGHT = 220
MARGIN = 36


@dataclass(frozen=True, slots=True)
class BarRow:
    """One group of bars: its label, a value per series, and a note (e.g. how many InMails)."""

    label: str
    values: Sequence[float]
    note: str = ""


def bars(rows: Sequence[BarRow], series: Sequence[str], *, percent: bool = False, empty: str = "") -> str:
    """Grouped horizontal bars; ``percent``: values are fractions shown as percentages of 100."""
    if not rows:
        return _empty(empty or "nothing yet")
    top = max((v for row in rows for v in row.values), default=0.0)
    scale = 1.0 if percent else (top or 1.0)
    plot = WIDTH - LABEL_WIDTH - 70
    row_height = len(series) * BAR_HEIGHT + ROW_GAP
    height = len(rows) * row_height + 30
    parts = [_open(WIDTH, height, "bars"), _legend(series, height - 12)]
    for index, row in enumerate(rows):
        y = index * row_height + 4
        parts.append(
            f'<text class="label" x="{LABEL_WIDTH - 8}" y="{y + len(series) * BAR_HEIGHT / 2 + 4:.1f}" '
            f'text-anchor="end">{escape(_clip(row.label, 26))}<title>{escape(row.label)}</title></text>'
        )
        for n, (name, value) in enumerate(zip(series, row.values, strict=True)):
            width = max(value / scale * plot, 0.0)
            shown = f"{value * 100:.1f}%" if percent else _number(value)
            by = y + n * BAR_HEIGHT
            parts.append(
                f'<rect class="bar s{n}" x="{LABEL_WIDTH}" y="{by}" width="{width:.1f}" '
                f'height="{BAR_HEIGHT - 2}" data-value="{value:g}"><title>{escape(row.label)}, '
                f"{escape(name)}: {shown}{escape(' ' + row.note if row.note else '')}</title></rect>"
            )
            parts.append(
                f'<text class="value" x="{LABEL_WIDTH + width + 4:.1f}" y="{by + BAR_HEIGHT - 3}">'
                f"{shown}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def lines(
    series: Mapping[str, Sequence[tuple[datetime, float]]],
    *,
    unit: str = "",
    step: bool = False,
    empty: str = "",
) -> str:
    """Values over time, one line per series; ``step``: each value holds until the next (a balance)."""
    points = [point for values in series.values() for point in values]
    if not points:
        return _empty(empty or "nothing yet")
    start = min(t for t, _ in points).timestamp()
    end = max(t for t, _ in points).timestamp()
    span = (end - start) or 1.0
    top = max(v for _, v in points) or 1.0
    left, right, plot_top, bottom = MARGIN + 14, WIDTH - 12, 12, LINE_HEIGHT - 40

    def x(t: datetime) -> float:
        return left + (t.timestamp() - start) / span * (right - left)

    def y(v: float) -> float:
        return bottom - v / top * (bottom - plot_top)

    parts = [
        _open(WIDTH, LINE_HEIGHT, "lines"),
        f'<line class="axis" x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}"/>',
        f'<line class="axis" x1="{left}" y1="{plot_top}" x2="{left}" y2="{bottom}"/>',
        f'<text class="tick" x="{left - 4}" y="{plot_top + 8}" text-anchor="end">{_number(top)}</text>',
        f'<text class="tick" x="{left - 4}" y="{bottom}" text-anchor="end">0</text>',
        f'<text class="tick" x="{left}" y="{bottom + 14}">{_when(min(t for t, _ in points))}</text>',
        f'<text class="tick" x="{right}" y="{bottom + 14}" text-anchor="end">'
        f"{_when(max(t for t, _ in points))}</text>",
    ]
    for n, (name, values) in enumerate(series.items()):
        coords: list[str] = []
        for index, (t, v) in enumerate(values):
            if step and index:
                coords.append(f"{x(t):.1f},{y(values[index - 1][1]):.1f}")
            coords.append(f"{x(t):.1f},{y(v):.1f}")
        parts.append(
            f'<polyline class="line s{n}" fill="none" points="{" ".join(coords)}" '
            f'data-points="{len(values)}" data-value="{values[-1][1]:g}">'
            f"<title>{escape(name)}: {_number(values[-1][1])}{escape(unit)} (latest)</title></polyline>"
        )
    parts.append(_legend(list(series), LINE_HEIGHT - 8))
    parts.append("</svg>")
    return "".join(parts)


def _open(width: int, height: int, kind: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {kind}" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%">'
    )


def _legend(series: Sequence[str], y: float) -> str:
    items = []
    for n, name in enumerate(series):
        x = LABEL_WIDTH + n * 150
        items.append(
            f'<rect class="swatch s{n}" x="{x}" y="{y - 9}" width="10" height="10"/>'
            f'<text class="legend" x="{x + 14}" y="{y}">{escape(name)}</text>'
        )
    return "".join(items)


def _empty(message: str) -> str:
    return f'{_open(WIDTH, 40, "empty")}<text class="note" x="8" y="24">{escape(message)}</text></svg>'


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 or value == int(value) else f"{value:,.2f}"


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def _clip(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"
