"""The limit: what plain nats-py gets from one nats-server, per fsync setting.

``python -m bench.limit [--quick] [--out FILE]``. For each setting one server is
started and measured with nats-py alone: JetStream publish + ack (``js.publish``,
no headers) of a ~700-byte event at 1, 16 and 64 in flight, and the read rate of an
ordered push consumer (``js.subscribe(..., ordered_consumer=True)``, a counting
callback) over the whole stream. These are the ceilings the service's figures are
compared with; ``bench.commands`` and ``bench.replay`` measure the same baselines again
in their own runs, next to what they compare.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nats
from nats.aio.client import Client as NATS
from nats.js.api import StorageType, StreamConfig
from nats.js.client import JetStreamContext

from bench.common import (
    SETTINGS,
    creds,
    fmt,
    header,
    log,
    median,
    nats_server,
    publish_report,
    ratio,
    settings_sections,
)
from bench.eventstore import event_payload
from bench.load import Op, closed_loop

STREAM = "BENCH_LIMIT"
ROOT = "limit"
IN_FLIGHT = (1, 16, 64)


@dataclass(frozen=True, slots=True)
class Plan:
    """Durations: ``rounds`` repetitions, medians kept; ``read_events`` in the stream read back."""

    rounds: int
    warmup: float
    duration: float
    read_events: int


FULL = Plan(rounds=3, warmup=0.5, duration=3.0, read_events=300_000)
QUICK = Plan(rounds=1, warmup=0.05, duration=0.2, read_events=2_000)


@dataclass(frozen=True, slots=True)
class LimitResult:
    """One setting's ceilings: publish+ack rate by in-flight level, ordered-consumer read rate."""

    setting: str
    publish: dict[int, float]
    publish_runs: dict[int, list[float]]
    read: float
    read_runs: list[float]


async def ensure_stream(js: JetStreamContext, name: str, subjects: Sequence[str]) -> None:
    """A file stream like the event store's (limits retention, one replica, direct gets)."""
    await js.add_stream(
        StreamConfig(name=name, subjects=list(subjects), storage=StorageType.FILE, allow_direct=True)
    )


def raw_publish_op(js: JetStreamContext, subject_root: str, subjects: int = 1_000) -> Op:
    """js.publish + ack of a ~700-byte event; operation ``index`` writes subject ``index % subjects``."""
    payload = event_payload()
    run_id = uuid.uuid4().hex[:8]

    async def op(index: int) -> None:
        await js.publish(f"{subject_root}.{run_id}.{index % subjects}", payload)

    return op


async def publish_rate(js: JetStreamContext, subject_root: str, in_flight: int, plan: Plan) -> float:
    """js.publish + ack of a ~700-byte event per operation; each worker on its own subject."""
    run = await closed_loop(
        raw_publish_op(js, subject_root, in_flight), in_flight, plan.warmup, plan.duration
    )
    return run.rate


async def fill(js: JetStreamContext, subject_root: str, count: int, in_flight: int = 256) -> None:
    """Write ``count`` ~700-byte events over many subjects, fast (publish acks awaited in waves)."""
    payload = event_payload()
    written = 0
    while written < count:
        wave = min(in_flight, count - written)
        acks = [js.publish(f"{subject_root}.m{(written + i) % 5000}", payload) for i in range(wave)]
        await asyncio.gather(*acks)
        written += wave


async def ordered_read_rate(nc: NATS, stream: str, subject: str, expected: int) -> float:
    """Events/s of an ordered push consumer reading ``expected`` events from the start.

    The callback only counts: the figure is what nats-py and the server deliver, not
    what a reader does with it. Pending limits are raised so that nothing is dropped.
    """
    js = nc.jetstream(timeout=30)
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    count = 0

    async def on_message(_msg: object) -> None:
        nonlocal count
        count += 1
        if count == expected and not done.done():
            done.set_result(loop.time())

    started = loop.time()
    sub = await js.subscribe(
        subject,
        stream=stream,
        ordered_consumer=True,
        cb=on_message,
        pending_msgs_limit=4_000_000,
        pending_bytes_limit=4 * 1024**3,
        inactive_threshold=5.0,
    )
    try:
        finished: float = await asyncio.wait_for(done, timeout=max(60.0, expected / 5_000))
    finally:
        await sub.unsubscribe()
    return expected / (finished - started)


