"""``inmail quarantine list`` and ``inmail quarantine resolve SEQ --skip``: events no one can read.

An event on ``INMAIL_EVENTS`` that cannot be decoded (written by a newer version,
or by mistake) is quarantined: the read models pass over it and ``Health``
lists it; its member's commands answer ``UNAVAILABLE`` naming its sequence.
``list`` shows those not resolved yet; ``resolve --skip`` asks the service to
record that the operator chose to skip one (an ``EventSkipped`` event, written by
the service like every event), after which the member is served again and every
replay passes over the event the same way.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from contracts import subjects
from contracts.queries import QuarantinedEvent
from inmail.ops.client import ask, connected, service


def quarantine_line(event: QuarantinedEvent) -> str:
    """One quarantined event, as every operator command prints it."""
    return f"quarantined: seq {event.seq} on {event.subject}: {event.error}"


async def quarantined(nats_url: str, *, out: TextIO | None = None, creds: Path | None = None) -> int:
    """Print one line per quarantined event not resolved yet, then how many there are."""
    out = out or sys.stdout
    async with connected(nats_url, creds) as nc, service(nc) as client:
        health = await ask(client, client.health(), subjects.query("Health"))
    for event in health.quarantined:
        out.write(quarantine_line(event) + "\n")
    out.write(f"{len(health.quarantined)} quarantined event{'s' if len(health.quarantined) != 1 else ''}\n")
    return 0


async def skip(
    nats_url: str,
    seq: int,
    reason: str,
    operator: str,
    *,
    out: TextIO | None = None,
    creds: Path | None = None,
) -> int:
    """Ask the service to record that the quarantined event at ``seq`` is skipped."""
    out = out or sys.stdout
    async with connected(nats_url, creds) as nc, service(nc) as client:
        requested = client.skip_event(seq=seq, reason=reason, operator=operator)
        skipped = await ask(client, requested, subjects.admin("SkipEvent"))
    out.write(
        f"skipped seq {skipped.skipped_seq}: member {skipped.member_id} is served again "
        f"(recorded at seq {skipped.seq})\n"
    )
    return 0
