"""The what-if fold in a child process, fed pages of the stream while the parent reads the next.

Reading (nats-py) and folding (decoding, both folds, every decision again) each take a
core's worth of Python; in one process they add up. As the projections' writer does
for a rebuild, the fold runs in a process of its own: the parent sends it each page of
``(seq, body)`` as it arrives and awaits the send in a thread (a slow fold holds the
reader back, never the event loop), and gets the outcome back once at the end.
Nothing in the child touches NATS, a file or a database.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import traceback
from multiprocessing.connection import Connection
from types import TracebackType

import msgspec

from contracts.events import decode_event
from contracts.policy import Policy, decode_policy, encode_policy
from contracts.whatif import WhatIfReport
from services.whatif import WhatIf

Page = list[tuple[int, bytes]]


class Outcome(msgspec.Struct, frozen=True):
    """What the fold found: its report (None: the member asked for was never registered)."""

    report: WhatIfReport | None
    events: int
    unreadable: int
    members: int
    error: str = ""


class FoldFailed(Exception):
    """The child stopped without an outcome (killed, out of memory, or a bug: its traceback)."""


class ChildFold:
    """The child and its pipe: ``await fold.feed(page)`` for each page, then ``await fold.outcome()``."""

    def __init__(self, rules: Policy, member: str | None) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_fold, args=(child, encode_policy(rules), member), name="inmail-whatif-fold", daemon=True
        )
        self._child = child

    async def __aenter__(self) -> ChildFold:
        self._process.start()
        self._child.close()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._conn.close()
        await asyncio.to_thread(self._process.join, 5)
        if self._process.is_alive():
            self._process.kill()
            await asyncio.to_thread(self._process.join)

    async def feed(self, page: Page) -> None:
        """Hand a page to the child (waits while the child is a page behind)."""
        try:
            await asyncio.to_thread(self._conn.send, page)
        except (BrokenPipeError, EOFError, OSError) as exc:
            raise self._stopped() from exc

    async def outcome(self) -> Outcome:
        """The end of the stream: the child finishes the fold and sends back what it found."""
        try:
            await asyncio.to_thread(self._conn.send, None)
            data = await asyncio.to_thread(self._conn.recv_bytes)
        except (BrokenPipeError, EOFError, OSError) as exc:
            raise self._stopped() from exc
        found = msgspec.msgpack.decode(data, type=Outcome)
        if found.error:
            raise FoldFailed(f"the what-if fold failed:\n{found.error}")
        return found

    def _stopped(self) -> FoldFailed:
        return FoldFailed(f"the what-if fold process stopped (exit code {self._process.exitcode})")


def _fold(conn: Connection, document: bytes, member: str | None) -> None:
    """The child: fold every page until ``None``, then send the outcome."""
    try:
        engine = WhatIf(decode_policy(document))
        unreadable = 0
        while (page := conn.recv()) is not None:
            for seq, data in page:
                try:
                    event = decode_event(data)
                except (msgspec.ValidationError, msgspec.DecodeError):
                    unreadable += 1
                    continue
                engine.apply(seq, event)
        engine.finish()
        known = member is None or member in engine.recorded
        members = 1 if member is not None else len(engine.recorded.keys() | engine.whatif.keys())
        outcome = Outcome(engine.report(member) if known else None, engine.events, unreadable, members)
    except Exception:
        outcome = Outcome(None, 0, 0, 0, error=traceback.format_exc())
    conn.send_bytes(msgspec.msgpack.encode(outcome))
    conn.close()
