"""Event store throughput against plain nats-py, on an embedded nats-server per fsync setting.

Run on demand: ``python -m bench.eventstore [--quick] [--out FILE]``. For each setting
(durable: ``sync_interval: always``; relaxed: the server's default fsync interval) one
server is started and every figure and its baseline are measured on it, alternating
store and baseline runs so drift hits both. Ratios are store events/s over baseline
events/s: what the store keeps of what plain nats-py gets from the same server.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import msgspec
import nats
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from eventstore import JetStreamEventStore, NewMessage, StreamSpec, connect
from inmail.natsserver import EmbeddedNatsServer, NatsServerSettings, find_binary

STREAM = "BENCH_EVENTS"
SUBJECT_ROOT = "bench"
APPEND_IN_FLIGHT = (1, 64)
READ_SIZES = (10, 1_000, 10_000)

PUBLISH = "js.publish, 1 event"
CHECKED = "js.publish + msg id + expected seq"
RAW_BATCH = "raw atomic batch, 3 events"
CONSUMER = "ordered consumer"

Op = Callable[[], Awaitable[int]]
"""One operation; returns how many events it wrote or read."""


@dataclass(frozen=True, slots=True)
class Plan:
    """How long to measure: ``rounds`` alternations of store and baseline, medians kept."""

    rounds: int
    warmup: float
    duration: float


FULL = Plan(rounds=3, warmup=0.5, duration=2.0)
QUICK = Plan(rounds=1, warmup=0.05, duration=0.15)


@dataclass(frozen=True, slots=True)
class Rate:
    ops_per_s: float
    events_per_s: float


@dataclass(frozen=True, slots=True)
class Row:
    """One store figure next to the plain nats-py figure it is compared with."""

    measure: str
    in_flight: int
    store: Rate
    baseline_name: str
    baseline: Rate

    @property
    def ratio(self) -> float:
        return self.store.events_per_s / self.baseline.events_per_s


@dataclass(frozen=True, slots=True)
class SettingResult:
    setting: str
    rows: list[Row]


def event_payload() -> bytes:
    """A realistic ~700-byte JSON event (an InMail sent by a recruiter)."""
    event = {
        "type": "InMailSent",
        "inmail_id": str(uuid.uuid4()),
        "command_id": str(uuid.uuid4()),
        "sender_id": "member-7f3a9c21",
        "recipient_id": "member-0b81e4d6",
        "kind": "recruiter_outreach",
        "credits_charged": 1,
        "occurred_at": "2025-06-02T09:41:07.123456Z",
        "subject": "Staff backend engineer, event-driven payments platform (remote, EU)",
        "body": (
            "Hi Dana, I lead hiring for the payments platform team. Your talk on idempotent "
            "consumers stood out: we are moving our ledger to an event-sourced design on NATS "
            "and need someone who has lived with exactly-once projections in production. The "
            "role is fully remote within the EU, with a quarterly on-site week. Would you be "
            "open to a 20-minute call next week? I can share the architecture notes first."
        ),
    }
    return msgspec.json.encode(event)


# ------------------------------------------------------------------ measuring


async def measure(make_op: Callable[[int], Op], in_flight: int, plan: Plan) -> Rate:
    """Run ``in_flight`` workers, each repeating its operation, and time a steady window.

    Operations that start inside the window are counted, up to the end of the last of
    them, so a single read longer than the window still yields a figure.
    """
    ops = events = 0
    window_open = False
    window_used = asyncio.Event()
    last_end = 0.0

    async def worker(index: int) -> None:
        nonlocal ops, events, last_end
        op = make_op(index)
        while True:
            counted = window_open
            if counted:
                window_used.set()
            elif window_used.is_set():
                return
            done = await op()
            if counted:
                ops += 1
                events += done
                last_end = time.perf_counter()

    workers = [asyncio.create_task(worker(i)) for i in range(in_flight)]
    await asyncio.sleep(plan.warmup)
    window_open = True
    started = time.perf_counter()
    await asyncio.sleep(plan.duration)
    await window_used.wait()
    window_open = False
    await asyncio.gather(*workers)
    elapsed = last_end - started
    return Rate(ops / elapsed, events / elapsed)


def median(rates: Sequence[Rate]) -> Rate:
    """The median of each figure over several runs."""
    return Rate(
        statistics.median(r.ops_per_s for r in rates),
        statistics.median(r.events_per_s for r in rates),
    )


async def compare(
    plan: Plan, in_flight: int, candidates: dict[str, Callable[[int], Op]]
) -> dict[str, Rate]:
    """Measure each candidate in turn, ``plan.rounds`` times over; the median of each."""
    rates: dict[str, list[Rate]] = {name: [] for name in candidates}
    for _ in range(plan.rounds):
        for name, make_op in candidates.items():
            rates[name].append(await measure(make_op, in_flight, plan))
    return {name: median(measured) for name, measured in rates.items()}


# ------------------------------------------------------------------ operations


class Ops:
    """The operations under test, on one server: the store's and plain nats-py's."""

    def __init__(self, store: JetStreamEventStore, raw: NATS, payload: bytes) -> None:
        self.store = store
        self.raw = raw
        self.js: JetStreamContext = raw.jetstream(timeout=10)
        self.payload = payload

    def _subject(self, kind: str, index: int) -> str:
        # A new aggregate per worker and run: each writer owns its subject, so no conflicts.
        return f"{SUBJECT_ROOT}.{kind}.{uuid.uuid4().hex[:12]}.{index}"

    @staticmethod
    def _event_ids() -> Callable[[], str]:
        # Event ids come with the events, like the prebuilt payload: a unique prefix and a
        # counter keep the caller's id generation out of the figures.
        prefix, counter = uuid.uuid4().hex, itertools.count()
        return lambda: f"{prefix}-{next(counter)}"

    def store_append(self, events: int) -> Callable[[int], Op]:
        """``store.append`` of ``events`` events at the writer's current version."""
        def make(index: int) -> Op:
            subject = self._subject(f"store{events}", index)
            next_id = self._event_ids()
            version = 0

            async def op() -> int:
                nonlocal version
                messages = [NewMessage(next_id(), self.payload) for _ in range(events)]
                appended = await self.store.append(subject, messages, version)
                version = appended.last_seq
                return events

            return op

        return make

    def raw_publish(self) -> Callable[[int], Op]:
        """Bare ``js.publish``: publish and wait for the ack, no headers."""
        def make(index: int) -> Op:
            subject = self._subject("raw", index)

            async def op() -> int:
                await self.js.publish(subject, self.payload)
                return 1

            return op

        return make

    def raw_publish_checked(self) -> Callable[[int], Op]:
        """js.publish carrying the store's two headers: what the server's checks cost."""

        def make(index: int) -> Op:
            subject = self._subject("rawchecked", index)
            next_id = self._event_ids()
            version = 0

            async def op() -> int:
                nonlocal version
                headers = {
                    "Nats-Msg-Id": next_id(),
                    "Nats-Expected-Last-Subject-Sequence": str(version),
                }
                ack = await self.js.publish(subject, self.payload, headers=headers)
                version = ack.seq
                return 1

            return op

        return make

    def raw_batch(self, events: int) -> Callable[[int], Op]:
        """An atomic batch the way plain nats-py allows: headers by hand, commit as a request."""

        def make(index: int) -> Op:
            subject = self._subject(f"rawbatch{events}", index)

            async def op() -> int:
                batch_id = uuid.uuid4().hex
                for position in range(1, events):
                    await self.raw.publish(
                        subject,
                        self.payload,
                        headers={"Nats-Batch-Id": batch_id, "Nats-Batch-Sequence": str(position)},
                    )
                commit = {
                    "Nats-Batch-Id": batch_id,
                    "Nats-Batch-Sequence": str(events),
                    "Nats-Batch-Commit": "1",
                }
                reply = await self.raw.request(subject, self.payload, timeout=10, headers=commit)
                if b'"error"' in reply.data:
                    raise RuntimeError(f"raw batch refused: {reply.data!r}")
                return events

            return op

        return make

    def store_read(self, subject: str, size: int) -> Callable[[int], Op]:
        """``store.read_subject`` of a whole aggregate."""
        def make(index: int) -> Op:
            async def op() -> int:
                stored = await self.store.read_subject(subject)
                if len(stored) != size:
                    raise RuntimeError(f"read {len(stored)} events of {subject}, expected {size}")
                return size

            return op

        return make

    def raw_read(self, subject: str, size: int) -> Callable[[int], Op]:
        """Replay one subject through an ordered push consumer, nats-py's way to read in order.

        nats-py's unsubscribe leaves the ephemeral consumer on the server, which refuses
        the 1,001st; a short inactivity threshold lets it remove them at no cost per read.
        """

        def make(index: int) -> Op:
            async def op() -> int:
                sub = await self.js.subscribe(
                    subject, stream=STREAM, ordered_consumer=True, inactive_threshold=0.2
                )
                count = 0
                try:
                    while True:
                        msg = await sub.next_msg(timeout=10)
                        count += 1
                        if msg.metadata.num_pending == 0:
                            break
                finally:
                    await sub.unsubscribe()
                if count != size:
                    raise RuntimeError(f"read {count} events of {subject}, expected {size}")
                return size

            return op

        return make

    async def fill(self, sizes: dict[str, int]) -> None:
        """Write the read aggregates in chunks, interleaved with other events as in a busy stream."""
        noise = f"{SUBJECT_ROOT}.read.noise"
        written = dict.fromkeys([*sizes, noise], 0)
        versions = dict.fromkeys([*sizes, noise], 0)
        while any(written[subject] < size for subject, size in sizes.items()):
            for subject in [*sizes, noise]:
                todo = min(100, sizes.get(subject, 100) - written[subject])
                if todo <= 0:
                    continue
                messages = [NewMessage(str(uuid.uuid4()), self.payload) for _ in range(todo)]
                appended = await self.store.append(subject, messages, versions[subject])
                versions[subject] = appended.last_seq
                written[subject] += todo


