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
            assert float(row["ratio"]) == pytest.approx(expected_ratio, rel=0.02, abs=0.011)
    assert "sync_interval: always" in report
    assert re.search(r"durable: append at 64 in flight is \d+\.\d\dx raw publish\+ack", done.stdout)
    assert re.search(r"relaxed: append at 64 in flight is \d+\.\d\dx raw publish\+ack", done.stdout)


# The figure benchmarks (bench/limit, commands, peer, replay, growth): each quick run starts
# its own servers, prints a markdown report with both fsync settings, and writes it with --out.

FIGURE = r"(?:[\d,]+(?:\.\d+)?|n/a)"


def run_quick(module: str, tmp_path: Path, *extra: str, timeout: float = 240) -> tuple[str, str]:
    """Run ``python -m <module> --quick --out FILE``; the report and the whole stdout."""
    out = tmp_path / f"{module}.md"
    done = subprocess.run(
        [sys.executable, "-m", module, "--quick", "--out", str(out), *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = out.read_text()
    assert report in done.stdout
    return report, done.stdout


def settings_of(report: str) -> dict[str, str]:
    """The report's section per fsync setting (durable first)."""
    assert "### durable (" in report and "### relaxed (" in report
    durable = report.split("### durable", 1)[1].split("### relaxed", 1)[0]
    relaxed = report.split("### relaxed", 1)[1].split("\n### ", 1)[0]
    return {"durable": durable, "relaxed": relaxed}


def table_rows(section: str, first_cell: str) -> list[list[str]]:
    """Cells of the table rows whose first cell starts with ``first_cell``."""
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith(f"| {first_cell}")
    ]


def ratio_of(cell: str) -> float:
    assert re.fullmatch(r"\d+\.\d\dx", cell), cell
    return float(cell[:-1])


def test_quick_limit_reports_publish_and_read_ceilings(tmp_path: Path) -> None:
    report, _ = run_quick("bench.limit", tmp_path)
    for section in settings_of(report).values():
        publish = table_rows(section, "js.publish + ack")
        assert [int(row[1]) for row in publish] == [1, 16, 64]
        for row in publish:
            assert number(row[2]) > 0
            assert ratio_of(row[4]) == pytest.approx(number(row[2]) / number(publish[0][2]), abs=0.011)
        (read,) = table_rows(section, "ordered-consumer read")
        assert number(read[2]) > 0


@pytest.mark.postgres
def test_quick_peer_reports_postgres_and_sqlite_at_1_and_8_threads(tmp_path: Path) -> None:
    report, _ = run_quick("bench.peer", tmp_path)
    sections = settings_of(report)
    for setting, section in sections.items():
        rows = table_rows(section, "postgres") + table_rows(section, "sqlite")
        assert {(row[0], int(row[2])) for row in rows} == {
            ("postgres", 1),
            ("postgres", 8),
            ("sqlite", 1),
            ("sqlite", 8),
        }
        base = next(number(row[3]) for row in rows if row[0] == "postgres" and row[2] == "1")
        for row in rows:
            assert number(row[3]) > 0
            assert ratio_of(row[8]) == pytest.approx(number(row[3]) / base, rel=0.02, abs=0.011)
        commit = {row[0]: row[1] for row in rows}
        expected = "on" if setting == "durable" else "off"
        assert f"synchronous_commit={expected}" in commit["postgres"]
        assert ("synchronous=FULL" if setting == "durable" else "synchronous=NORMAL") in commit["sqlite"]


@pytest.mark.postgres
def test_quick_commands_reports_end_to_end_against_raw_and_peer(tmp_path: Path) -> None:
    report, stdout = run_quick("bench.commands", tmp_path, "--projections", "--metrics-compare")
    for section in settings_of(report).values():
        closed = table_rows(section, "SendInMail, closed loop")
        assert [int(row[1]) for row in closed] == [1, 16, 64]
        for row in closed:
            rate, raw = number(row[2]), number(row[6])
            assert rate > 0 and raw > 0
            assert ratio_of(row[7]) == pytest.approx(rate / raw, rel=0.02, abs=0.011)
            assert ratio_of(row[8]) == pytest.approx(rate / number(closed[0][2]), rel=0.02, abs=0.011)
            assert all(re.fullmatch(FIGURE, cell) for cell in row[9:12])
        assert len(table_rows(section, "SendInMail, projections running")) == 1
        compared = table_rows(section, "SendInMail, metrics")
        assert [row[0] for row in compared] == ["SendInMail, metrics on", "SendInMail, metrics off"]
        assert all(number(row[2]) > 0 and re.fullmatch(FIGURE, row[6]) for row in compared)
        (open_loop,) = table_rows(section, "SendInMail at a fixed rate")
        assert number(open_loop[1]) > 0 and re.fullmatch(FIGURE, open_loop[4])
        (raw_open_loop,) = table_rows(section, "raw js.publish + ack (the limit) at a fixed rate")
        assert raw_open_loop[1] == open_loop[1] and re.fullmatch(FIGURE, raw_open_loop[4])
        peers = table_rows(section, "debit one credit")
        assert [int(row[1]) for row in peers] == [1, 8]
    for setting, goal in (("durable", "0.7"), ("relaxed", "0.35")):
        assert re.search(
            rf"{setting}: SendInMail at 64 in flight is \d+\.\d\dx raw publish\+ack "
            rf"\((meets|MISSES) the {goal}x target\)",
            stdout,
        )
        assert re.search(
            rf"{setting}: open loop at [\d,]+/s has p99 [\d.]+ ms .*raw publish\+ack at the same rate: p99",
            stdout,
        )
    assert re.search(r"durable: SendInMail at 64 in flight is \d+\.\d\dx the eventsourcing", stdout)
    assert re.search(r"With metrics on: \d+\.\d\dx of the throughput without them; [-+][\d.]+ µs", report)


def test_quick_replay_rebuilds_and_compares_with_the_raw_read(tmp_path: Path) -> None:
    report, stdout = run_quick("bench.replay", tmp_path)
    for section in settings_of(report).values():
        events = int(re.search(r"Stream: ([\d,]+) events", section).group(1).replace(",", ""))  # type: ignore[union-attr]
        assert events > 100
        (raw,) = table_rows(section, "raw ordered consumer")
        (follow,) = table_rows(section, "follow_batches alone")
        (rebuild,) = table_rows(section, "rebuild: Projections")
        for row in (raw, follow, rebuild):
            assert number(row[1]) > 0
            assert ratio_of(row[3]) == pytest.approx(number(row[1]) / number(raw[1]), rel=0.02, abs=0.011)
    for setting in ("durable", "relaxed"):
        assert re.search(rf"{setting}: rebuilding is \d+\.\d\dx the raw read rate", stdout)


def test_quick_whatif_compares_both_policies_with_the_replay(tmp_path: Path) -> None:
    report, _ = run_quick("bench.whatif", tmp_path)
    events = int(re.search(r"Stream: ([\d,]+) events", report).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert events > 100
    (follow,) = table_rows(report, "follow_batches alone")
    (same,) = table_rows(report, "whatif, policy v1")
    (other,) = table_rows(report, "whatif, Recruiter cap 3x")
    (replay,) = table_rows(report, "replay: Projections")
    for row in (follow, same, other, replay):
        assert number(row[1]) > 0
        assert ratio_of(row[3]) == pytest.approx(number(row[1]) / number(replay[1]), rel=0.02, abs=0.011)
    assert "Peak memory of the benchmark process" in report


def test_quick_growth_reports_sizes_big_member_and_memory(tmp_path: Path) -> None:
    report, stdout = run_quick("bench.growth", tmp_path)
    for section in settings_of(report).values():
        sizes = [
            row for row in table_rows(section, "") if len(row) == 10 and row[1].replace(",", "").isdigit()
        ]
        assert len(sizes) == 3
        counts = [int(row[1].replace(",", "")) for row in sizes]
        assert counts == sorted(counts)
        for row in sizes:
            assert all(number(cell) > 0 for cell in row[2:8])
        (big,) = table_rows(section, "big")
        (reference,) = table_rows(section, "reference")
        assert int(big[1].replace(",", "")) > int(reference[1])
        (memory,) = table_rows(section, "all member states cached")
        assert number(memory[3]) > 0 and "KiB" in memory[4]
    for setting in ("durable", "relaxed"):
        assert re.search(rf"{setting}: p99 latency at 1 in flight, .* \d+\.\d\dx", stdout)


def test_quick_auth_reports_sendinmail_with_and_without_authentication(tmp_path: Path) -> None:
    report, _ = run_quick("bench.auth", tmp_path)
    rows = table_rows(report, "")
    levels = [row for row in rows if row and row[0].isdigit()]
    assert [int(row[0]) for row in levels] == [1, 16, 64]
    for row in levels:
        on, off = number(row[1]), number(row[2])
        assert on > 0 and off > 0
        assert ratio_of(row[3]) == pytest.approx(on / off, rel=0.02, abs=0.011)


def test_quick_client_compares_the_library_with_a_bare_request(tmp_path: Path) -> None:
    report, stdout = run_quick("bench.client", tmp_path)
    for section in settings_of(report).values():
        bare = table_rows(section, "bare nats-py request")
        library = table_rows(section, "inmail.client")
        assert [int(row[1]) for row in bare] == [int(row[1]) for row in library] == [1, 64]
        for plain, ours in zip(bare, library, strict=True):
            assert number(plain[2]) > 0 and number(ours[2]) > 0
            assert ratio_of(plain[7]) == 1.0
            assert ratio_of(ours[7]) == pytest.approx(number(ours[2]) / number(plain[2]), rel=0.02, abs=0.011)
            assert all(re.fullmatch(FIGURE, cell) for cell in (*ours[4:7], *plain[4:7]))
    for setting in ("durable", "relaxed"):
        for in_flight in (1, 64):
            assert re.search(
                rf"{setting}: inmail.client at {in_flight} in flight is \d+\.\d\dx the bare request's rate, "
                r"[+-]\d+ µs client CPU per send \((meets|MISSES) the 0.9x target\)",
                stdout,
            )
