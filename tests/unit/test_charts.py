"""The dashboard's SVG charts: every value drawn and labelled, text escaped, an empty chart said so."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from inmail.http.charts import BarRow, bars, lines

T = datetime(2026, 3, 1, tzinfo=UTC)


def values(svg: str, mark: str) -> list[float]:
    return [float(v) for v in re.findall(rf'<{mark} class="[^"]*" [^>]*data-value="([^"]+)"', svg)]


def test_bars_draw_a_bar_per_row_and_series_with_its_value() -> None:
    rows = [BarRow("recruiter", [0.25, 0.5], "(8 sent)"), BarRow("free", [0.0, 0.1])]
    svg = bars(rows, ["90 days", "30 days"], percent=True)
    assert values(svg, "rect") == [0.25, 0.5, 0.0, 0.1]
    assert "25.0%" in svg and "50.0%" in svg and "(8 sent)" in svg
    assert svg.count('class="bar s0"') == 2 and svg.count('class="bar s1"') == 2


def test_bars_scale_to_the_largest_count_when_not_percentages() -> None:
    svg = bars([BarRow("UNKNOWN_MEMBER", [4]), BarRow("BLOCKED", [2])], ["refused"])
    widths = [float(w) for w in re.findall(r'class="bar s0" x="\d+" y="\d+" width="([\d.]+)"', svg)]
    assert widths[0] == 2 * widths[1] > 0


def test_labels_are_escaped() -> None:
    svg = bars([BarRow("<script>alert(1)</script>", [0.5])], ["a&b"], percent=True)
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "a&amp;b" in svg


def test_lines_draw_each_series_through_its_points() -> None:
    points = [(T, 5.0), (T + timedelta(days=1), 4.0), (T + timedelta(days=2), 9.0)]
    svg = lines({"balance": points})
    assert 'data-points="3"' in svg and 'data-value="9"' in svg
    coordinates = re.search(r'points="([^"]+)"', svg)
    assert coordinates is not None and len(coordinates.group(1).split()) == 3


def test_a_step_line_holds_each_value_until_the_next() -> None:
    points = [(T, 5.0), (T + timedelta(days=1), 4.0)]
    coordinates = re.search(r'points="([^"]+)"', lines({"balance": points}, step=True))
    assert coordinates is not None
    first, corner, second = coordinates.group(1).split()
    assert corner.split(",")[1] == first.split(",")[1] and corner.split(",")[0] == second.split(",")[0]


def test_an_empty_chart_says_why() -> None:
    assert "no InMail in 90 days" in bars([], ["a"], empty="no InMail in 90 days")
    assert "measuring" in lines({}, empty="measuring…")
