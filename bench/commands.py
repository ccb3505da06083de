"""End to end: ``SendInMail`` request -> durable event -> reply, against raw publish+ack.

``python -m bench.commands [--quick] [--out FILE] [--no-peer] [--projections]``. For each
fsync setting: one nats-server, the service in a process of its own
(``bench.service``: the command side, no projections, unless ``--projections``), and
this process as the client (``inmail.client``, the library a user would use). Senders
(Recruiter) and Open Profile recipients are registered first; each SendInMail goes
from a random sender to a random recipient: the sender's state from the service's
cache, a fresh read of the recipient, one ~820-byte event appended with optimistic
concurrency, the reply.

- **Closed loop** at 1, 16 and 64 in flight: throughput, p50 and p99 latency, and CPU
  per command of the client, the service (with its children) and the nats-server.
  In the same rounds, on the same server: ``js.publish`` + ack of a ~700-byte event
  at the same in-flight level (the limit, ``bench.limit``); the ratio is
  commands/s over publishes/s.
- **Open loop** at a fixed rate (1,000 commands/s): commands start on schedule
  whatever the replies, latency counted from the scheduled start.
- **The peer**: the same decision as an ``eventsourcing.Application`` on PostgreSQL
  (``bench.peer``, same setting), in the same run, for the ratio to the peer.
- ``--projections`` adds a row at 64 in flight with the projections running in the
  service (their writer in a child process, counted in the service's CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nats

from bench import peer
from bench.common import (
    SETTINGS,
    CpuSample,
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
from bench.limit import Plan as LimitPlan
from bench.limit import ensure_stream, publish_rate, raw_publish_op
from bench.load import Run, closed_loop, open_loop
from bench.service import ServiceProcess, cpu_seconds
from bench.workload import Members, connect, send_op, setup_members, warm_up
from contracts import subjects
from inmail.client import InMailClient

IN_FLIGHT = (1, 16, 64)
RAW_STREAM = "BENCH_RAW"
RAW_ROOT = "benchraw"


@dataclass(frozen=True, slots=True)
class Plan:
    rounds: int
    warmup: float
    duration: float
    senders: int
    recipients: int
    open_rate: float
    open_duration: float
    peer: peer.Plan


FULL = Plan(
    rounds=3, warmup=1.0, duration=4.0, senders=1_000, recipients=1_000,
    open_rate=1_000, open_duration=10.0, peer=peer.FULL,
)  # fmt: skip
QUICK = Plan(
    rounds=1, warmup=0.05, duration=0.25, senders=20, recipients=20,
    open_rate=200, open_duration=0.3, peer=peer.QUICK,
)  # fmt: skip


@dataclass(slots=True)
class Level:
    """One in-flight level: the service's figures next to raw publish+ack."""

    in_flight: int
    raw_runs: list[float] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    client_us: list[float] = field(default_factory=list)
    service_us: list[float] = field(default_factory=list)
    server_us: list[float] = field(default_factory=list)

    @property
    def raw(self) -> float:
        return median(self.raw_runs)

    @property
    def rate(self) -> float:
        return median([run.rate for run in self.runs])

    def p(self, fraction: float) -> float:
        return median([run.latency(fraction) for run in self.runs])


@dataclass(slots=True)
class OpenLoopResult:
    target: float
    runs: list[Run] = field(default_factory=list)
    raw_runs: list[Run] = field(default_factory=list)
    """The limit under the same open loop: js.publish + ack at the same rate, same server."""

    def p(self, fraction: float, *, raw: bool = False) -> float:
        return median([run.latency(fraction) for run in (self.raw_runs if raw else self.runs)])

    def worst(self, *, raw: bool = False) -> float:
        runs = self.raw_runs if raw else self.runs
        return max(max(run.latencies, default=0.0) for run in runs) * 1000


@dataclass(slots=True)
class SettingResult:
    setting: str
    levels: dict[int, Level]
    open_loop: OpenLoopResult
    with_projections: Level | None
    peer: list[peer.PeerFigure]
    peer_commit: str


async def _measure_service(
    client: InMailClient, members: Members, level: Level, plan: Plan, service: ServiceProcess,
    server_pid: int | None, seed: int,
) -> None:  # fmt: skip
    samples: list[tuple[CpuSample, float]] = []

    def sample() -> None:
        samples.append((CpuSample.now(service.pid), cpu_seconds(server_pid) if server_pid else 0.0))

    run = await closed_loop(
        send_op(client, members, seed=seed), level.in_flight, plan.warmup, plan.duration, sample
    )
    (before, server_before), (after, server_after) = samples
    level.runs.append(run)
    per = 1e6 / max(run.ops, 1)
    level.client_us.append((after.client - before.client) * per)
    level.service_us.append((after.service - before.service) * per)
    level.server_us.append((server_after - server_before) * per)


