"""Growth: command latency as the stream grows, a member with 10,000 events, memory per member.

``python -m bench.growth [--quick] [--out FILE]``. For each fsync setting:

- **Stream size.** Three simulator-made streams of about 10k, 100k and 1M events
  (``bench.dataset``: 50, 500 and 5,000 members over 12 simulated months; the 1M one
  is the replay benchmark's, all made once and reused). On a fresh copy of each, the
  service (own process, no projections) gets benchmark members of its own and
  SendInMail is measured at 1 in flight (latency) and 16 in flight (throughput and
  latency). The ratio is each figure over the 10k stream's.
- **A member with 10,000 events.** On the 1M stream, one Recruiter sends 9,999
  InMails (with its registration: 10,000 events on its subject). The service is
  restarted (empty cache) and the first command on that member is timed (cold: the
  whole aggregate is read and folded), then warm commands on it; the same for a
  member with one event, as the reference. Repeated ``rounds`` times.
- **Memory.** On an empty stream, 100,000 members register through the service
  (every state stays in its cache: 200,000 by default); the service's RSS before
  and after.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import dataset
from bench.common import (
    SETTINGS,
    creds,
    fmt,
    git_describe,
    header,
    log,
    median,
    nats_server,
    publish_report,
    ratio,
    settings_sections,
)
from bench.load import Run, closed_loop, sequential
from bench.service import ServiceProcess
from bench.workload import connect, register, send_from, send_op, setup_members
from contracts import subjects
from inmail.client import InMailClient
from inmail.natsserver import EmbeddedNatsServer


@dataclass(frozen=True, slots=True)
class Size:
    label: str
    members: int
    months: int
    directory: str


@dataclass(frozen=True, slots=True)
class Plan:
    rounds: int
    warmup: float
    duration: float
    sizes: tuple[Size, ...]
    big_member_events: int
    warm_commands: int
    memory_members: int
    senders: int = 200
    recipients: int = 200
    """Benchmark members registered on each stream."""


FULL = Plan(
    rounds=3, warmup=1.0, duration=4.0,
    sizes=(
        Size("10k", 50, 12, "growth-dataset-10k"),
        Size("100k", 500, 12, "growth-dataset-100k"),
        Size("1M", 5_000, 12, dataset.DEFAULT_DIR.name),
    ),
    big_member_events=10_000, warm_commands=300, memory_members=100_000,
)  # fmt: skip
QUICK = Plan(
    rounds=1, warmup=0.05, duration=0.15,
    # One tiny stream under three names: a smoke run exercises the code, not the growth.
    sizes=(Size("tiny", 8, 1, "tiny"), Size("tiny again", 8, 1, "tiny"), Size("tiny thrice", 8, 1, "tiny")),
    big_member_events=50, warm_commands=10, memory_members=200, senders=10, recipients=10,
)  # fmt: skip


@dataclass(slots=True)
class SizeResult:
    label: str
    events: int
    one: list[Run] = field(default_factory=list)
    sixteen: list[Run] = field(default_factory=list)


@dataclass(slots=True)
class BigMember:
    events: int
    cold_big_ms: list[float] = field(default_factory=list)
    cold_small_ms: list[float] = field(default_factory=list)
    warm_big: list[Run] = field(default_factory=list)
    warm_small: list[Run] = field(default_factory=list)


@dataclass(slots=True)
class Memory:
    members: int
    rss_start: int
    rss_end: int
    seconds: float


@dataclass(slots=True)
class GrowthResult:
    setting: str
    sizes: list[SizeResult]
    big: BigMember
    memory: Memory


def _service(server: EmbeddedNatsServer, store: str, tmp: Path) -> ServiceProcess:
    return ServiceProcess(
        server.url, store, creds=server.creds("service"), key_dir=dataset.key_dir(server),
        log_path=tmp / "service.log",
    )  # fmt: skip


async def _client(server: EmbeddedNatsServer) -> InMailClient:
    # As admin: besides commands and queries, the benchmark reads the stream's size.
    return await connect(server.url, "bench-growth", creds(server, "admin"))


async def _timed(client: InMailClient, sender: str, recipients: Sequence[str]) -> float:
    op = send_from(client, sender, recipients)
    began = time.perf_counter()
    await op(0)
    return (time.perf_counter() - began) * 1000


async def measure_sizes(
    setting: str, sizes: Sequence[Size], dirs: dict[str, Path], plan: Plan, tmp: Path
) -> list[SizeResult]:
    """Latency on a fresh copy of each dataset, all served at once and measured in turns.

    Every round visits every stream size, so a machine that gets busier or quieter
    during the run moves every size's figures alike (the ratios are what matter).
    """
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(dataset.served_copy(dirs[size.label], setting)) for size in sizes]
        services = [
            ServiceProcess(
                server.url,
                f"sqlite:///{tmp / f'rm-{size.directory}-{setting}.db'}",
                creds=server.creds("service"),
                key_dir=dataset.key_dir(server),
                log_path=tmp / "service.log",
            )
            for size, server in zip(sizes, servers, strict=True)
        ]
        for service in services:
            stack.callback(service.stop)
            service.launch()
        for service in services:
            service.wait_ready()
        clients = [await _client(server) for server in servers]
        try:
            results, members = [], []
            for size, client in zip(sizes, clients, strict=True):
                events = (await client.nc.jetstream().stream_info(subjects.EVENTS_STREAM)).state.messages
                results.append(SizeResult(size.label, events))
                members.append(await setup_members(client, plan.senders, plan.recipients))
            for round_ in range(plan.rounds):
                for result, client, chosen in zip(results, clients, members, strict=True):
                    log(f"growth {setting}: {result.label} ({result.events:,} events), round {round_ + 1}")
                    op = send_op(client, chosen, seed=round_)
                    result.one.append(await closed_loop(op, 1, plan.warmup, plan.duration))
                    result.sixteen.append(await closed_loop(op, 16, plan.warmup, plan.duration))
        finally:
            for client in clients:
                await client.close()
    return results


async def measure_big_member(setting: str, data_dir: Path, plan: Plan, tmp: Path) -> BigMember:
    """A member with ``big_member_events`` events: cold first command after a restart, then warm ones."""
    with dataset.served_copy(data_dir, setting) as server:
        client = await _client(server)
        store = f"sqlite:///{tmp / f'rm-big-{setting}.db'}"
        try:
            with _service(server, store, tmp):
                members = await setup_members(client, 2, plan.recipients)
                big, small = members.senders
                log(f"growth {setting}: giving one member {plan.big_member_events:,} events")
                fill = send_from(client, big, members.recipients)
                # The per-member lock serialises them in the service anyway; a few in flight
                # keep the pipe full.
                queue = iter(range(plan.big_member_events - 1))

                async def worker() -> None:
                    for _ in queue:
                        await fill(0)

                await asyncio.gather(*(worker() for _ in range(8)))
            result = BigMember(plan.big_member_events)
            for round_ in range(plan.rounds):
                log(f"growth {setting}: cold and warm commands on the big member, round {round_ + 1}")
                with _service(server, store, tmp):
                    result.cold_big_ms.append(await _timed(client, big, members.recipients))
                    result.cold_small_ms.append(await _timed(client, small, members.recipients))
                    count = plan.warm_commands
                    result.warm_big.append(
                        await sequential(send_from(client, big, members.recipients), count)
                    )
                    result.warm_small.append(
                        await sequential(send_from(client, small, members.recipients), count)
                    )
        finally:
            await client.close()
    return result


async def measure_memory(setting: str, plan: Plan, tmp: Path) -> Memory:
    """The service's RSS before and after ``memory_members`` registrations."""
    with nats_server(tmp / f"nats-memory-{setting}", setting) as server:
        client = await _client(server)
        try:
            store = f"sqlite:///{tmp / f'rm-memory-{setting}.db'}"
            with _service(server, store, tmp) as service:
                await register(client, 10, "recruiter", prefix="warmup", open_profile=False)
                await asyncio.sleep(0.5)
                rss_start = service.rss_bytes()
                log(f"growth {setting}: registering {plan.memory_members:,} members")
                began = time.perf_counter()
                await register(client, plan.memory_members, "premium_business", prefix="m", open_profile=True)
                seconds = time.perf_counter() - began
                await asyncio.sleep(1.0)
                rss_end = service.rss_bytes()
        finally:
            await client.close()
    return Memory(plan.memory_members, rss_start, rss_end, seconds)