# ------------------------------------------------------------------ one setting


async def run_setting(durable: bool, plan: Plan, log: Callable[[str], None]) -> SettingResult:
    """Start a server with one fsync setting and measure everything on it."""
    setting = "durable" if durable else "relaxed"
    with tempfile.TemporaryDirectory(prefix=f"bench-nats-{setting}-") as data_dir:
        from bench.common import installation_beside  # bench.common imports this module

        store_dir = Path(data_dir) / "nats"
        settings = NatsServerSettings(
            data_dir=store_dir, port=0, durable=durable, security=installation_beside(store_dir)
        )
        with EmbeddedNatsServer(settings) as server:
            # The store and its raw baseline on the same footing: both as admin, on their own streams.
            store_nc = await connect(server.url, name="bench-store", creds=server.creds("admin"))
            admin = str(server.creds("admin"))
            raw_nc = await nats.connect(server.url, name="bench-raw", user_credentials=admin)
            store = JetStreamEventStore(
                store_nc, StreamSpec(name=STREAM, subjects=(f"{SUBJECT_ROOT}.>",)), timeout=10
            )
            try:
                await store.ensure_stream()
                await store.open()
                ops = Ops(store, raw_nc, event_payload())
                rows = await run_measures(ops, plan, setting, log)
            finally:
                await store.close()
                await raw_nc.close()
                await store_nc.close()
    return SettingResult(setting, rows)