async def _wait_projections(client: InMailClient, target: int, patience: float = 600.0) -> None:
    """Wait until the service's projections have applied ``target`` (read from Health)."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        try:
            health = await client.within(5).health()
            if health.projections and min(health.projections.values()) >= target:
                return
        except Exception as exc:  # the service may still be starting
            log(f"health: {exc!r}")
        await asyncio.sleep(0.5)
    raise TimeoutError("the projections did not catch up")


async def run_setting(
    setting: str, plan: Plan, *, with_peer: bool, projections: bool, logs: Path | None = None
) -> SettingResult:
    """One server and one service process with this fsync setting; everything measured on them."""
    levels = {n: Level(n) for n in IN_FLIGHT}
    limit_plan = LimitPlan(plan.rounds, plan.warmup, plan.duration, 0)
    with (
        tempfile.TemporaryDirectory(prefix=f"bench-commands-{setting}-") as tmp,
        nats_server(Path(tmp) / "nats", setting) as server,
    ):
        store = f"sqlite:///{Path(tmp) / 'readmodels.db'}"
        log_dir = logs or Path(tmp)
        client = await connect(server.url, "bench-client")
        raw = await nats.connect(server.url, name="bench-raw")
        try:
            js = raw.jetstream(timeout=30)
            await ensure_stream(js, RAW_STREAM, [f"{RAW_ROOT}.>"])
            with ServiceProcess(server.url, store, log_path=log_dir / f"service-{setting}.log") as service:
                log(f"commands {setting}: registering {plan.senders + plan.recipients:,} members")
                members = await setup_members(client, plan.senders, plan.recipients)
                for round_ in range(plan.rounds):
                    for n in IN_FLIGHT:
                        log(f"commands {setting}: {n} in flight, round {round_ + 1}: raw, then SendInMail")
                        level = levels[n]
                        level.raw_runs.append(await publish_rate(js, f"{RAW_ROOT}.p", n, limit_plan))
                        await _measure_service(
                            client, members, level, plan, service, server.pid, seed=round_ * 100 + n
                        )
                open_result = OpenLoopResult(plan.open_rate)
                for round_ in range(plan.rounds):
                    log(
                        f"commands {setting}: open loop at {plan.open_rate:,.0f}/s, "
                        f"round {round_ + 1}: raw, then SendInMail"
                    )
                    open_result.raw_runs.append(
                        await open_loop(
                            raw_publish_op(js, f"{RAW_ROOT}.o{round_}"),
                            plan.open_rate, plan.warmup, plan.open_duration,
                        )
                    )  # fmt: skip
                    op = send_op(client, members, seed=1000 + round_)
                    open_result.runs.append(
                        await open_loop(op, plan.open_rate, plan.warmup, plan.open_duration)
                    )
            with_projections = None
            if projections:
                projections_log = log_dir / f"service-projections-{setting}.log"
                with ServiceProcess(server.url, store, projections=True, log_path=projections_log) as service:
                    last = (await js.stream_info(subjects.EVENTS_STREAM)).state.last_seq
                    log(f"commands {setting}: projections catching up to {last:,}")
                    await _wait_projections(client, last)
                    # A new process: load every sender's aggregate before measuring.
                    await warm_up(client, members)
                    with_projections = Level(64)
                    for round_ in range(plan.rounds):
                        log(f"commands {setting}: 64 in flight with projections, round {round_ + 1}")
                        with_projections.raw_runs.append(levels[64].raw)
                        await _measure_service(
                            client, members, with_projections, plan, service, server.pid, seed=round_
                        )
        finally:
            await client.close()
            await raw.close()
    peer_figures: list[peer.PeerFigure] = []
    peer_commit = ""
    if with_peer:
        log(f"commands {setting}: the eventsourcing peer on PostgreSQL")
        peer_figures, peer_commit = await asyncio.to_thread(
            peer.measure_backend, "postgres", setting, plan.peer
        )
    return SettingResult(setting, levels, open_result, with_projections, peer_figures, peer_commit)


# ------------------------------------------------------------------ report


def _level_row(label: str, level: Level, one: float) -> str:
    runs = ", ".join(fmt(run.rate) for run in level.runs)
    return (
        f"| {label} | {level.in_flight} | {fmt(level.rate)} | {runs} | {fmt(level.p(0.5))} "
        f"| {fmt(level.p(0.99))} | {fmt(level.raw)} | {ratio(level.rate, level.raw)} "
        f"| {ratio(level.rate, one)} | {fmt(median(level.client_us))} | {fmt(median(level.service_us))} "
        f"| {fmt(median(level.server_us))} |"
    )


def table(result: SettingResult) -> str:
    """The closed-loop table, the open-loop line and the peer comparison of one setting."""
    one = result.levels[1].rate
    lines = [
        "| measure | in flight | commands/s (median) | runs | p50 ms | p99 ms | raw publish+ack/s "
        "| ratio to raw | ratio to 1 in flight | client CPU µs/cmd | service CPU µs/cmd "
        "| nats-server CPU µs/cmd |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [_level_row("SendInMail, closed loop", level, one) for level in result.levels.values()]
    if result.with_projections is not None:
        lines.append(_level_row("SendInMail, projections running", result.with_projections, one))
    ol = result.open_loop
    lines += [
        "",
        "| open loop | target/s | achieved/s (runs) | p50 ms | p99 ms (median) | p99 ms (runs) | max ms |",
        "|---|---:|---|---:|---:|---|---:|",
    ]
    for label, raw in (("raw js.publish + ack (the limit)", True), ("SendInMail", False)):
        runs = ol.raw_runs if raw else ol.runs
        if not runs:
            continue
        achieved = ", ".join(fmt(run.rate) for run in runs)
        p99s = ", ".join(fmt(run.latency(0.99)) for run in runs)
        lines.append(
            f"| {label} at a fixed rate | {fmt(ol.target)} | {achieved} | {fmt(ol.p(0.5, raw=raw))} "
            f"| {fmt(ol.p(0.99, raw=raw))} | {p99s} | {fmt(ol.worst(raw=raw))} |"
        )
    if result.peer:
        best = peer.best(result.peer, "postgres")
        lines += [
            "",
            f"| peer: eventsourcing on PostgreSQL ({result.peer_commit}) | threads | sends/s | p50 ms "
            "| p99 ms | SendInMail at 64 in flight / peer |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| debit one credit, 1,000 aggregates, cache on | {f.threads} | {fmt(f.rate)} "
            f"| {fmt(f.p50_ms)} | {fmt(f.p99_ms)} | {ratio(result.levels[64].rate, f.rate)} |"
            for f in result.peer
        ]
        lines.append(
            f"\nBest peer figure: {fmt(best.rate)}/s ({best.threads} threads); SendInMail at 64 in "
            f"flight is {ratio(result.levels[64].rate, best.rate)} of it."
        )
    return "\n".join(lines) + "\n"


def targets(results: Sequence[SettingResult]) -> list[str]:
    """The issue's targets for this figure, met or missed."""
    lines = []
    for result in results:
        level = result.levels[64]
        goal = 0.7 if result.setting == "durable" else 0.35
        got = level.rate / level.raw
        lines.append(
            f"{result.setting}: SendInMail at 64 in flight is {got:.2f}x raw publish+ack "
            f"({'meets' if got >= goal else 'MISSES'} the {goal}x target)"
        )
        if result.peer and result.setting == "durable":
            best = peer.best(result.peer, "postgres")
            vs = level.rate / best.rate
            lines.append(
                f"{result.setting}: SendInMail at 64 in flight is {vs:.2f}x the eventsourcing+PostgreSQL "
                f"peer ({'meets' if vs >= 3 else 'MISSES'} the 3x target)"
            )
        p99 = result.open_loop.p(0.99)
        raw_p99 = result.open_loop.p(0.99, raw=True) if result.open_loop.raw_runs else float("nan")
        lines.append(
            f"{result.setting}: open loop at {result.open_loop.target:,.0f}/s has p99 {p99:.2f} ms "
            f"({'meets' if p99 <= 10 else 'MISSES'} the 10 ms target; raw publish+ack at the same "
            f"rate: p99 {raw_p99:.2f} ms)"
        )
    return lines


