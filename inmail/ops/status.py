"""``inmail status``: the stream's size and sequences, each projection's position and lag."""

from __future__ import annotations

import sys
from typing import TextIO

from contracts import subjects
from contracts.queries import HealthData
from inmail.ops.client import OperatorError, ask, connected, stream_info
from inmail.ops.quarantine import quarantine_line


async def status(nats_url: str, *, out: TextIO | None = None, stream: str = subjects.EVENTS_STREAM) -> int:
    """Print the stream's size and sequences and each projection's position and lag.

    Exit code 1 when the service does not answer, a projection has a problem or an
    event is quarantined (one line each).
    """
    out = out or sys.stdout
    async with connected(nats_url) as nc:
        info = await stream_info(nc, stream)
        state = info.state
        lines = [
            f"stream {stream}: {state.messages} events, {_size(state.bytes)}, "
            f"seq {state.first_seq}..{state.last_seq}"
        ]
        code = 0
        try:
            health = await ask(nc, subjects.query("Health"), {}, HealthData)
        except OperatorError as exc:
            lines.append(f"service: not answering ({exc})")
            code = 1
        else:
            lines.append(f"service: {health.status}")
            for name, seq in sorted(health.projections.items()):
                # Never "lag 0" for a read model ahead of its stream (the stream was replaced).
                lag = state.last_seq - seq if seq <= state.last_seq else "unknown"
                line = f"  {name:<16} at seq {seq:>10}   lag {lag}"
                if name in health.problems:
                    line += f"   {health.problems[name]}"
                    code = 1
                lines.append(line)
            lines += [quarantine_line(event) for event in health.quarantined]
            code = code or int(bool(health.quarantined))
    out.write("\n".join(lines) + "\n")
    return code


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
