"""``inmail status``: the stream's size and sequences, the service's health: each projection's
position and lag, each stream and bucket it needs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from contracts import subjects
from contracts.queries import Dependency, HealthData
from inmail.ops.client import OperatorError, ask, connected, service, stream_info
from inmail.ops.quarantine import quarantine_line


async def status(
    nats_url: str,
    *,
    out: TextIO | None = None,
    stream: str = subjects.EVENTS_STREAM,
    creds: Path | None = None,
) -> int:
    """Print the stream's size and sequences, each projection's position and lag, and each stream
    and bucket the service needs.

    Exit code 1 unless the service answers and says ``ok`` (a quarantined event is no ``ok``:
    one line each).
    """
    out = out or sys.stdout
    async with connected(nats_url, creds) as nc, service(nc) as client:
        try:
            state = (await stream_info(nc, stream)).state
        except OperatorError as exc:
            lines = [f"stream {stream}: {exc}"]
        else:
            lines = [
                f"stream {stream}: {state.messages} events, {_size(state.bytes)}, "
                f"seq {state.first_seq}..{state.last_seq}"
            ]
        try:
            health = await ask(client, client.health(), subjects.query("Health"))
        except OperatorError as exc:
            lines.append(f"service: not answering ({exc})")
            out.write("\n".join(lines) + "\n")
            return 1
    lines += _health_lines(health)
    out.write("\n".join(lines) + "\n")
    return 0 if health.status == "ok" else 1


def _health_lines(health: HealthData) -> list[str]:
    lines = [f"service: {health.status}"]
    shown: set[str] = set()
    for name, seq in sorted(health.projections.items()):
        lag = health.lag.get(name)
        # Never "lag 0" for a read model whose stream is out of reach or behind it.
        line = f"  {name:<16} at seq {seq:>10}   lag {'unknown' if lag is None else lag}"
        lines.append(_with_problem(line, name, health, shown))
    for name, dependency in health.dependencies.items():
        line = f"  {dependency.kind} {name:<20} {_replicas(dependency)}"
        lines.append(_with_problem(line, name, health, shown))
    problems = sorted(health.problems.items())
    lines += [f"  {name}: {problem}" for name, problem in problems if name not in shown]
    if health.clear_text_until_seq is not None:
        lines.append(
            f"  personal data in the clear: {subjects.EVENTS_STREAM} seq 1..{health.clear_text_until_seq} "
            "was written before encryption existed; those names and texts are never rewritten, and "
            "members registered there cannot be erased (PERSONAL_DATA_IN_CLEAR)"
        )
    return lines + [quarantine_line(event) for event in health.quarantined]


def _with_problem(line: str, name: str, health: HealthData, shown: set[str]) -> str:
    if name not in health.problems:
        return line
    shown.add(name)
    return f"{line}   {health.problems[name]}"


def _replicas(dependency: Dependency) -> str:
    if not dependency.reachable:
        return "unreachable"
    replicas = f"{dependency.replicas_current}/{dependency.replicas}"
    return f"seq {dependency.last_seq:>10}   replicas {replicas} current"


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
