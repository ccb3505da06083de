"""``inmail replay``: the running service rebuilds read models; this follows it to the end.

``replay --from-seq N`` clears the read models and rebuilds them from sequence
``N``: events before ``N`` are ignored (useful after the stream was purged up to
``N``). InMails and members first seen before ``N`` are then absent from the read
models, and later events about them are left out.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from tqdm import tqdm

from contracts import subjects
from inmail.ops.client import OperatorError, ask, check_from_seq, connected, service


async def replay(
    nats_url: str,
    names: Sequence[str] | None = None,
    from_seq: int = 1,
    progress: bool = True,
    *,
    poll: float = 0.25,
    out: TextIO | None = None,
) -> int:
    """Ask the running service to rebuild read models from ``from_seq``; follow it to the end."""
    out = out or sys.stdout
    check_from_seq(from_seq)
    started_at = time.monotonic()
    async with connected(nats_url) as nc, service(nc) as client:
        requested = client.replay(list(names) if names else None, from_seq=from_seq)
        started = await ask(client, requested, subjects.admin("Replay"))
        base = started.from_seq - 1
        total = max(started.target_seq - base, 0)
        with tqdm(
            total=total, unit="ev", desc="replay", disable=not progress, file=sys.stderr, leave=False
        ) as bar:
            while True:
                health = await ask(client, client.health(), subjects.query("Health"))
                for name in started.names:
                    problem = health.problems.get(name, "")
                    if problem.startswith("stopped"):
                        raise OperatorError(f"replay failed: projection {name} {problem}")
                reached = min(health.projections.get(name, 0) for name in started.names)
                bar.update(max(0, min(reached, started.target_seq) - base - bar.n))
                if reached >= started.target_seq:
                    break
                await asyncio.sleep(poll)
    elapsed = time.monotonic() - started_at
    out.write(
        f"replayed {', '.join(started.names)} from seq {started.from_seq} "
        f"to {started.target_seq} ({total} events) in {elapsed:.1f}s\n"
    )
    return 0
