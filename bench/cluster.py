"""On a 3-node cluster with R3 streams: ``SendInMail`` with 1 and 2 command processes against raw
publish+ack on the same cluster, in the same run.

``python -m bench.cluster [--quick] [--out FILE]``. One loopback cluster
(``inmail.devcluster``, what ``inmail cluster up`` starts: three nats-servers, routes,
operator mode, every write fsynced on every node); the service's command side as
``python -m bench.service --replicas 3 --nats <the three seeds>`` processes (one, then a
second one in the same queue group); this process as the client (``inmail.client``). In
each round, at 1 and 64 in flight: ``js.publish`` + ack of a ~700-byte event to an R3
stream of the same cluster (the limit), then SendInMail with one command process, then
with two. The ratio is commands/s over publishes/s at the same in-flight level.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nats
from nats.js.api import StorageType, StreamConfig

from bench.common import fmt, git_describe, header, log, median, publish_report, ratio
from bench.limit import raw_publish_op
from bench.load import Run, closed_loop
from bench.service import ServiceProcess
from bench.workload import connect, send_op, setup_members, warm_up
from inmail.devcluster import LoopbackCluster
from inmail.natsserver import port_is_free
from inmail.security.installation import issue

IN_FLIGHT = (1, 64)
PROCESSES = (1, 2)
RAW_STREAM = "BENCH_CLUSTER_RAW"
RAW_ROOT = "benchcluster"


@dataclass(frozen=True, slots=True)
class Plan:
    rounds: int
    warmup: float
    duration: float
    senders: int
    recipients: int


FULL = Plan(rounds=3, warmup=1.0, duration=4.0, senders=500, recipients=500)
QUICK = Plan(rounds=1, warmup=0.05, duration=0.3, senders=10, recipients=10)


@dataclass(slots=True)
class Figure:
    """One measure at one in-flight level, over the rounds."""

    runs: list[Run] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return median([run.rate for run in self.runs])

    def p(self, fraction: float) -> float:
        return median([run.latency(fraction) for run in self.runs])


@dataclass(slots=True)
class Results:
    raw: dict[int, Figure]
    commands: dict[tuple[int, int], Figure]
    """(command processes, in flight) -> SendInMail."""


async def measure(plan: Plan, folder: Path) -> Results:
    """Start the cluster and the processes, measure every round, stop everything."""
    cluster = LoopbackCluster.create(folder / "cluster", _free_ports(), _free_ports())
    issue(cluster.installation, "admin", "admin")
    results = Results(
        {n: Figure() for n in IN_FLIGHT}, {(p, n): Figure() for p in PROCESSES for n in IN_FLIGHT}
    )
    serves: list[ServiceProcess] = []
    try:
        await cluster.start()
        raw = await nats.connect(cluster.urls.split(","), user_credentials=str(cluster.creds("admin")))
        js = raw.jetstream(timeout=30)
        await js.add_stream(
            StreamConfig(
                name=RAW_STREAM, subjects=[f"{RAW_ROOT}.>"], storage=StorageType.FILE, num_replicas=3,
                allow_direct=True,
            )
        )  # fmt: skip
        for n in PROCESSES:
            log(f"cluster: starting command process {n}")
            serve = ServiceProcess(
                cluster.urls, f"sqlite:///{folder / 'unused.db'}", creds=cluster.creds("service"), replicas=3,
                log_path=folder / f"commands-{n}.log",
            )  # fmt: skip
            serves.append(serve)
            await asyncio.to_thread(serve.start)
            if n == 1:
                client = await connect(cluster.urls, "bench-cluster-client", str(cluster.creds("client")))
                log(f"cluster: registering {plan.senders + plan.recipients:,} members")
                members = await setup_members(client, plan.senders, plan.recipients)
            # A new process loads each sender's aggregate once before it is measured.
            await warm_up(client, members)
            for round_ in range(plan.rounds):
                for in_flight in IN_FLIGHT:
                    if n == 1:
                        log(f"cluster: raw publish+ack, {in_flight} in flight, round {round_ + 1}")
                        results.raw[in_flight].runs.append(
                            await closed_loop(
                                raw_publish_op(js, f"{RAW_ROOT}.r{round_}", in_flight),
                                in_flight, plan.warmup, plan.duration,
                            )
                        )  # fmt: skip
                    log(f"cluster: SendInMail, {n} process(es), {in_flight} in flight, round {round_ + 1}")
                    op = send_op(client, members, seed=round_ * 100 + in_flight + n)
                    results.commands[(n, in_flight)].runs.append(
                        await closed_loop(op, in_flight, plan.warmup, plan.duration)
                    )
        await client.close()
        await raw.close()
    finally:
        for serve in serves:
            serve.stop()
        cluster.stop()
    return results


def _free_ports(count: int = 3) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in ports and port_is_free("127.0.0.1", port):
            ports.append(port)
    return ports


def report(results: Results, plan: Plan, command: str) -> str:
    """The markdown report."""
    parts = header(
        command,
        f"Each figure: median of {plan.rounds} run(s) of {plan.duration:g} s after {plan.warmup:g} s "
        f"warm-up, raw publish and SendInMail alternating on the same 3-node cluster (every write "
        f"fsynced on every node); {plan.senders:,} Recruiter senders, {plan.recipients:,} Open Profile "
        "recipients; the service: `python -m bench.service --replicas 3` processes (the command side).",
        [f"Code: {git_describe()}", "NATS authentication: on (operator mode, the product's roles)"],
    )
    lines = [
        "| measure | in flight | per second (median) | runs | p50 ms | p99 ms | ratio to raw publish+ack |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for in_flight in IN_FLIGHT:
        raw = results.raw[in_flight]
        rows = [("raw js.publish + ack, R3 stream", raw)] + [
            (f"SendInMail, {n} command process{'es' if n > 1 else ''}", results.commands[(n, in_flight)])
            for n in PROCESSES
        ]
        for label, figure in rows:
            runs = ", ".join(fmt(run.rate) for run in figure.runs)
            lines.append(
                f"| {label} | {in_flight} | {fmt(figure.rate)} | {runs} | {fmt(figure.p(0.5))} "
                f"| {fmt(figure.p(0.99))} | {ratio(figure.rate, raw.rate)} |"
            )
    one, two = results.commands[(1, 64)], results.commands[(2, 64)]
    lines.append(
        f"\nAt 64 in flight, two command processes give {ratio(two.rate, one.rate)} of one's throughput."
    )
    return "\n".join([*parts, *lines, ""])


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print the report, optionally write it."""
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke test, not data")
    parser.add_argument("--out", help="also write the markdown report to this file")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        results = asyncio.run(measure(plan, Path(tmp)))
    command = "python -m bench.cluster" + (" --quick" if args.quick else "")
    return publish_report(report(results, plan, command), args.out)


if __name__ == "__main__":
    raise SystemExit(main())
