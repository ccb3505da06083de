"""The checkpointed runner: every projection of one read-model store, fed from the event stream.

One pull consumer (``JetStreamEventStore.follow_batches``) reads from the lowest
running position + 1; what arrived while the previous batch was written becomes
the next batch (up to ``batch_size``). The ``Writer`` (``projections.writer``)
applies each batch exactly once, moving each projection's position with its rows,
and stops a projection that cannot apply an event without holding up the others.

Here is what the service asks of the read side: positions and problems, waiting
for ``min_seq``, reads (``projections.reading``), and ``reset`` for replays. A read
model whose stream is no longer the one it was built from (``eventstore.identity``),
seen at start or by the check every ``watch_every`` seconds, stops with the reason
until a replay confirmed with ``new_stream`` (``inmail serve --new-stream``) rebuilds
it. ``on_applied`` tells the composition root (tracing), per projection, the stored
messages each batch applied and when.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Literal, TypeVar

from contracts.queries import QuarantinedEvent
from eventstore import (
    Followed,
    JetStreamEventStore,
    StoredMessage,
    StoreUnavailable,
    first_kept,
    identity_of,
    replacements,
    stop_if_cancelled,
    watch,
)
from projections import quarantine
from projections.base import Projection
from projections.catalogue import CATALOGUE, UnknownProjection
from projections.db import Database, Tx
from projections.reading import Readers
from projections.writer import Notes, Outcome, RawBatch, SlotState, States
from projections.writer_host import WriterDied, make_host

log = logging.getLogger("inmail.projections")

T = TypeVar("T")


class NewStreamUnconfirmed(Exception):
    """Rebuilding would follow a stream other than the one the read models were built from."""


AppliedHook = Callable[[str, Sequence[StoredMessage], int, int], None]
"""(projection, the messages it applied from one batch, start and end in ns since the epoch)."""


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
        watch_every: float = 1.0,
        on_applied: AppliedHook | None = None,
    ) -> None:
        chosen = list(catalogue) if names is None else list(dict.fromkeys(names))
        unknown = [name for name in chosen if name not in catalogue]
        if unknown or not chosen:
            raise UnknownProjection(
                f"unknown projection {', '.join(unknown) or '(none given)'}; known: {', '.join(catalogue)}"
            )
        self.event_store = event_store
        # Parsed here so that a bad URL fails at once, in the caller.
        self.database = Database(store_url)
        self.batch_size = batch_size
        self.watch_every = watch_every
        self.on_applied = on_applied
        self._host = make_host(writer, store_url, catalogue, chosen)
        self._states: States = {name: SlotState(0, 1, None, None) for name in chosen}
        self._opened = False
        self._swapped: dict[str, str] = {}
        """Projection name -> why the stream is not the one it follows (it follows nothing then)."""
        self._readers = Readers(self.database)
        self._task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._following = asyncio.Lock()
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

    async def open(self) -> dict[str, Followed]:
        """Open the store and create the schema; what each read model follows. Follows nothing yet."""
        if not self._opened:
            await self._host.start()
            try:
                self._absorb(*await self._host.open())
            except BaseException:
                await self._host.stop()
                raise
            self._opened = True
        return self.followed()

    def followed(self, *, running: bool = False) -> dict[str, Followed]:
        """Projection name -> what it recorded of the stream it follows (``running``: those following)."""
        states = self._running() if running else self._states.items()
        return {name: Followed(s.stream, s.from_seq, s.position) for name, s in states}

    async def start(self, *, new_stream: bool = False) -> None:
        """Open the store, check the stream, start following from the stored positions.

        A read model whose stream is not the one it was built from stops there, or with
        ``new_stream`` is rebuilt from the stream as it is now.
        """
        if self._task is not None:
            return
        await self.open()
        info = await self.event_store.info_or_none()
        swapped = replacements(self.event_store.spec.name, info, self.followed())
        if swapped and new_stream and info is not None:
            self._absorb(*await self._host.reset(list(swapped), first_kept(info), identity_of(info)))
            log.warning("read models %s rebuilt from the stream as it is now", ", ".join(swapped))
        else:
            self._swap(swapped)
        fresh = [name for name, state in self._running() if state.stream is None]
        if fresh and info is not None:
            self._absorb(*await self._host.adopt(fresh, identity_of(info)))
        self._readers.start()
        self._task = asyncio.create_task(self._run(), name="projections")
        checks = watch(
            self.event_store.spec.name,
            self.event_store.info_or_none,
            lambda: self.followed(running=True),
            self._stop_following,
            self.watch_every,
        )
        self._watch_task = asyncio.create_task(checks, name="projections-stream-watch")

    async def stop(self) -> None:
        """Stop following (after the batch in hand is committed) and close the store."""
        checks, self._watch_task = self._watch_task, None
        if checks is not None:
            checks.cancel()
            await asyncio.wait([checks])
        await self._halt()
        await self._host.stop()
        await self._readers.stop()
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
        problems = {
            name: state.stopped or state.trouble or ""
            for name, state in self._states.items()
            if state.stopped or state.trouble
        }
        for name, reason in self._swapped.items():
            problems[name] = f"stopped: {reason}; start over with `inmail serve --new-stream`"
        return problems

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
            if any(
                self._states[name].stopped is not None or name in self._swapped
                for name in chosen
                if self._states[name].position < seq
            ):
                return False
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            advanced = self._advanced
            try:
                await asyncio.wait_for(advanced.wait(), remaining)
            except TimeoutError:
                return False

    async def reset(
        self, names: Sequence[str] | None, from_seq: int = 1, *, new_stream: bool = False
    ) -> tuple[int, int]:
        """Clear the named read models and follow again from ``from_seq`` (at the earliest the stream's
        first sequence); the sequence they follow from and the replay's target (the last sequence now).
        A read model built from another stream is rebuilt only with ``new_stream``: what it holds is lost.
        """
        chosen = self._pick(names)
        if from_seq < 1:
            raise ValueError(f"from_seq must be 1 or more, not {from_seq}")
        if self._task is None:
            raise RuntimeError("projections are not started")
        async with self._following:
            info = await self.event_store.info_or_none()
            if info is None:
                raise StoreUnavailable(f"stream {self.event_store.spec.name} does not exist")
            followed = self.followed()
            found = replacements(self.event_store.spec.name, info, {name: followed[name] for name in chosen})
            unconfirmed = [r for name in chosen if (r := self._swapped.get(name) or found.get(name))]
            if unconfirmed and not new_stream:
                raise NewStreamUnconfirmed(
                    f"{unconfirmed[0]}; rebuilding from it drops what the read models hold: "
                    "confirm with `inmail replay --new-stream`"
                )
            from_seq = max(from_seq, first_kept(info))
            await self._halt()
            try:
                self._absorb(*await self._host.reset(chosen, from_seq, identity_of(info)))
                for name in chosen:
                    self._swapped.pop(name, None)
            finally:
                self._task = asyncio.create_task(self._run(), name="projections")
        return from_seq, int(info.state.last_seq)

    async def quarantined(self) -> list[QuarantinedEvent]:
        """Events the read models passed over as unreadable and no operator skipped yet."""
        names = list(self._states)
        found, _ = await self.read(names[0], lambda tx: quarantine.unresolved(tx, names))
        return found

    async def read(self, name: str, query: Callable[[Tx], T]) -> tuple[T, int]:
        """Run ``query`` on one read model; the answer and the position it reflects, from one snapshot."""
        if name not in self._states:
            raise UnknownProjection(f"projection {name} does not run here")
        return await self._readers.read(name, query)

    async def apply(self, messages: Sequence[StoredMessage]) -> None:
        """Hand stored messages to the projections as the consumer does (a redelivery, a tool): those at or
        below a projection's position are ignored; they may not start beyond the lowest position + 1."""
        if not messages:
            return
        running = [state.position for name, state in self._running()]
        if running and messages[0].seq > min(running) + 1:
            raise ValueError(f"messages start at {messages[0].seq}, after position {min(running)} + 1")
        await self._apply([(m.seq, m.subject, m.data) for m in messages])

    # ------------------------------------------------------------------ following

    async def _run(self) -> None:
        delay = 0.0
        while True:
            if delay:
                await asyncio.sleep(delay)
            running = [state for _, state in self._running()]
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
                hook = self.on_applied
                before = self.positions() if hook is not None else {}
                started = time.time_ns()
                outcome = await self._apply([(m.seq, m.subject, m.data) for m in page])
                if hook is not None:
                    self._report_applied(hook, page, before, started)
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

    def _running(self) -> list[tuple[str, SlotState]]:
        """The projections that follow the stream: not stopped, their stream not replaced."""
        return [
            (name, state)
            for name, state in self._states.items()
            if state.stopped is None and name not in self._swapped
        ]

    def _swap(self, swapped: dict[str, str]) -> None:
        for name, reason in swapped.items():
            log.error("projection %s stopped: %s", name, reason)
        self._swapped.update(swapped)

    async def _stop_following(self, swapped: dict[str, str]) -> None:
        """Follow again without the read models whose stream was replaced."""
        async with self._following:
            self._swap(swapped)
            await self._halt()
            self._task = asyncio.create_task(self._run(), name="projections")
            self._absorb(self._states, [])

    def _report_applied(
        self, hook: AppliedHook, page: Sequence[StoredMessage], before: dict[str, int], started: int
    ) -> None:
        ended = time.time_ns()
        for name, state in self._states.items():
            applied = [m for m in page if before[name] < m.seq <= state.position]
            if applied:
                hook(name, applied, started, ended)

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
        chosen = list(self._states) if names is None else list(dict.fromkeys(names))
        if unknown := [name for name in chosen if name not in self._states]:
            running = ", ".join(self._states)
            raise UnknownProjection(f"unknown projection {', '.join(unknown)}; running: {running}")
        return chosen