async def run_setting(setting: str, plan: Plan, dirs: dict[str, Path]) -> GrowthResult:
    with tempfile.TemporaryDirectory(prefix=f"bench-growth-{setting}-") as tmp_name:
        tmp = Path(tmp_name)
        sizes = await measure_sizes(setting, plan.sizes, dirs, plan, tmp)
        big = await measure_big_member(setting, dirs[plan.sizes[-1].label], plan, tmp)
        memory = await measure_memory(setting, plan, tmp)
    return GrowthResult(setting, sizes, big, memory)


# ------------------------------------------------------------------ report


def _p(runs: Sequence[Run], fraction: float) -> float:
    return median([run.latency(fraction) for run in runs])


def _rate(runs: Sequence[Run]) -> float:
    return median([run.rate for run in runs])


def table(result: GrowthResult) -> str:
    base = result.sizes[0]
    lines = [
        "| stream | events | 1 in flight: p50 ms | p99 ms | commands/s | 16 in flight: commands/s "
        "| p50 ms | p99 ms | p50 ratio to first | p99 ratio to first (1 / 16 in flight) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in result.sizes:
        lines.append(
            f"| {size.label} | {size.events:,} | {fmt(_p(size.one, 0.5))} | {fmt(_p(size.one, 0.99))} "
            f"| {fmt(_rate(size.one))} | {fmt(_rate(size.sixteen))} | {fmt(_p(size.sixteen, 0.5))} "
            f"| {fmt(_p(size.sixteen, 0.99))} | {ratio(_p(size.one, 0.5), _p(base.one, 0.5))} "
            f"| {ratio(_p(size.one, 0.99), _p(base.one, 0.99))} / "
            f"{ratio(_p(size.sixteen, 0.99), _p(base.sixteen, 0.99))} |"
        )
    big = result.big
    lines += [
        "",
        "| member | events on its subject | cold first command ms (median; runs) | warm p50 ms "
        "| warm p99 ms | cold / warm p50 |",
        "|---|---:|---|---:|---:|---:|",
        f"| big | {big.events:,} | {fmt(median(big.cold_big_ms))}; "
        f"{', '.join(fmt(v) for v in big.cold_big_ms)} | {fmt(_p(big.warm_big, 0.5))} "
        f"| {fmt(_p(big.warm_big, 0.99))} | {ratio(median(big.cold_big_ms), _p(big.warm_big, 0.5))} |",
        f"| reference | 1 | {fmt(median(big.cold_small_ms))}; "
        f"{', '.join(fmt(v) for v in big.cold_small_ms)} | {fmt(_p(big.warm_small, 0.5))} "
        f"| {fmt(_p(big.warm_small, 0.99))} | {ratio(median(big.cold_small_ms), _p(big.warm_small, 0.5))} |",
    ]
    memory = result.memory
    grown = memory.rss_end - memory.rss_start
    lines += [
        "",
        "| service memory | members | RSS before MB | RSS after MB | growth per member | registrations/s |",
        "|---|---:|---:|---:|---:|---:|",
        f"| all member states cached | {memory.members:,} | {memory.rss_start / 2**20:,.0f} "
        f"| {memory.rss_end / 2**20:,.0f} | {grown / memory.members / 1024:.2f} KiB "
        f"| {fmt(memory.members / memory.seconds)} |",
    ]
    return "\n".join(lines) + "\n"


def targets(results: Sequence[GrowthResult]) -> list[str]:
    lines = []
    for result in results:
        first, last = result.sizes[0], result.sizes[-1]
        for name, fraction in (("p50", 0.5), ("p99", 0.99)):
            got = _p(last.one, fraction) / _p(first.one, fraction)
            lines.append(
                f"{result.setting}: {name} latency at 1 in flight, {last.label} vs {first.label} events: "
                f"{got:.2f}x ({'meets' if got <= 1.5 else 'MISSES'} the 1.5x target)"
            )
    return lines


def report(results: Sequence[GrowthResult], plan: Plan, command: str) -> str:
    parts = header(
        command,
        f"Latencies: median over {plan.rounds} run(s) of {plan.duration:g} s after {plan.warmup:g} s "
        f"warm-up; {plan.senders} senders and {plan.recipients} Open Profile recipients registered on each "
        "stream; the service (`python -m bench.service`, no projections) in its own process.",
        [f"Code: {git_describe()}"],
    )
    parts += settings_sections([(r.setting, table(r)) for r in results], targets(results))
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.growth", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny streams, short runs: a smoke test")
    parser.add_argument("--out", help="also write the markdown report to this file")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="bench-growth-datasets-") as tmp:
        root = Path(tmp) if args.quick else dataset.DEFAULT_DIR.parent
        dirs = {}
        for size in plan.sizes:
            dirs[size.label] = root / size.directory
            dataset.ensure(dirs[size.label], members=size.members, months=size.months)

        async def run_all() -> list[GrowthResult]:
            return [await run_setting(setting, plan, dirs) for setting in SETTINGS]

        results = asyncio.run(run_all())
    command = "python -m bench.growth" + (" --quick" if args.quick else "")
    return publish_report(report(results, plan, command), args.out)


if __name__ == "__main__":
    raise SystemExit(main())