def report(results: Sequence[SettingResult], plan: Plan, command: str) -> str:
    """The markdown report."""
    parts = header(
        command,
        f"Closed loop: median of {plan.rounds} run(s) of {plan.duration:g} s after {plan.warmup:g} s "
        f"warm-up, raw publish and SendInMail alternating on the same server; {plan.senders:,} "
        f"senders, {plan.recipients:,} Open Profile recipients; open loop: {plan.rounds} run(s) "
        f"of {plan.open_duration:g} s. Service: `python -m bench.service` (no projections unless "
        "the row says so) in its own process.",
        [f"Code: {git_describe()}"],
    )
    parts += settings_sections([(r.setting, table(r)) for r in results], targets(results))
    return "\n".join(parts)


async def run_all(
    plan: Plan, *, with_peer: bool, projections: bool, logs: Path | None = None
) -> list[SettingResult]:
    return [
        await run_setting(setting, plan, with_peer=with_peer, projections=projections, logs=logs)
        for setting in SETTINGS
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print the report, optionally write it."""
    parser = argparse.ArgumentParser(prog="python -m bench.commands", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke test, not data")
    parser.add_argument("--out", help="also write the markdown report to this file")
    parser.add_argument("--no-peer", action="store_true", help="leave out the PostgreSQL peer")
    parser.add_argument("--projections", action="store_true", help="add a row with projections running")
    parser.add_argument("--logs", type=Path, help="keep the service processes' logs in this folder")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.logs:
        args.logs.mkdir(parents=True, exist_ok=True)
    results = asyncio.run(
        run_all(plan, with_peer=not args.no_peer, projections=args.projections, logs=args.logs)
    )
    command = "python -m bench.commands" + "".join(
        flag
        for flag, on in (
            (" --quick", args.quick),
            (" --no-peer", args.no_peer),
            (" --projections", args.projections),
        )
        if on
    )
    return publish_report(report(results, plan, command), args.out)


if __name__ == "__main__":
    raise SystemExit(main())
