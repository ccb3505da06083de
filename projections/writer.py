"""The writer: applies batches of stored events to the read-model store, exactly once.

Exactly once. A projection applies a batch in one transaction that first moves
its row in ``projection_positions`` from the position it last committed to the
batch's last sequence (a conditional UPDATE: the fence) and then writes its rows.
Commit makes both durable; a crash before commit leaves neither, and the next
start follows again from the stored position. An event at or below a
projection's position is never applied again, whoever delivers it. Several
workers on one PostgreSQL store serialise on the position row's lock; a worker
whose expected position or epoch (bumped by every reset) is stale applies
nothing, reloads the position and follows again from there.

Failing alone. A projection that cannot apply an event stops: it finds the
event by applying the batch one event per transaction, keeps everything before
it, and reports the sequence and the error. It never skips the event; the other
projections carry on. Store errors worth retrying (a lock, a lost PostgreSQL
connection) are retried by the runner with back-off instead. An event that
cannot even be read is no reason to stop: each projection records it as
quarantined and goes on (``projections.quarantine``).

Which stream. Each projection records the identity of the stream it follows
(``projection_streams``), so the runner can tell a stream swapped underneath
(``eventstore.identity``) from the one its rows came from.

The writer is synchronous and knows nothing of where it runs: ``writer_host``
runs it on a thread or in a child process and carries its results back.
"""

from __future__ import annotations

import contextlib
import enum
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from projections import quarantine
from projections.base import Projection, ProjectionError
from projections.db import Database, Session, Tx
from projections.quarantine import Decoded

RawBatch = list[tuple[int, str, bytes]]
"""Stored messages as (stream sequence, subject, event body), in stream order."""

POSITIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS projection_positions ("
    " name TEXT PRIMARY KEY, seq BIGINT NOT NULL, epoch BIGINT NOT NULL,"
    " from_seq BIGINT NOT NULL, version INTEGER NOT NULL)"
)
STREAMS_DDL = "CREATE TABLE IF NOT EXISTS projection_streams (name TEXT PRIMARY KEY, stream TEXT NOT NULL)"
"""The identity of the stream each projection follows (a table of its own: stores made before
identities were kept have no such column to add)."""
_FOLLOW = (
    "INSERT INTO projection_streams (name, stream) VALUES (?, ?)"
    " ON CONFLICT (name) DO UPDATE SET stream = excluded.stream"
)
_FENCE = "UPDATE projection_positions SET seq = ? WHERE name = ? AND seq = ? AND epoch = ?"
_POSITION = "SELECT seq, epoch, from_seq FROM projection_positions WHERE name = ?"


class Outcome(enum.IntEnum):
    """What the runner should do after a batch."""

    DONE = 0
    RESTART = 1
    """Follow again from the positions (one moved back, or did not advance)."""
    RETRY = 2
    """As RESTART, after a pause: the store failed in a way worth retrying."""


class SlotState(NamedTuple):
    """Where one projection stands."""

    position: int
    from_seq: int
    stopped: str | None
    trouble: str | None
    stream: str | None = None
    """The identity of the stream it follows; None until one is recorded."""


States = dict[str, SlotState]
Notes = list[tuple[int, str]]
"""Log lines (level, message) for the runner to emit."""


class Report(NamedTuple):
    """Where every projection stands after a request, and the log lines it produced."""

    states: States
    notes: Notes


class BatchResult(NamedTuple):
    """What applying a batch came to: what to do next, and where every projection stands."""

    outcome: Outcome
    states: States
    notes: Notes


class _Fenced(Exception):
    """Another worker moved the position first: this batch must not be applied here."""


@dataclass(slots=True)
class _Slot:
    projection: Projection
    position: int = 0
    epoch: int = 0
    from_seq: int = 1
    stopped: str | None = None
    trouble: str | None = None
    stream: str | None = None

    @property
    def name(self) -> str:
        return self.projection.name

    def state(self) -> SlotState:
        return SlotState(self.position, self.from_seq, self.stopped, self.trouble, self.stream)