async def run_measures(
    ops: Ops, plan: Plan, setting: str, log: Callable[[str], None]
) -> list[Row]:
    """Appends at each in-flight level, then reads of each aggregate size."""
    rows: list[Row] = []
    for in_flight in APPEND_IN_FLIGHT:
        log(f"{setting}: appends, {in_flight} in flight")
        rate = await compare(
            plan,
            in_flight,
            {
                "store 1": ops.store_append(1),
                "store 3": ops.store_append(3),
                PUBLISH: ops.raw_publish(),
                CHECKED: ops.raw_publish_checked(),
                RAW_BATCH: ops.raw_batch(3),
            },
        )
        rows += [
            Row("append 1 event", in_flight, rate["store 1"], PUBLISH, rate[PUBLISH]),
            Row("append 1 event", in_flight, rate["store 1"], CHECKED, rate[CHECKED]),
            Row("append 3-event batch", in_flight, rate["store 3"], PUBLISH, rate[PUBLISH]),
            Row("append 3-event batch", in_flight, rate["store 3"], RAW_BATCH, rate[RAW_BATCH]),
        ]

    read_subjects = {f"{SUBJECT_ROOT}.read.{size}": size for size in READ_SIZES}
    log(f"{setting}: writing {sum(READ_SIZES):,} events to read back")
    await ops.fill(read_subjects)
    for subject, size in read_subjects.items():
        log(f"{setting}: read an aggregate of {size:,} events")
        rate = await compare(
            plan,
            1,
            {"store": ops.store_read(subject, size), "raw": ops.raw_read(subject, size)},
        )
        rows.append(
            Row(f"read aggregate of {size:,} events", 1, rate["store"], CONSUMER, rate["raw"])
        )
    return rows


# ------------------------------------------------------------------ report


