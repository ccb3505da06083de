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
connection) are retried by the runner with back-off instead.

The writer is synchronous and runs on a thread of its own or, by default, in a
child process (``WriterProcess``): applying events is CPU-bound Python, and in a
process of its own it neither competes with the service's event loop (which also
answers commands) nor waits for it. Its results, and the log lines it means, go
back to the runner as plain data.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import importlib
import logging
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, NamedTuple, Protocol, cast

import msgspec

from contracts.events import EVENT_TYPES, UPCASTERS, AnyEvent, decode_event
from projections.base import Projection, ProjectionError
from projections.db import Database, Session, Tx

RawBatch = list[tuple[int, bytes]]
"""Stored messages as (stream sequence, event body), in stream order."""

_KNOWN_TYPES = frozenset(kind.__name__ for kind in EVENT_TYPES) | frozenset(UPCASTERS)

POSITIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS projection_positions ("
    " name TEXT PRIMARY KEY, seq BIGINT NOT NULL, epoch BIGINT NOT NULL,"
    " from_seq BIGINT NOT NULL, version INTEGER NOT NULL)"
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


States = dict[str, SlotState]
Notes = list[tuple[int, str]]
"""Log lines (level, message) for the runner to emit."""


@dataclass(frozen=True, slots=True)
class _Undecodable:
    """A stored message that is not an event this code can read."""

    type_name: str | None
    error: str


_Decoded = AnyEvent | _Undecodable


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

    @property
    def name(self) -> str:
        return self.projection.name

    def state(self) -> SlotState:
        return SlotState(self.position, self.from_seq, self.stopped, self.trouble)


class Writer:
    """Applies batches to one read-model store; owns its write session and the positions."""

    def __init__(self, store_url: str, catalogue: Sequence[type[Projection]]) -> None:
        self.database = Database(store_url)
        self._slots = {kind.name: _Slot(kind()) for kind in catalogue}
        self._session: Session | None = None
        self._notes: Notes = []

    # ------------------------------------------------------------------ requests

    def open(self) -> tuple[States, Notes]:
        """Create the schema, rebuild read models of another schema version, load the positions."""
        with self._write() as tx:
            tx.lock_schema()
            tx.execute(POSITIONS_DDL)
            for slot in self._slots.values():
                self._prepare(tx, slot)
        return self._states(), self._take_notes()

    def apply(self, batch: RawBatch) -> tuple[Outcome, States, Notes]:
        """Apply a batch to every running projection whose position is below its events."""
        outcome = self._apply_batch(batch)
        return outcome, self._states(), self._take_notes()

    def reset(self, names: Sequence[str], from_seq: int) -> tuple[States, Notes]:
        """Clear the named read models; they follow again from ``from_seq``."""
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
            slot.position, slot.epoch, slot.from_seq = row
            slot.stopped = slot.trouble = None
            self._note(logging.INFO, f"projection {name} reset: following again from {from_seq}")
        return self._states(), self._take_notes()

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
        decoded = [(seq, _decode(data)) for seq, data in batch if seq > lowest]
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

    def _commit_together(self, slots: list[_Slot], decoded: list[tuple[int, _Decoded]]) -> None:
        if any(type(event) is _Undecodable for _, event in decoded):
            raise ProjectionError("an event cannot be read")
        events = cast(list[tuple[int, AnyEvent]], decoded)
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
        for slot in slots:
            slot.position = last

    def _apply_slot(self, slot: _Slot, decoded: list[tuple[int, _Decoded]]) -> Outcome:
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

    def _commit(self, slot: _Slot, items: list[tuple[int, _Decoded]]) -> None:
        projection = slot.projection
        events: list[tuple[int, AnyEvent]] = []
        for seq, event in items:
            if isinstance(event, _Undecodable):
                # An unknown type may be one this projection should have handled: never guess.
                if event.type_name not in _KNOWN_TYPES or projection.handles_type(event.type_name or ""):
                    raise ProjectionError(f"cannot read the event at seq {seq}: {event.error}")
            elif type(event) in projection.handles:
                events.append((seq, event))
        last = items[-1][0]
        with self._write() as tx:
            if tx.execute(_FENCE, (last, slot.name, slot.position, slot.epoch)) != 1:
                raise _Fenced
            if events:
                projection.apply(tx, events, strict=slot.from_seq <= 1)
        slot.position = last

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
        slot.trouble = f"store error, retrying: {_one_line(exc)}"
        self._note(logging.WARNING, f"projection {slot.name} at {slot.position}: {slot.trouble}")
        # A lost connection is replaced on the next attempt.
        session, self._session = self._session, None
        if session is not None:
            session.close()
        return Outcome.RETRY

    def _stop(self, slot: _Slot, seq: int, exc: Exception) -> None:
        reason = _one_line(exc)
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

    def _states(self) -> States:
        return {name: slot.state() for name, slot in self._slots.items()}

    def _note(self, level: int, message: str) -> None:
        self._notes.append((level, message))

    def _take_notes(self) -> Notes:
        notes, self._notes = self._notes, []
        return notes


def _decode(data: bytes) -> _Decoded:
    try:
        return decode_event(data)
    except Exception as exc:
        type_name: str | None = None
        with contextlib.suppress(msgspec.DecodeError):
            raw = msgspec.json.decode(data)
            if isinstance(raw, dict) and isinstance(raw.get("type"), str):
                type_name = raw["type"]
        return _Undecodable(type_name, _one_line(exc))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# Hosts: where the writer runs -------------------------------------------------------


class WriterDied(Exception):
    """The writer's process ended (killed, crashed): it is started again from the stored positions."""


class WriterHost(Protocol):
    """Runs a ``Writer`` somewhere and forwards requests to it."""

    @property
    def pid(self) -> int | None: ...

    async def start(self) -> None: ...

    async def call(self, method: str, *args: object) -> Any: ...

    async def restart(self) -> None: ...

    async def stop(self) -> None: ...


class WriterThread:
    """The writer on a thread of this process."""

    def __init__(self, store_url: str, catalogue: Sequence[type[Projection]]) -> None:
        self._args = (store_url, catalogue)
        self._writer: Writer | None = None
        self._thread: ThreadPoolExecutor | None = None

    @property
    def pid(self) -> int | None:
        return None

    async def start(self) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="projections-writer")
        self._writer = Writer(*self._args)

    async def call(self, method: str, *args: object) -> Any:
        if self._thread is None or self._writer is None:
            raise RuntimeError("the writer is not started")
        function: Callable[..., Any] = getattr(self._writer, method)
        return await asyncio.get_running_loop().run_in_executor(self._thread, function, *args)

    async def restart(self) -> None:
        """A new writer on a new thread (a thread cannot die as a process does; for symmetry)."""
        await self.stop()
        await self.start()

    async def stop(self) -> None:
        thread, writer = self._thread, self._writer
        self._thread = self._writer = None
        if thread is not None and writer is not None:
            await asyncio.get_running_loop().run_in_executor(thread, writer.close)
            thread.shutdown(wait=False)


