"""The benchmarks, one command per figure group; ``python -m bench`` lists them.

``python -m bench --run [--quick]`` runs them all in order (each starts and stops its
own nats-servers; the PostgreSQL peer needs the server on 127.0.0.1:5432). Figures
and how they were made are in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence

COMMANDS: tuple[tuple[str, str], ...] = (
    ("bench.eventstore", "event store appends and reads against plain nats-py"),
    ("bench.limit", "(1) the limit: raw js.publish+ack at 1/16/64 in flight, ordered-consumer read rate"),
    ("bench.commands", "(2) end to end: SendInMail request -> durable event -> reply, vs raw and the peer"),
    ("bench.auth", "the cost of authentication: SendInMail with and without it, in one run"),
    ("bench.peer", "(3) the peer: the same decision as an eventsourcing Application, PostgreSQL and SQLite"),
    ("bench.replay", "(4) replay: rebuilding every projection from the 1M-event simulator stream"),
    ("bench.growth", "(5) growth: latency at 10k/100k/1M events, a 10,000-event member, RSS of 100k members"),
    ("bench.client", "(6) the client library: SendInMail via inmail.client against a bare nats-py request"),
    ("bench.cluster", "(7) a 3-node R3 cluster: SendInMail, 1 and 2 command processes, vs raw publish+ack"),
    ("bench.whatif", "(8) what-if: inmail whatif over the 1M-event stream, against rebuilding read models"),
    ("bench.dataset", "makes the simulator streams replay and growth reuse (bench/results/, once)"),
)


def main(argv: Sequence[str] | None = None) -> int:
    """List the benchmarks, or run them all."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--run", action="store_true", help="run every benchmark in turn")
    parser.add_argument("--quick", action="store_true", help="with --run: smoke runs only")
    args = parser.parse_args(argv)
    if not args.run:
        for module, what in COMMANDS:
            print(f"python -m {module:<18} {what}")
        return 0
    for module, _ in COMMANDS:
        if module == "bench.dataset":
            continue  # replay and growth make the datasets they need
        flags = ["--quick"] if args.quick else []
        done = subprocess.run([sys.executable, "-m", module, *flags], check=False)
        if done.returncode != 0:
            return done.returncode
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