def nats_server_version() -> str:
    """The version of the nats-server binary the embedded server runs."""
    out = subprocess.run([find_binary(), "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip().removeprefix("nats-server: ") or "unknown"


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {
        "cpus": str(os.cpu_count()),
        "memory": memory,
        "nats-server": nats_server_version(),
        "nats-py": version("nats-py"),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def fmt(value: float) -> str:
    """A rate for the table: whole numbers, one decimal below 100."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def table(result: SettingResult) -> str:
    """One setting's figures as a markdown table."""
    header = (
        "| measure | in flight | ops/s | events/s | baseline | baseline ops/s "
        "| baseline events/s | ratio |\n|---|---:|---:|---:|---|---:|---:|---:|\n"
    )
    lines = [
        f"| {r.measure} | {r.in_flight} | {fmt(r.store.ops_per_s)} | {fmt(r.store.events_per_s)} "
        f"| {r.baseline_name} | {fmt(r.baseline.ops_per_s)} | {fmt(r.baseline.events_per_s)} "
        f"| {r.ratio:.2f}x |"
        for r in result.rows
    ]
    return header + "\n".join(lines) + "\n"


def durability_cost(durable: SettingResult, relaxed: SettingResult) -> str:
    """Durable over relaxed throughput for the appends, store and js.publish."""
    lines = ["| measure | in flight | durable / relaxed (store) | durable / relaxed (js.publish) |",
             "|---|---:|---:|---:|"]
    for d, r in zip(durable.rows, relaxed.rows, strict=True):
        if d.measure.startswith("append") and d.baseline_name == PUBLISH:
            lines.append(
                f"| {d.measure} | {d.in_flight} "
                f"| {d.store.events_per_s / r.store.events_per_s:.2f}x "
                f"| {d.baseline.events_per_s / r.baseline.events_per_s:.2f}x |"
            )
    return "\n".join(lines) + "\n"


def report(results: Sequence[SettingResult], plan: Plan, command: str) -> str:
    """The whole markdown report."""
    info = machine()
    parts = [
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: `{command}`  ",
        f"{info['cpus']} CPUs, {info['memory']} memory, nats-server {info['nats-server']}, "
        f"nats-py {info['nats-py']}, Python {info['python']} ({info['platform']})  ",
        f"Each figure: median of {plan.rounds} run(s) of {plan.duration:g} s after "
        f"{plan.warmup:g} s warm-up; store and baseline runs alternate on the same server. "
        "~700-byte JSON events; each writer appends to its own aggregate.",
        "",
    ]
    for result in results:
        title = (
            "durable (`sync_interval: always`)"
            if result.setting == "durable"
            else "relaxed (server default fsync)"
        )
        parts += [f"### {title}", "", table(result)]
    by_setting = {r.setting: r for r in results}
    if {"durable", "relaxed"} <= by_setting.keys():
        parts += [
            "### Cost of the durable setting",
            "",
            durability_cost(by_setting["durable"], by_setting["relaxed"]),
        ]
    return "\n".join(parts)


def target_check(results: Sequence[SettingResult]) -> list[str]:
    """The goal: appends with concurrency control keep >= 0.8x of raw publish+ack at 64 in flight."""
    lines = []
    for result in results:
        for row in result.rows:
            if row.measure == "append 1 event" and row.in_flight == 64 and row.baseline_name == PUBLISH:
                verdict = "meets" if row.ratio >= 0.8 else "MISSES"
                lines.append(
                    f"{result.setting}: append at 64 in flight is {row.ratio:.2f}x raw "
                    f"publish+ack ({verdict} the 0.8x target)"
                )
    return lines


async def run_all(plan: Plan) -> list[SettingResult]:
    """Both settings, durable first, each on its own server."""
    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    return [await run_setting(durable, plan, log) for durable in (True, False)]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the report, optionally write it to files."""
    parser = argparse.ArgumentParser(prog="python -m bench.eventstore", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke test, not data")
    parser.add_argument("--out", help="also write the markdown report to this file")
    parser.add_argument("--json", help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL

    results = asyncio.run(run_all(plan))

    command = "python -m bench.eventstore" + (" --quick" if args.quick else "")
    text = report(results, plan, command)
    print(text)
    for line in target_check(results):
        print(line)
    if args.out:
        Path(args.out).write_text(text)
    if args.json:
        figures = [
            {"setting": r.setting, "rows": [msgspec.to_builtins(row) | {"ratio": row.ratio}
                                            for row in r.rows]}
            for r in results
        ]
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
