"""The event store benchmark runs end to end in its quick mode and reports every figure."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

NUMBER = r"[\d,]+(?:\.\d)?"
ROW = re.compile(
    rf"^\| (?P<measure>[^|]+) \| (?P<in_flight>\d+) \| (?P<ops>{NUMBER}) \| (?P<events>{NUMBER}) "
    rf"\| (?P<baseline>[^|]+) \| (?P<base_ops>{NUMBER}) \| (?P<base_events>{NUMBER}) "
    r"\| (?P<ratio>\d+\.\d\d)x \|$"
)


def number(text: str) -> float:
    return float(text.replace(",", ""))


def rows_of(section: str) -> list[dict[str, str]]:
    return [m.groupdict() for line in section.splitlines() if (m := ROW.match(line))]


def test_quick_benchmark_reports_both_settings_with_ratios(tmp_path: Path) -> None:
    out = tmp_path / "report.md"

    done = subprocess.run(
        [sys.executable, "-m", "bench.eventstore", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    report = out.read_text()
    assert report in done.stdout
    durable, relaxed = report.split("### durable", 1)[1].split("### relaxed", 1)
    for section in (durable, relaxed.split("### Cost", 1)[0]):
        rows = rows_of(section)
        measures = {(r["measure"], int(r["in_flight"]), r["baseline"]) for r in rows}
        assert measures == {
            ("append 1 event", 1, "js.publish, 1 event"),
            ("append 1 event", 64, "js.publish, 1 event"),
            ("append 1 event", 1, "js.publish + msg id + expected seq"),
            ("append 1 event", 64, "js.publish + msg id + expected seq"),
            ("append 3-event batch", 1, "js.publish, 1 event"),
            ("append 3-event batch", 64, "js.publish, 1 event"),
            ("append 3-event batch", 1, "raw atomic batch, 3 events"),
            ("append 3-event batch", 64, "raw atomic batch, 3 events"),
            ("read aggregate of 10 events", 1, "ordered consumer"),
            ("read aggregate of 1,000 events", 1, "ordered consumer"),
            ("read aggregate of 10,000 events", 1, "ordered consumer"),
        }
        for row in rows:
            assert number(row["ops"]) > 0 and number(row["base_ops"]) > 0
            assert number(row["events"]) >= number(row["ops"])
            expected_ratio = number(row["events"]) / number(row["base_events"])
            assert float(row["ratio"]) == pytest.approx(expected_ratio, rel=0.01, abs=0.006)
    assert "sync_interval: always" in report
    assert re.search(r"durable: append at 64 in flight is \d+\.\d\dx raw publish\+ack", done.stdout)
    assert re.search(r"relaxed: append at 64 in flight is \d+\.\d\dx raw publish\+ack", done.stdout)
