"""What-if replay: `inmail whatif` over a simulator-made stream, against rebuilding the read models.

``python -m bench.whatif [--quick] [--out FILE] [--data-dir DIR] [--members N --months M]``.
The stream is a dataset of ``bench.dataset`` (by default the replay benchmark's ~1M-event
one; ``--members``/``--months`` pick or make a smaller one under ``bench/results/``). A
nats-server serves a fresh copy of it (relaxed fsync: nothing is written), and each round
goes through the whole stream four ways:

- **follow_batches**: ``JetStreamEventStore.follow_batches`` doing nothing with the pages
  (the read ceiling every reader here shares);
- **whatif, same policy**: ``inmail.ops.whatif`` (what ``inmail whatif --json`` runs) under
  policy v1 itself: read, decode, both folds, every decision taken again, the report;
- **whatif, other policy**: the same under a policy with the Recruiter cap at 3x and a
  60-day refund window (differences to find and report);
- **replay**: ``Projections`` rebuilding every read model on a fresh SQLite store, what
  ``inmail replay`` makes the service do (as ``bench.replay`` measures it).

Ratios are to the replay of the same round. ``--quick`` makes a tiny dataset in a
temporary folder (a smoke test).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import resource
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import msgspec

from bench import dataset
from bench.common import fmt, git_describe, header, log, median, publish_report, ratio
from bench.replay import follow_rate, rebuild_rate
from contracts.policy import POLICY_V1, Policy
from contracts.whatif import WhatIfReport
from eventstore import JetStreamEventStore, connect
from inmail.ops.whatif import whatif
from inmail.streams import events_stream


@dataclass(frozen=True, slots=True)
class Plan:
    rounds: int
    members: int
    months: int


FULL = Plan(rounds=3, members=5_000, months=12)
QUICK = Plan(rounds=1, members=40, months=2)


def other_policy() -> Policy:
    """Recruiter cap 3x its allotment instead of 4x, and a 60-day refund window."""
    tiers = dict(POLICY_V1.tiers)
    tiers["recruiter"] = msgspec.structs.replace(tiers["recruiter"], cap=450)
    return msgspec.structs.replace(POLICY_V1, version=2, tiers=tiers, refund_window=timedelta(days=60))


@dataclass(slots=True)
class Result:
    events: int
    follow: list[float] = field(default_factory=list)
    same: list[float] = field(default_factory=list)
    other: list[float] = field(default_factory=list)
    replay: list[float] = field(default_factory=list)
    differing: int = 0
    members: int = 0


async def whatif_rate(url: str, creds: Path | None, rules: Policy, events: int) -> tuple[float, WhatIfReport]:
    """Events/s of ``inmail whatif --json`` end to end, and its report."""
    out = io.StringIO()
    started = time.perf_counter()
    await whatif(url, rules, as_json=True, progress=False, out=out, creds=creds)
    elapsed = time.perf_counter() - started
    return events / elapsed, msgspec.json.decode(out.getvalue(), type=WhatIfReport)


async def run(plan: Plan, data_dir: Path) -> Result:
    """Serve a copy of the dataset; read, what-if twice and rebuild ``rounds`` times."""
    with tempfile.TemporaryDirectory(prefix="bench-whatif-") as tmp, dataset.served_copy(
        data_dir, "relaxed"
    ) as server:
        operator = server.creds("operator")
        nc = await connect(server.url, name="bench-whatif", creds=server.creds("service"))
        store = JetStreamEventStore(nc, events_stream(), timeout=30)
        try:
            await store.open()
            info = await store.stream_info()
            last, events = int(info.state.last_seq), int(info.state.messages)
            result = Result(events)
            for round_ in range(plan.rounds):
                log(f"whatif: round {round_ + 1}: follow_batches over {events:,} events")
                result.follow.append(await follow_rate(store, last))
                log(f"whatif: round {round_ + 1}: whatif under policy v1")
                rate, same = await whatif_rate(server.url, operator, POLICY_V1, events)
                if same.members:
                    raise RuntimeError(f"policy v1 itself made {len(same.members)} member(s) differ")
                result.same.append(rate)
                log(f"whatif: round {round_ + 1}: whatif under another policy")
                rate, other = await whatif_rate(server.url, operator, other_policy(), events)
                result.other.append(rate)
                result.differing = len(other.members)
                result.members = sum(other.total.stage.recorded.values())
                log(f"whatif: round {round_ + 1}: rebuilding every projection (inmail replay)")
                replay, _, _ = await rebuild_rate(store, last, Path(tmp))
                result.replay.append(replay)
        finally:
            await store.close()
            await nc.close()
    return result


def report(result: Result, plan: Plan, command: str, made: dataset.Dataset) -> str:
    replay = median(result.replay)
    rows = [
        ("follow_batches alone (the read)", result.follow),
        ("whatif, policy v1 (no difference)", result.same),
        (f"whatif, Recruiter cap 3x + 60-day refunds ({result.differing:,} members differ)", result.other),
        ("replay: Projections rebuilt on fresh SQLite", result.replay),
    ]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    parts = header(
        command,
        f"Each figure: median of {plan.rounds} pass(es) over the whole stream, in one run, on one "
        f"server; the dataset: {made.members:,} simulated members over {made.months} months "
        f"(seed {made.seed}), {made.events:,} events, {made.stream_bytes / 1e6:,.0f} MB.",
        [f"Code: {git_describe()}"],
    )
    parts += [
        f"Stream: {result.events:,} events, {result.members:,} members.",
        "",
        "| reader | events/s (median) | runs | ratio to replay |",
        "|---|---:|---|---:|",
        *[
            f"| {name} | {fmt(median(runs))} | {', '.join(fmt(r) for r in runs)} "
            f"| {ratio(median(runs), replay)} |"
            for name, runs in rows
        ],
        "",
        f"Peak memory of the benchmark process (the what-if's two folds of every member included): "
        f"{peak:,.0f} MB.",
        "",
    ]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Make (or find) the dataset, run, print the report, optionally write it."""
    parser = argparse.ArgumentParser(prog="python -m bench.whatif", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a tiny dataset, one pass: a smoke test")
    parser.add_argument("--out", help="also write the markdown report to this file")
    parser.add_argument("--data-dir", type=Path, default=None, help="the dataset folder")
    parser.add_argument("--members", type=int, default=None, help="a dataset of this many members")
    parser.add_argument("--months", type=int, default=None, help="a dataset of this many months")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    plan = Plan(
        rounds=args.rounds or plan.rounds,
        members=args.members or plan.members,
        months=args.months or plan.months,
    )
    with tempfile.TemporaryDirectory(prefix="bench-whatif-dataset-") as tmp:
        if args.data_dir is not None:
            data_dir = args.data_dir
        elif args.quick:
            data_dir = Path(tmp) / "dataset"
        elif (plan.members, plan.months) == (FULL.members, FULL.months):
            data_dir = dataset.DEFAULT_DIR
        else:
            data_dir = dataset.DEFAULT_DIR.parent / f"dataset-{plan.members}x{plan.months}"
        made = dataset.ensure(data_dir, members=plan.members, months=plan.months)
        result = asyncio.run(run(plan, data_dir))
    flags = " --quick" if args.quick else ""
    if not args.quick and (args.members or args.months):
        flags += f" --members {plan.members} --months {plan.months}"
    return publish_report(report(result, plan, f"python -m bench.whatif{flags}", made), args.out)


if __name__ == "__main__":
    raise SystemExit(main())
