"""The client library's cost: SendInMail through ``inmail.client`` against a bare nats-py request.

``python -m bench.client [--quick] [--out FILE]``. For each fsync setting: one
nats-server, the service in a process of its own (``bench.service``: the command side,
no projections) and this process as the client, on one connection. Rounds
alternate, same run, same service process, same members and the same JSON:

- **bare nats-py request**: a ``SendInMail`` Struct with a fresh command id encoded by
  hand, ``nc.request`` on ``inmail.cmd.SendInMail``, and only ``ok`` read from the reply:
  the least a hand-made client does.
- **inmail.client**: ``client.send_inmail(...)``: the library checks the arguments as
  the service would, mints the command id, arms its retries and returns the typed reply.

At 1 and 64 in flight: sends/s, p50 and p99 latency, and this process's CPU per send.
The target: the library within 10% of the bare request's rate.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

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
from bench.load import Op, Run, closed_loop
from bench.service import ServiceProcess
from bench.workload import INMAIL_BODY, INMAIL_SUBJECT, Members, connect, send_op, setup_members
from contracts import subjects
from contracts.commands import SendInMail
from inmail.client import InMailClient

IN_FLIGHT = (1, 64)
PATHS = ("bare nats-py request", "inmail.client")
TARGET = 0.9
"""The library's rate over the bare request's, at least."""


@dataclass(frozen=True, slots=True)
class Plan:
    rounds: int
    warmup: float
    duration: float
    senders: int
    recipients: int


FULL = Plan(rounds=5, warmup=1.0, duration=4.0, senders=1_000, recipients=1_000)
QUICK = Plan(rounds=1, warmup=0.05, duration=0.25, senders=20, recipients=20)


@dataclass(slots=True)
class Figure:
    """One path at one in-flight level, over the rounds."""

    path: str
    in_flight: int
    runs: list[Run] = field(default_factory=list)
    client_us: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return median([run.rate for run in self.runs])

    def p(self, fraction: float) -> float:
        return median([run.latency(fraction) for run in self.runs])


class _Ok(msgspec.Struct):
    ok: bool


def bare_op(client: InMailClient, members: Members, *, seed: int) -> Op:
    """SendInMail as JSON over ``nc.request``, checking ``ok`` and nothing else."""
    rng = random.Random(seed)
    prefix = uuid.uuid4().hex[:10]
    sent = 0
    encode = msgspec.json.Encoder().encode
    decode = msgspec.json.Decoder(_Ok).decode
    subject = subjects.command("SendInMail")
    senders, recipients = members.senders, members.recipients

    async def op(index: int) -> None:
        nonlocal sent
        sent += 1
        command = SendInMail(
            command_id=f"{prefix}{sent:x}",
            sender_id=senders[rng.randrange(len(senders))],
            recipient_id=recipients[rng.randrange(len(recipients))],
            subject=INMAIL_SUBJECT,
            body=INMAIL_BODY,
        )
        reply = await client.nc.request(subject, encode(command), timeout=30)
        if not decode(reply.data).ok:
            raise RuntimeError(f"SendInMail refused: {reply.data.decode()}")

    return op


async def _measure(op: Op, figure: Figure, plan: Plan) -> None:
    samples: list[CpuSample] = []

    def sample() -> None:
        samples.append(CpuSample.now(None))

    run = await closed_loop(op, figure.in_flight, plan.warmup, plan.duration, sample)
    before, after = samples
    figure.runs.append(run)
    figure.client_us.append((after.client - before.client) * 1e6 / max(run.ops, 1))


async def run_setting(setting: str, plan: Plan) -> list[Figure]:
    """One server and one service process with this fsync setting; both paths measured on them."""
    figures = {(path, n): Figure(path, n) for n in IN_FLIGHT for path in PATHS}
    with (
        tempfile.TemporaryDirectory(prefix=f"bench-client-{setting}-") as tmp,
        nats_server(Path(tmp) / "nats", setting) as server,
    ):
        store = f"sqlite:///{Path(tmp) / 'readmodels.db'}"
        with ServiceProcess(server.url, store, log_path=Path(tmp) / "service.log"):
            client = await connect(server.url, "bench-client")
            try:
                log(f"client {setting}: registering {plan.senders + plan.recipients:,} members")
                members = await setup_members(client, plan.senders, plan.recipients)
                for round_ in range(plan.rounds):
                    for n in IN_FLIGHT:
                        log(f"client {setting}: {n} in flight, round {round_ + 1}: bare, then inmail.client")
                        seed = round_ * 100 + n
                        await _measure(bare_op(client, members, seed=seed), figures[PATHS[0], n], plan)
                        await _measure(send_op(client, members, seed=seed), figures[PATHS[1], n], plan)
            finally:
                await client.close()
    return list(figures.values())


def table(figures: Sequence[Figure]) -> str:
    """The figures of one setting, each path next to the bare request at the same level."""
    bare = {f.in_flight: f for f in figures if f.path == PATHS[0]}
    lines = [
        "| path | in flight | sends/s (median) | runs | p50 ms | p99 ms | client CPU µs/send "
        "| ratio to bare |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for f in figures:
        runs = ", ".join(fmt(run.rate) for run in f.runs)
        lines.append(
            f"| {f.path} | {f.in_flight} | {fmt(f.rate)} | {runs} | {fmt(f.p(0.5))} | {fmt(f.p(0.99))} "
            f"| {fmt(median(f.client_us))} | {ratio(f.rate, bare[f.in_flight].rate)} |"
        )
    return "\n".join(lines) + "\n"


def targets(results: dict[str, list[Figure]]) -> list[str]:
    """The library's rate against the bare request's, per setting and level."""
    lines = []
    for setting, figures in results.items():
        by = {(f.path, f.in_flight): f for f in figures}
        for n in IN_FLIGHT:
            bare, library = by[PATHS[0], n], by[PATHS[1], n]
            got = library.rate / bare.rate
            extra = median(library.client_us) - median(bare.client_us)
            lines.append(
                f"{setting}: inmail.client at {n} in flight is {got:.2f}x the bare request's rate, "
                f"{extra:+.0f} µs client CPU per send ({'meets' if got >= TARGET else 'MISSES'} "
                f"the {TARGET}x target)"
            )
    return lines


def report(results: dict[str, list[Figure]], plan: Plan, command: str) -> str:
    """The markdown report."""
    parts = header(
        command,
        f"Closed loop: median of {plan.rounds} run(s) of {plan.duration:g} s after {plan.warmup:g} s "
        f"warm-up, the two paths alternating on one connection to one service process "
        f"(`python -m bench.service`, no projections); {plan.senders:,} senders, {plan.recipients:,} "
        "Open Profile recipients.",
        [f"Code: {git_describe()}"],
    )
    parts += settings_sections([(s, table(figures)) for s, figures in results.items()], targets(results))
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print the report, optionally write it."""
    parser = argparse.ArgumentParser(prog="python -m bench.client", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke test, not data")
    parser.add_argument("--out", help="also write the markdown report to this file")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL

    async def run_all() -> dict[str, list[Figure]]:
        return {setting: await run_setting(setting, plan) for setting in SETTINGS}

    results = asyncio.run(run_all())
    command = "python -m bench.client" + (" --quick" if args.quick else "")
    return publish_report(report(results, plan, command), args.out)


if __name__ == "__main__":
    raise SystemExit(main())
