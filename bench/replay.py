"""Replay: rebuild every projection from a simulator-made stream, against the raw read rate.

``python -m bench.replay [--quick] [--out FILE] [--data-dir DIR]``. The stream is the
dataset of ``bench.dataset`` (about a million events made by the traffic simulator,
generated once into ``--data-dir`` and reused; generating it takes ~20 minutes).
For each fsync setting a nats-server serves a fresh copy of it, and three readers
go through the whole stream, ``rounds`` times each:

- **raw**: an ordered push consumer of nats-py with a counting callback (the limit);
- **follow_batches**: ``JetStreamEventStore.follow_batches``, what the projections read
  with, doing nothing with the pages;
- **rebuild**: ``Projections`` (inbox, credits, response statistics) on a fresh SQLite
  store, from ``start()`` until every projection's position is the stream's last
  sequence; its writer is a child process, as in the service.

``--quick`` makes a tiny dataset in a temporary folder instead (a smoke test).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import dataset
from bench.common import (
    SETTINGS,
    fmt,
    git_describe,
    header,
    log,
    median,
    publish_report,
    ratio,
    settings_sections,
)
from bench.limit import ordered_read_rate
from bench.service import tree_cpu_seconds
from contracts import subjects
from eventstore import JetStreamEventStore, connect
from inmail.streams import events_stream
from projections.runner import Projections


@dataclass(frozen=True, slots=True)
class Plan:
    rounds: int
    members: int
    months: int


FULL = Plan(rounds=3, members=5_000, months=12)
QUICK = Plan(rounds=1, members=40, months=2)


@dataclass(slots=True)
class ReplayResult:
    setting: str
    events: int
    raw: list[float] = field(default_factory=list)
    follow: list[float] = field(default_factory=list)
    rebuild: list[float] = field(default_factory=list)
    reader_us: list[float] = field(default_factory=list)
    writer_us: list[float] = field(default_factory=list)


async def follow_rate(store: JetStreamEventStore, last: int) -> float:
    """Events/s of ``follow_batches`` over the whole stream, pages discarded."""
    count = 0
    started = time.perf_counter()
    pages = store.follow_batches(1, until=last, batch=20_000)
    async with contextlib.aclosing(pages):
        async for page in pages:
            count += len(page)
    elapsed = time.perf_counter() - started
    if count != last:
        raise RuntimeError(f"follow_batches read {count:,} events, expected {last:,}")
    return count / elapsed


async def rebuild_rate(store: JetStreamEventStore, last: int, directory: Path) -> tuple[float, float, float]:
    """Events/s of a rebuild of every projection on a fresh SQLite store; reader and writer CPU µs/event."""
    store_url = f"sqlite:///{directory / f'readmodels-{time.monotonic_ns()}.db'}"
    projections = Projections(store, store_url)
    own_before = os.times()
    started = time.perf_counter()
    await projections.start()
    writer_pid = projections.writer_pid
    try:
        if not await projections.wait_for(last, timeout=max(600.0, last / 2_000)):
            raise RuntimeError(f"the projections did not reach {last:,}: {projections.problems()}")
        elapsed = time.perf_counter() - started
        own_after = os.times()
        writer_cpu = tree_cpu_seconds(writer_pid) if writer_pid else 0.0
    finally:
        await projections.stop()
    reader_cpu = (own_after.user + own_after.system) - (own_before.user + own_before.system)
    if writer_pid is None:
        reader_cpu, writer_cpu = reader_cpu, 0.0
    return last / elapsed, reader_cpu / last * 1e6, writer_cpu / last * 1e6


async def run_setting(setting: str, plan: Plan, data_dir: Path) -> ReplayResult:
    """Serve a copy of the dataset with this fsync setting; read and rebuild ``rounds`` times."""
    with tempfile.TemporaryDirectory(prefix=f"bench-replay-{setting}-") as tmp, dataset.served_copy(
        data_dir, setting
    ) as server:
        nc = await connect(server.url, name="bench-replay", creds=server.creds("service"))
        store = JetStreamEventStore(nc, events_stream(), timeout=30)
        try:
            await store.open()
            info = await store.stream_info()
            last, events = int(info.state.last_seq), int(info.state.messages)
            if last != events:
                raise RuntimeError(f"the dataset's stream has gaps: {events:,} events up to {last:,}")
            result = ReplayResult(setting, events)
            for round_ in range(plan.rounds):
                log(f"replay {setting}: round {round_ + 1}: raw ordered consumer over {events:,} events")
                raw = await ordered_read_rate(nc, subjects.EVENTS_STREAM, subjects.EVENTS_ALL, events)
                result.raw.append(raw)
                log(f"replay {setting}: round {round_ + 1}: follow_batches")
                result.follow.append(await follow_rate(store, last))
                log(f"replay {setting}: round {round_ + 1}: rebuilding every projection")
                rate, reader, writer = await rebuild_rate(store, last, Path(tmp))
                result.rebuild.append(rate)
                result.reader_us.append(reader)
                result.writer_us.append(writer)
        finally:
            await store.close()
            await nc.close()
    return result


def table(result: ReplayResult) -> str:
    raw = median(result.raw)
    rows = [
        ("raw ordered consumer (nats-py, counting callback)", result.raw, "", ""),
        ("follow_batches alone", result.follow, "", ""),
        (
            "rebuild: Projections on fresh SQLite",
            result.rebuild,
            fmt(median(result.reader_us)),
            fmt(median(result.writer_us)),
        ),
    ]
    lines = [
        f"Stream: {result.events:,} events.",
        "",
        "| reader | events/s (median) | runs | ratio to raw | reader CPU µs/event | writer CPU µs/event |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for name, runs, reader, writer in rows:
        lines.append(
            f"| {name} | {fmt(median(runs))} | {', '.join(fmt(r) for r in runs)} "
            f"| {ratio(median(runs), raw)} | {reader} | {writer} |"
        )
    return "\n".join(lines) + "\n"


def targets(results: Sequence[ReplayResult]) -> list[str]:
    lines = []
    for result in results:
        got = median(result.rebuild) / median(result.raw)
        lines.append(
            f"{result.setting}: rebuilding is {got:.2f}x the raw read rate "
            f"({'meets' if got >= 0.5 else 'MISSES'} the 0.5x target)"
        )
    return lines


def report(results: Sequence[ReplayResult], plan: Plan, command: str, made: dataset.Dataset) -> str:
    parts = header(
        command,
        f"Each figure: median of {plan.rounds} pass(es) over the whole stream; the dataset: "
        f"{made.members:,} simulated members over {made.months} months (seed {made.seed}), "
        f"{made.events:,} events, {made.stream_bytes / 1e6:,.0f} MB, made {made.generated_at} in "
        f"{made.generation_seconds:,.0f} s.",
        [f"Code: {git_describe()}"],
    )
    parts += settings_sections([(r.setting, table(r)) for r in results], targets(results))
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Make (or find) the dataset, run, print the report, optionally write it."""
    parser = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a tiny dataset, one pass: a smoke test")
    parser.add_argument("--out", help="also write the markdown report to this file")
    parser.add_argument(
        "--data-dir", type=Path, default=None,
        help=f"the dataset folder (default {dataset.DEFAULT_DIR}; with --quick a temporary one)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="bench-replay-dataset-") as tmp:
        data_dir = args.data_dir or (Path(tmp) / "dataset" if args.quick else dataset.DEFAULT_DIR)
        made = dataset.ensure(data_dir, members=plan.members, months=plan.months)

        async def run_all() -> list[ReplayResult]:
            return [await run_setting(setting, plan, data_dir) for setting in SETTINGS]

        results = asyncio.run(run_all())
    command = "python -m bench.replay" + (" --quick" if args.quick else "")
    return publish_report(report(results, plan, command, made), args.out)


if __name__ == "__main__":
    raise SystemExit(main())
