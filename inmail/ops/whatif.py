"""``inmail whatif``: the recorded history decided again under another policy, writing nothing.

Reads ``INMAIL_EVENTS`` from sequence 1 to its last sequence at the start (as
``inmail verify`` reads it: one ephemeral pull consumer, the operator's
credentials), feeds every readable event to the pure what-if engine
(``services.whatif``) and prints its report. Nothing is published, appended or
stored: no stream, no bucket, no read model. Events that cannot be read
(quarantined) are left out on both sides and counted.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

import msgspec
from tqdm import tqdm

from contracts import subjects
from contracts.events import Stage, decode_event
from contracts.policy import Policy
from contracts.types import ID_PATTERN
from contracts.whatif import MEASURES, MemberDifference, Totals, WhatIfReport
from inmail.ops.client import OperatorError, connected, events_store, stream_info
from services.whatif import WhatIf

_MEMBER_ID = re.compile(ID_PATTERN)


async def whatif(
    nats_url: str,
    rules: Policy,
    member: str | None = None,
    as_json: bool = False,
    progress: bool = True,
    *,
    out: TextIO | None = None,
    stream: str = subjects.EVENTS_STREAM,
    creds: Path | None = None,
    label: str = "",
) -> int:
    """Replay the stream under ``rules``; print how each member (or ``member``) and the total differ."""
    out = out or sys.stdout
    if member is not None and not _MEMBER_ID.match(member):
        raise OperatorError(f"--member {member!r} is not a member id (1-64 of A-Z a-z 0-9 _ -)")
    started = time.monotonic()
    engine = WhatIf(rules)
    unreadable = 0
    async with connected(nats_url, creds) as nc:
        state = (await stream_info(nc, stream)).state
        last = state.last_seq
        show = progress and sys.stderr.isatty()
        with tqdm(
            total=max(last - state.first_seq + 1, 0) if last else 0,
            unit="ev",
            desc="whatif",
            disable=not show,
            file=sys.stderr,
            leave=False,
            delay=0.5,
        ) as bar:
            if last:
                async for page in events_store(nc, stream).follow_batches(1, until=last):
                    for message in page:
                        try:
                            event = decode_event(message.data)
                        except (msgspec.ValidationError, msgspec.DecodeError):
                            unreadable += 1
                            continue
                        engine.apply(message.seq, event)
                    bar.update(len(page))
    engine.finish()
    elapsed = time.monotonic() - started
    if member is not None and member not in engine.recorded:
        raise OperatorError(f"member {member} has no registration in stream {stream}")
    report = engine.report(member)
    if as_json:
        out.write(msgspec.json.encode(report).decode() + "\n")
        return 0
    members = 1 if member is not None else len(engine.recorded.keys() | engine.whatif.keys())
    out.write(
        f"what-if under policy v{rules.version}{f' ({label})' if label else ''}: {engine.events} events "
        f"read in {elapsed:.1f}s"
        + (f", {unreadable} unreadable left out" if unreadable else "")
        + f"; {len(report.members)} of {members} member{'s' if members != 1 else ''} differ\n"
    )
    out.write(render(report))
    return 0


def render(report: WhatIfReport) -> str:
    """The report as a text table: one row per member that differs, then the total."""
    rows = [["member", *MEASURES]]
    rows += [[m.member_id, *(_cell(m, name) for name in MEASURES)] for m in report.members]
    rows.append(["total", *(_total_cell(report.total, name) for name in MEASURES)])
    widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]))]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n"
        for row in rows
    )


def _cell(member: MemberDifference, name: str) -> str:
    if name == "stage":
        stage = member.stage
        return stage.recorded if stage.recorded == stage.whatif else f"{stage.recorded} -> {stage.whatif}"
    compared = getattr(member, name)
    return _cell_of(compared.recorded, compared.whatif)


def _total_cell(total: Totals, name: str) -> str:
    if name != "stage":
        return _cell_of(getattr(total, name).recorded, getattr(total, name).whatif)
    recorded, whatif = total.stage.recorded, total.stage.whatif

    def counts(stages: Mapping[Stage, int]) -> str:
        return " ".join(f"{stage} {n}" for stage, n in stages.items() if n)

    return counts(recorded) if recorded == whatif else f"{counts(recorded)} -> {counts(whatif)}"


def _cell_of(recorded: int, whatif: int) -> str:
    return str(recorded) if recorded == whatif else f"{recorded} -> {whatif} ({whatif - recorded:+d})"