async def run_setting(setting: str, plan: Plan) -> LimitResult:
    """Start a server with one fsync setting and measure its ceilings."""
    with (
        tempfile.TemporaryDirectory(prefix=f"bench-limit-{setting}-") as tmp,
        nats_server(Path(tmp) / "nats", setting) as server,
    ):
        nc = await nats.connect(server.url, name="bench-limit", user_credentials=creds(server, "admin"))
        try:
            js = nc.jetstream(timeout=30)
            await ensure_stream(js, STREAM, [f"{ROOT}.>"])
            publish_runs: dict[int, list[float]] = {n: [] for n in IN_FLIGHT}
            for round_ in range(plan.rounds):
                for in_flight in IN_FLIGHT:
                    log(f"limit {setting}: publish+ack, {in_flight} in flight, round {round_ + 1}")
                    publish_runs[in_flight].append(await publish_rate(js, f"{ROOT}.pub", in_flight, plan))
            # The read-back stream holds only the events written for it.
            await ensure_stream(js, f"{STREAM}_READ", ["limitread.>"])
            log(f"limit {setting}: writing {plan.read_events:,} events to read back")
            await fill(js, "limitread", plan.read_events)
            read_runs = []
            for round_ in range(plan.rounds):
                log(f"limit {setting}: ordered-consumer read, round {round_ + 1}")
                read_runs.append(
                    await ordered_read_rate(nc, f"{STREAM}_READ", "limitread.>", plan.read_events)
                )
        finally:
            await nc.close()
    return LimitResult(
        setting,
        {n: median(runs) for n, runs in publish_runs.items()},
        publish_runs,
        median(read_runs),
        read_runs,
    )


def table(result: LimitResult) -> str:
    """One setting's figures."""
    one = result.publish[1]
    lines = [
        "| measure | in flight | events/s (median) | runs | ratio to 1 in flight |",
        "|---|---:|---:|---|---:|",
    ]
    for in_flight, rate in result.publish.items():
        runs = ", ".join(fmt(r) for r in result.publish_runs[in_flight])
        lines.append(
            f"| js.publish + ack, ~700-byte event | {in_flight} | {fmt(rate)} | {runs} | {ratio(rate, one)} |"
        )
    runs = ", ".join(fmt(r) for r in result.read_runs)
    lines.append(f"| ordered-consumer read | 1 | {fmt(result.read)} | {runs} | |")
    return "\n".join(lines) + "\n"


def report(results: Sequence[LimitResult], plan: Plan, command: str) -> str:
    """The markdown report."""
    parts = header(
        command,
        f"Each figure: median of {plan.rounds} run(s); publish runs of {plan.duration:g} s after "
        f"{plan.warmup:g} s warm-up; the read is of a stream of {plan.read_events:,} events.",
    )
    parts += settings_sections([(r.setting, table(r)) for r in results])
    if len(results) == 2:
        durable, relaxed = results
        parts += [
            "### Durable / relaxed",
            "",
            "| measure | durable / relaxed |",
            "|---|---:|",
            *[
                f"| js.publish + ack, {n} in flight | {ratio(durable.publish[n], relaxed.publish[n])} |"
                for n in IN_FLIGHT
            ],
            f"| ordered-consumer read | {ratio(durable.read, relaxed.read)} |",
            "",
        ]
    return "\n".join(parts)


async def run_all(plan: Plan) -> list[LimitResult]:
    """Both settings, each on its own server."""
    return [await run_setting(setting, plan) for setting in SETTINGS]


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print the report, optionally write it."""
    parser = argparse.ArgumentParser(prog="python -m bench.limit", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke test, not data")
    parser.add_argument("--out", help="also write the markdown report to this file")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    results = asyncio.run(run_all(plan))
    command = "python -m bench.limit" + (" --quick" if args.quick else "")
    return publish_report(report(results, plan, command), args.out)


if __name__ == "__main__":
    raise SystemExit(main())