class Writer:
    """Applies batches to one read-model store; owns its write session and the positions."""

    def __init__(self, store_url: str, catalogue: Sequence[type[Projection]]) -> None:
        self.database = Database(store_url)
        self._slots = {kind.name: _Slot(kind()) for kind in catalogue}
        self._session: Session | None = None
        self._notes: Notes = []

    # ------------------------------------------------------------------ requests

    def open(self) -> Report:
        """Create the schema, rebuild read models of another schema version, load the positions."""
        with self._write() as tx:
            tx.lock_schema()
            tx.execute(POSITIONS_DDL)
            tx.execute(STREAMS_DDL)
            tx.execute(quarantine.DDL)
            for slot in self._slots.values():
                self._prepare(tx, slot)
        return self._report()

    def apply(self, batch: RawBatch) -> BatchResult:
        """Apply a batch to every running projection whose position is below its events."""
        outcome = self._apply_batch(batch)
        return BatchResult(outcome, *self._report())

    def reset(self, names: Sequence[str], from_seq: int, stream: str) -> Report:
        """Clear the named read models; they follow ``stream`` again from ``from_seq``."""
        for name in names:
            slot = self._slots[name]
            with self._write() as tx:
                # The position row first: its lock keeps other workers out until commit.
                tx.execute(
                    "UPDATE projection_positions SET seq = ?, epoch = epoch + 1, from_seq = ?"
                    " WHERE name = ?",
                    (from_seq - 1, from_seq, name),
                )
                row = tx.fetchone(_POSITION, (name,))
                assert row is not None
                for table in slot.projection.tables:
                    tx.clear(table)
                quarantine.clear(tx, name)
                tx.execute(_FOLLOW, (name, stream))
            slot.position, slot.epoch, slot.from_seq = row
            slot.stopped = slot.trouble = None
            slot.stream = stream
            self._note(logging.INFO, f"projection {name} reset: following again from {from_seq}")
        return self._report()

    def adopt(self, names: Sequence[str], stream: str) -> Report:
        """Record ``stream`` as the one the named projections follow, keeping their rows."""
        with self._write() as tx:
            for name in names:
                tx.execute(_FOLLOW, (name, stream))
        for name in names:
            self._slots[name].stream = stream
        return self._report()

    def close(self) -> None:
        """Close the write session."""
        session, self._session = self._session, None
        if session is not None:
            session.close()
        self.database.close()

    # ------------------------------------------------------------------ applying

    def _apply_batch(self, batch: RawBatch) -> Outcome:
        running = [slot for slot in self._slots.values() if slot.stopped is None]
        if not running:
            return Outcome.DONE
        lowest = min(slot.position for slot in running)
        decoded = [(seq, quarantine.decode(subject, data)) for seq, subject, data in batch if seq > lowest]
        if not decoded:
            return Outcome.DONE
        if all(slot.position == lowest for slot in running):
            # The usual case: one transaction for every projection (one commit, not one each).
            # Any error sends the batch down the careful path below, which finds and isolates it.
            with contextlib.suppress(Exception):
                self._commit_together(running, decoded)
                for slot in running:
                    slot.trouble = None
                return Outcome.DONE
        outcome = Outcome.DONE
        for slot in running:
            outcome = max(outcome, self._apply_slot(slot, decoded))
        return outcome

    def _commit_together(self, slots: list[_Slot], decoded: list[tuple[int, Decoded]]) -> None:
        events, unreadable, skips = quarantine.sort(decoded)
        handled = [
            [item for item in events if type(item[1]) in slot.projection.handles] for slot in slots
        ]
        last = decoded[-1][0]
        with self._write() as tx:
            for slot, mine in zip(slots, handled, strict=True):
                if tx.execute(_FENCE, (last, slot.name, slot.position, slot.epoch)) != 1:
                    raise _Fenced
                if mine:
                    slot.projection.apply(tx, mine, strict=slot.from_seq <= 1)
                self._quarantine(tx, slot, unreadable, skips)
        for slot in slots:
            slot.position = last

    def _apply_slot(self, slot: _Slot, decoded: list[tuple[int, Decoded]]) -> Outcome:
        items = [item for item in decoded if item[0] > slot.position]
        if not items:
            return Outcome.DONE
        try:
            self._commit(slot, items)
        except _Fenced:
            return self._reload(slot)
        except Exception as exc:
            if self.database.is_transient(exc):
                return self._in_trouble(slot, exc)
            if len(items) == 1:
                self._stop(slot, items[0][0], exc)
                return Outcome.DONE
            # Find the event at fault: one event per transaction, keeping those before it.
            for item in items:
                try:
                    self._commit(slot, [item])
                except _Fenced:
                    return self._reload(slot)
                except Exception as single:
                    if self.database.is_transient(single):
                        return self._in_trouble(slot, single)
                    self._stop(slot, item[0], single)
                    return Outcome.DONE
        slot.trouble = None
        return Outcome.DONE

    def _commit(self, slot: _Slot, items: list[tuple[int, Decoded]]) -> None:
        projection = slot.projection
        events, unreadable, skips = quarantine.sort(items)
        mine = [item for item in events if type(item[1]) in projection.handles]
        last = items[-1][0]
        with self._write() as tx:
            if tx.execute(_FENCE, (last, slot.name, slot.position, slot.epoch)) != 1:
                raise _Fenced
            if mine:
                projection.apply(tx, mine, strict=slot.from_seq <= 1)
            self._quarantine(tx, slot, unreadable, skips)
        slot.position = last

    def _quarantine(
        self, tx: Tx, slot: _Slot, unreadable: list[tuple[int, str, str]], skips: list[tuple[int, int]]
    ) -> None:
        if unreadable:
            quarantine.record(tx, slot.name, unreadable)
            for seq, subject, error in unreadable:
                note = f"projection {slot.name}: seq {seq} ({subject}) quarantined: {error}"
                self._note(logging.WARNING, note)
        if skips:
            quarantine.resolve(tx, slot.name, skips)

    def _reload(self, slot: _Slot) -> Outcome:
        with self._session_or_connect().read() as tx:
            row = tx.fetchone(_POSITION, (slot.name,))
        if row is None:
            self._stop(slot, slot.position + 1, RuntimeError("its position row is gone"))
            return Outcome.DONE
        self._note(
            logging.INFO,
            f"projection {slot.name}: moved to {row[0]} by another worker; following from there",
        )
        slot.position, slot.epoch, slot.from_seq = row
        return Outcome.RESTART

    def _in_trouble(self, slot: _Slot, exc: Exception) -> Outcome:
        slot.trouble = f"store error, retrying: {one_line(exc)}"
        self._note(logging.WARNING, f"projection {slot.name} at {slot.position}: {slot.trouble}")
        # A lost connection is replaced on the next attempt.
        session, self._session = self._session, None
        if session is not None:
            session.close()
        return Outcome.RETRY

    def _stop(self, slot: _Slot, seq: int, exc: Exception) -> None:
        reason = one_line(exc)
        if not isinstance(exc, ProjectionError):
            reason = f"{type(exc).__name__}: {reason}"
        slot.stopped = f"stopped at seq {seq}: {reason}"
        self._note(logging.ERROR, f"projection {slot.name} {slot.stopped} (applied up to {slot.position})")

    # ------------------------------------------------------------------ plumbing

    def _prepare(self, tx: Tx, slot: _Slot) -> None:
        projection = slot.projection
        row = tx.fetchone(
            "SELECT seq, epoch, from_seq, version FROM projection_positions WHERE name = ?",
            (slot.name,),
        )
        if row is not None and row[3] != projection.version:
            # Read models are disposable: another schema version is dropped and rebuilt.
            self._note(
                logging.WARNING,
                f"projection {slot.name}: stored schema version {row[3]}, this code has "
                f"{projection.version}; rebuilding",
            )
            for table in projection.tables:
                tx.execute(f"DROP TABLE IF EXISTS {table}")
        for statement in projection.schema:
            tx.execute(statement)
        stream = tx.fetchone("SELECT stream FROM projection_streams WHERE name = ?", (slot.name,))
        slot.stream = stream[0] if stream else None
        if row is None:
            tx.execute(
                "INSERT INTO projection_positions (name, seq, epoch, from_seq, version)"
                " VALUES (?, 0, 0, 1, ?)",
                (slot.name, projection.version),
            )
            slot.position, slot.epoch, slot.from_seq = 0, 0, 1
        elif row[3] != projection.version:
            tx.execute(
                "UPDATE projection_positions SET seq = 0, epoch = ?, from_seq = 1, version = ?"
                " WHERE name = ?",
                (row[1] + 1, projection.version, slot.name),
            )
            slot.position, slot.epoch, slot.from_seq = 0, row[1] + 1, 1
            quarantine.clear(tx, slot.name)
        else:
            slot.position, slot.epoch, slot.from_seq = row[0], row[1], row[2]

    def _session_or_connect(self) -> Session:
        if self._session is None:
            self._session = self.database.connect()
        return self._session

    @contextlib.contextmanager
    def _write(self) -> Iterator[Tx]:
        with self._session_or_connect().write() as tx:
            yield tx

    def _report(self) -> Report:
        notes, self._notes = self._notes, []
        return Report({name: slot.state() for name, slot in self._slots.items()}, notes)

    def _note(self, level: int, message: str) -> None:
        self._notes.append((level, message))


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