class WriterProcess:
    """The writer in a child process: requests over a socket pair, answered in order.

    The child is a plain ``python -c`` of this module's ``child_main``, not a
    multiprocessing spawn: spawn would import the parent's ``__main__`` again in
    the child, which breaks any script without a main guard.
    """

    def __init__(self, store_url: str, catalogue: Sequence[type[Projection]]) -> None:
        self._init = (store_url, [f"{kind.__module__}:{kind.__qualname__}" for kind in catalogue])
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._pipe: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        if self._pipe is None:
            # One thread talks to the child, so the event loop never blocks on the socket.
            self._pipe = ThreadPoolExecutor(1, thread_name_prefix="projections-writer-pipe")
        ours, theirs = socket.socketpair()
        with theirs:
            self._process = await asyncio.to_thread(
                subprocess.Popen,
                [sys.executable, "-c", _CHILD, str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                # A session of its own: a terminal's Ctrl-C reaches the service, which stops
                # the writer in order, not the writer in the middle of a batch. It still
                # ends with the runner: a closed pipe ends ``child_main``.
                start_new_session=True,
            )
        self._conn = Connection(ours.detach())
        # Plain data only: the child sets its import path before it imports a projection.
        await self._send((list(sys.path), *self._init))

    async def _send(self, message: object) -> None:
        conn = self._conn
        assert conn is not None
        await asyncio.get_running_loop().run_in_executor(self._pipe, conn.send, message)

    async def call(self, method: str, *args: object) -> Any:
        conn = self._conn
        if conn is None or self._pipe is None:
            raise WriterDied("the writer process is not running")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pipe, self._exchange, conn, method, args)

    def _exchange(self, conn: Connection, method: str, args: tuple[object, ...]) -> Any:
        with self._lock:
            try:
                conn.send((method, args))
                status, result = conn.recv()
            except (EOFError, OSError) as exc:
                raise WriterDied(f"the writer process ended ({type(exc).__name__})") from exc
        if status == "error":
            raise RuntimeError(f"the writer failed: {result}")
        return result

    async def stop(self) -> None:
        conn, process, pipe = self._conn, self._process, self._pipe
        self._conn = self._process = self._pipe = None
        if conn is not None and pipe is not None:
            with contextlib.suppress(Exception):
                await asyncio.get_running_loop().run_in_executor(pipe, self._exchange, conn, "close", ())
            conn.close()
        if pipe is not None:
            pipe.shutdown(wait=False)
        if process is not None:
            try:
                await asyncio.to_thread(process.wait, 10)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)

    async def restart(self) -> None:
        """Replace a dead writer process with a new one."""
        conn, process = self._conn, self._process
        self._conn = self._process = None
        if conn is not None:
            conn.close()
        if process is not None:
            process.kill()
            await asyncio.to_thread(process.wait)
        await self.start()


_CHILD = "from projections.writer import child_main; child_main()"


def child_main() -> None:
    """The writer process: answer requests until ``close`` or until the runner goes away."""
    conn = Connection(int(sys.argv[1]))
    path, store_url, kinds = conn.recv()
    sys.path[:] = path
    writer = Writer(store_url, [_resolve(kind) for kind in kinds])
    while True:
        try:
            method, args = conn.recv()
        except (EOFError, OSError):
            # The runner's end closed: it stopped or died; nothing is half-done here.
            writer.close()
            return
        try:
            result = _plain(getattr(writer, method)(*args))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {_one_line(exc)}"))
            continue
        conn.send(("ok", result))
        if method == "close":
            return


def _resolve(name: str) -> type[Projection]:
    module, _, qualname = name.partition(":")
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    if not (isinstance(found, type) and issubclass(found, Projection)):
        raise TypeError(f"{name} is not a projection")
    return found


def _plain(value: Any) -> Any:
    """Results as builtins only, so the runner unpickles them without importing anything."""
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, enum.IntEnum):
        return int(value)
    return value


def make_host(
    kind: str, store_url: str, catalogue: Mapping[str, type[Projection]], names: Sequence[str]
) -> WriterHost:
    """A writer host of ``kind`` (``process`` or ``thread``) for the named projections."""
    kinds = [catalogue[name] for name in names]
    if kind == "process":
        return WriterProcess(store_url, kinds)
    if kind == "thread":
        return WriterThread(store_url, kinds)
    raise ValueError(f"writer must be 'process' or 'thread', not {kind!r}")
