"""The checkpointed runner: every projection of one read-model store, fed from the event stream.

One pull consumer (``JetStreamEventStore.follow_batches``: the server sends only
what was asked for, so nothing overflows and nothing is lost) reads from the
lowest position among the running projections + 1. Whatever arrived while the
previous batch was being written becomes the next batch (up to ``batch_size``):
large batches while catching up, single events when live. The ``Writer`` (``projections.writer``)
applies each batch exactly once, in transactions that move each projection's
position together with its rows, and stops a projection that cannot apply an
event without holding up the others.

This module keeps what the service asks of the read side: the positions and
problems (mirrored from the writer after every batch), waiting for a sequence
(``min_seq``), reading a read model in one snapshot with its position, and
``reset`` for replays, which is the same code following again from a reset
position. Reads run on a small pool of threads with connections of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import MappingProxyType
from typing import Literal, TypeVar

from eventstore import JetStreamEventStore, StoredMessage, stop_if_cancelled
from projections.base import Projection
from projections.credits import CreditsProjection
from projections.db import Database, Tx
from projections.enforcement import EnforcementProjection
from projections.inbox import InboxProjection
from projections.response_stats import ResponseStatsProjection
from projections.writer import Notes, Outcome, RawBatch, SlotState, States
from projections.writer_host import WriterDied, make_host

log = logging.getLogger("inmail.projections")

T = TypeVar("T")

CATALOGUE: Mapping[str, type[Projection]] = MappingProxyType(
    {
        InboxProjection.name: InboxProjection,
        CreditsProjection.name: CreditsProjection,
        ResponseStatsProjection.name: ResponseStatsProjection,
        EnforcementProjection.name: EnforcementProjection,
    }
)
"""Every projection, by name."""


class UnknownProjection(ValueError):
    """A projection name that is not in the catalogue (or not run here)."""


class Projections:
    """Runs every projection of one read-model store."""

    def __init__(
        self,
        event_store: JetStreamEventStore,
        store_url: str,
        names: Sequence[str] | None = None,
        *,
        catalogue: Mapping[str, type[Projection]] = CATALOGUE,
        writer: Literal["process", "thread"] = "process",
        batch_size: int = 20_000,
    ) -> None:
        chosen = list(catalogue) if names is None else list(dict.fromkeys(names))
        unknown = [name for name in chosen if name not in catalogue]
        if unknown or not chosen:
            raise UnknownProjection(
                f"unknown projection {', '.join(unknown) or '(none given)'}; "
                f"known: {', '.join(catalogue)}"
            )
        self.event_store = event_store
        # Parsed here so that a bad URL fails at once, in the caller.
        self.database = Database(store_url)
        self.batch_size = batch_size
        self._host = make_host(writer, store_url, catalogue, chosen)
        self._states: States = {name: SlotState(0, 1, None, None) for name in chosen}
        self._readers: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._advanced = asyncio.Event()
        self._target: int | None = None
        self._caught_up = False

    @property
    def names(self) -> tuple[str, ...]:
        """The projections this instance runs."""
        return tuple(self._states)

    @property
    def writer_pid(self) -> int | None:
        """The writer process's id (None when the writer runs on a thread)."""
        return self._host.pid

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Open the store, create the schema, start following from the stored positions."""
        if self._task is not None:
            return
        await self._host.start()
        try:
            self._absorb(*await self._host.open())
        except BaseException:
            await self._host.stop()
            raise
        self._readers = ThreadPoolExecutor(2, thread_name_prefix="projections-reader")
        self._task = asyncio.create_task(self._run(), name="projections")

    async def stop(self) -> None:
        """Stop following (after the batch in hand is committed) and close the store."""
        await self._halt()
        await self._host.stop()
        readers, self._readers = self._readers, None
        if readers is not None:
            await asyncio.to_thread(readers.shutdown, True)
        self.database.close()

    async def join(self) -> None:
        """Wait until the runner ends: only a crash ends it (re-raised here), or ``stop``."""
        if self._task is not None:
            await asyncio.shield(self._task)

    def positions(self) -> dict[str, int]:
        """Projection name -> the last stream sequence it applied."""
        return {name: state.position for name, state in self._states.items()}

    def problems(self) -> dict[str, str]:
        """Projection name -> why it stopped (or what store error it is retrying)."""
        return {
            name: state.stopped or state.trouble or ""
            for name, state in self._states.items()
            if state.stopped or state.trouble
        }

    def status(self) -> Literal["ok", "degraded", "starting"]:
        """``degraded`` when a projection has a problem; ``starting`` until the first catch-up."""
        if self.problems():
            return "degraded"
        if not self._caught_up:
            self._caught_up = (
                self._task is not None
                and self._target is not None
                and all(state.position >= self._target for state in self._states.values())
            )
        return "ok" if self._caught_up else "starting"

    async def wait_for(
        # A deadline of its own: a False answer is a result (UNAVAILABLE), not a cancellation.
        self, seq: int, timeout: float, names: Sequence[str] | None = None  # noqa: ASYNC109
    ) -> bool:
        """Wait until every (named) projection has applied ``seq``; False after ``timeout`` or a stop."""
        chosen = self._pick(names)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            states = [self._states[name] for name in chosen]
            if all(state.position >= seq for state in states):
                return True
            if any(state.stopped is not None for state in states if state.position < seq):
                return False
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            advanced = self._advanced
            try:
                await asyncio.wait_for(advanced.wait(), remaining)
            except TimeoutError:
                return False

    async def reset(self, names: Sequence[str] | None, from_seq: int = 1) -> int:
        """Clear the named read models and follow again from ``from_seq``; returns the replay's target.

        Events before ``from_seq`` are ignored from then on (after a stream purge, the
        first sequence left): the read models hold what the events from there say.
        The target is the stream's last sequence at the moment of the reset.
        """
        chosen = self._pick(names)
        if from_seq < 1:
            raise ValueError(f"from_seq must be 1 or more, not {from_seq}")
        if self._task is None:
            raise RuntimeError("projections are not started")
        target = await self.event_store.last_seq()
        await self._halt()
        try:
            self._absorb(*await self._host.reset(chosen, from_seq))
        finally:
            self._task = asyncio.create_task(self._run(), name="projections")
        return target

    async def read(self, name: str, query: Callable[[Tx], T]) -> tuple[T, int]:
        """Run ``query`` on one read model; the answer and the position it reflects, from one snapshot."""
        if name not in self._states:
            raise UnknownProjection(f"projection {name} does not run here")
        if self._readers is None:
            raise RuntimeError("projections are not started")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._read, name, query)

    async def apply(self, messages: Sequence[StoredMessage]) -> None:
        """Hand stored messages to the projections as the consumer does (a redelivery, a tool).

        Events at or below a projection's position are ignored. The messages must not
        start beyond the lowest running position + 1, or events would be missed.
        """
        if not messages:
            return
        running = [state.position for state in self._states.values() if state.stopped is None]
        if running and messages[0].seq > min(running) + 1:
            raise ValueError(f"messages start at {messages[0].seq}, after position {min(running)} + 1")
        await self._apply([(m.seq, m.data) for m in messages])

    # ------------------------------------------------------------------ following

    async def _run(self) -> None:
        delay = 0.0
        while True:
            if delay:
                await asyncio.sleep(delay)
            running = [state for state in self._states.values() if state.stopped is None]
            if not running:
                # Nothing to follow until a reset brings a projection back (it restarts this task).
                await asyncio.Event().wait()
            start = min(state.position for state in running) + 1
            try:
                if self._target is None:
                    self._target = await self.event_store.last_seq()
                outcome = await self._follow(start)
            except WriterDied as exc:
                log.warning("%s; starting it again", exc)
                outcome = await self._revive()
            except Exception as exc:
                stop_if_cancelled()
                log.warning("following the event stream from %d failed (%s); retrying", start, exc)
                outcome = Outcome.RETRY
            delay = min(max(delay * 2, 0.5), 5.0) if outcome is Outcome.RETRY else 0.0

    async def _follow(self, start: int) -> Outcome:
        pages = self.event_store.follow_batches(start, batch=self.batch_size)
        async with contextlib.aclosing(pages):
            async for page in pages:
                outcome = await self._apply([(m.seq, m.data) for m in page])
                if outcome is not Outcome.DONE:
                    return outcome
        return Outcome.RETRY

    async def _apply(self, batch: RawBatch) -> Outcome:
        call = asyncio.ensure_future(self._host.apply(batch))
        try:
            result = await asyncio.shield(call)
        except asyncio.CancelledError:
            # Let the batch finish first: the positions here must match the store before a
            # reset or a stop touches it.
            await asyncio.wait([call])
            if not call.cancelled() and call.exception() is None:
                self._absorb(call.result().states, call.result().notes)
            raise
        self._absorb(result.states, result.notes)
        return result.outcome

    async def _revive(self) -> Outcome:
        trouble = "the writer process ended; restarting it"
        self._states = {name: state._replace(trouble=trouble) for name, state in self._states.items()}
        try:
            await self._host.restart()
            self._absorb(*await self._host.open())
        except Exception as exc:
            # Tried again on the next round: the call then finds no writer and revives it.
            log.warning("the writer could not be started again (%s); retrying", exc)
        return Outcome.RETRY

    def _absorb(self, states: States, notes: Notes) -> None:
        for level, message in notes:
            log.log(level, "%s", message)
        self._states = states
        advanced, self._advanced = self._advanced, asyncio.Event()
        advanced.set()

    async def _halt(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
            if not task.cancelled() and task.exception() is not None:
                log.error("the projection runner had failed: %s", task.exception())

    def _pick(self, names: Sequence[str] | None) -> list[str]:
        if names is None:
            return list(self._states)
        unknown = [name for name in names if name not in self._states]
        if unknown:
            raise UnknownProjection(
                f"unknown projection {', '.join(unknown)}; running: {', '.join(self._states)}"
            )
        return list(dict.fromkeys(names))

    # ------------------------------------------------------------------ on reader threads

    def _read(self, name: str, query: Callable[[Tx], T]) -> tuple[T, int]:
        session = self.database.thread_session()
        try:
            with session.read() as tx:
                row = tx.fetchone("SELECT seq FROM projection_positions WHERE name = ?", (name,))
                result = query(tx)
        except Exception as exc:
            if self.database.is_transient(exc):
                self.database.drop_thread_session()
            raise
        return result, int(row[0]) if row else 0
