"""The cost of authentication: ``SendInMail`` end to end with and without it, in one run.

``python -m bench.auth [--quick] [--out FILE]``. The durable setting only; each round
runs ``bench.commands``' closed loop (1, 16 and 64 in flight) on a server with
authentication (operator mode, every connection with its role's credentials, the
service answering through ``allow_responses``) and then on one without, alternating, so
that drift in the machine's load touches both alike. No peer, no projections.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from dataclasses import replace

from bench.commands import FULL, IN_FLIGHT, QUICK, Level, Plan, run_setting
from bench.common import fmt, git_describe, header, log, median, publish_report, ratio

SETTING = "durable"


async def measure(plan: Plan) -> dict[bool, dict[int, Level]]:
    """Per authentication (True: on), per in-flight level, the runs of every round."""
    levels = {secure: {n: Level(n) for n in IN_FLIGHT} for secure in (True, False)}
    one_round = replace(plan, rounds=1)
    for round_ in range(plan.rounds):
        for secure in (True, False):
            log(f"auth: round {round_ + 1}, authentication {'on' if secure else 'off'}")
            result = await run_setting(SETTING, one_round, with_peer=False, projections=False, secure=secure)
            for n, level in result.levels.items():
                levels[secure][n].runs += level.runs
                levels[secure][n].raw_runs += level.raw_runs
    return levels


def report(levels: dict[bool, dict[int, Level]], plan: Plan, command: str) -> str:
    """The markdown report: commands/s and latency with and without authentication."""
    parts = header(
        command,
        f"Durable setting; {plan.rounds} round(s), each a closed loop of {plan.duration:g} s per level "
        "with authentication, then one without, on servers of their own.",
        [f"Code: {git_describe()}"],
    )
    parts += [
        "| in flight | SendInMail/s, auth on | auth off | on / off | p50 ms on | p50 ms off | p99 ms on "
        "| p99 ms off | raw publish+ack/s on | off |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in IN_FLIGHT:
        on, off = levels[True][n], levels[False][n]
        parts.append(
            f"| {n} | {fmt(on.rate)} | {fmt(off.rate)} | {ratio(on.rate, off.rate)} | {fmt(on.p(0.5))} "
            f"| {fmt(off.p(0.5))} | {fmt(on.p(0.99))} | {fmt(off.p(0.99))} | {fmt(median(on.raw_runs))} "
            f"| {fmt(median(off.raw_runs))} |"
        )
    return "\n".join(parts) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print the report, optionally write it."""
    parser = argparse.ArgumentParser(prog="python -m bench.auth", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke test, not data")
    parser.add_argument("--out", help="also write the markdown report to this file")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    levels = asyncio.run(measure(plan))
    command = "python -m bench.auth" + (" --quick" if args.quick else "")
    return publish_report(report(levels, plan, command), args.out)


if __name__ == "__main__":
    raise SystemExit(main())
