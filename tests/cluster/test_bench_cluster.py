"""``python -m bench.cluster --quick`` runs end to end and reports every figure with its ratio."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]


def number(cell: str) -> float:
    return float(cell.replace(",", ""))


def test_quick_cluster_benchmark_compares_one_and_two_command_processes_with_raw(tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench.cluster", "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = out.read_text()
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in report.splitlines()
        if line.startswith(("| raw js.publish", "| SendInMail"))
    ]
    assert [(row[0], int(row[1])) for row in rows] == [
        (measure, in_flight)
        for in_flight in (1, 64)
        for measure in (
            "raw js.publish + ack, R3 stream",
            "SendInMail, 1 command process",
            "SendInMail, 2 command processes",
        )
    ]
    for raw, *commands in (rows[:3], rows[3:]):
        assert number(raw[2]) > 0 and raw[6] == "1.00x"
        for row in commands:
            assert number(row[2]) > 0
            assert float(row[6][:-1]) == pytest.approx(number(row[2]) / number(raw[2]), rel=0.05, abs=0.011)
    assert "two command processes give" in report
