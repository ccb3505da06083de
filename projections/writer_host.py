"""Where the writer runs: on a thread of this process, or (by default) in a child process.

Applying events is CPU-bound Python: in a process of its own the writer neither
competes with the service's event loop (which also answers commands) nor waits
for it. Both hosts offer the runner the same typed requests (``WriterHost``).
The child process answers them over a socket pair, one round trip per request
and so per batch; its results cross the pipe as builtins (``msgspec.to_builtins``)
and are checked back into their types on this side.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any, Literal, Protocol

import msgspec

from projections.base import Projection
from projections.writer import BatchResult, RawBatch, Report, Writer, one_line


class WriterDied(Exception):
    """The writer's process ended (killed, crashed): it is started again from the stored positions."""


class WriterHost(Protocol):
    """Runs a ``Writer`` somewhere and forwards requests to it."""

    @property
    def pid(self) -> int | None:
        """The writer process's id; None on a thread."""

    async def start(self) -> None:
        """Start a writer (not yet open)."""

    async def open(self) -> Report:
        """``Writer.open``: the schema, the stored positions."""

    async def apply(self, batch: RawBatch) -> BatchResult:
        """``Writer.apply``: one batch, exactly once."""

    async def reset(self, names: Sequence[str], from_seq: int, stream: str) -> Report:
        """``Writer.reset``: clear the named read models to follow ``stream`` again from ``from_seq``."""

    async def adopt(self, names: Sequence[str], stream: str) -> Report:
        """``Writer.adopt``: record the stream the named projections follow."""

    async def restart(self) -> None:
        """Replace the writer with a new one (to be opened again)."""

    async def stop(self) -> None:
        """Close the writer and let it go."""


class WriterThread:
    """The writer on a thread of this process."""

    def __init__(self, store_url: str, catalogue: Sequence[type[Projection]]) -> None:
        self._args = (store_url, catalogue)
        self._writer: Writer | None = None
        self._thread: ThreadPoolExecutor | None = None

    @property
    def pid(self) -> int | None:
        """None: the writer shares this process."""
        return None

    async def start(self) -> None:
        """A writer and the one thread it runs on."""
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="projections-writer")
        self._writer = Writer(*self._args)

    async def open(self) -> Report:
        """``Writer.open`` on the writer's thread."""
        thread, writer = self._started()
        return await asyncio.get_running_loop().run_in_executor(thread, writer.open)

    async def apply(self, batch: RawBatch) -> BatchResult:
        """``Writer.apply`` on the writer's thread."""
        thread, writer = self._started()
        return await asyncio.get_running_loop().run_in_executor(thread, writer.apply, batch)

    async def reset(self, names: Sequence[str], from_seq: int, stream: str) -> Report:
        """``Writer.reset`` on the writer's thread."""
        thread, writer = self._started()
        return await asyncio.get_running_loop().run_in_executor(thread, writer.reset, names, from_seq, stream)

    async def adopt(self, names: Sequence[str], stream: str) -> Report:
        """``Writer.adopt`` on the writer's thread."""
        thread, writer = self._started()
        return await asyncio.get_running_loop().run_in_executor(thread, writer.adopt, names, stream)

    async def restart(self) -> None:
        """A new writer on a new thread (a thread cannot die as a process does; for symmetry)."""
        await self.stop()
        await self.start()

    async def stop(self) -> None:
        """Close the writer on its thread, then let the thread go."""
        thread, writer = self._thread, self._writer
        self._thread = self._writer = None
        if thread is not None and writer is not None:
            await asyncio.get_running_loop().run_in_executor(thread, writer.close)
            thread.shutdown(wait=False)

    def _started(self) -> tuple[ThreadPoolExecutor, Writer]:
        if self._thread is None or self._writer is None:
            raise RuntimeError("the writer is not started")
        return self._thread, self._writer


Request = (
    tuple[Literal["open"]]
    | tuple[Literal["apply"], RawBatch]
    | tuple[Literal["reset"], list[str], int, str]
    | tuple[Literal["adopt"], list[str], str]
    | tuple[Literal["close"]]
)
"""What the runner asks of the child, pickled: builtins only."""


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
        """The child's process id, while it runs."""
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        """Start the child and tell it the store and the projections."""
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

    async def open(self) -> Report:
        """``Writer.open`` in the child."""
        return msgspec.convert(await self._call(("open",)), Report)

    async def apply(self, batch: RawBatch) -> BatchResult:
        """``Writer.apply`` in the child: one round trip for the whole batch."""
        return msgspec.convert(await self._call(("apply", batch)), BatchResult)

    async def reset(self, names: Sequence[str], from_seq: int, stream: str) -> Report:
        """``Writer.reset`` in the child."""
        return msgspec.convert(await self._call(("reset", list(names), from_seq, stream)), Report)

    async def adopt(self, names: Sequence[str], stream: str) -> Report:
        """``Writer.adopt`` in the child."""
        return msgspec.convert(await self._call(("adopt", list(names), stream)), Report)

    async def stop(self) -> None:
        """Close the writer, end the child (killed after 10 s), and let the pipe go."""
        conn, process, pipe = self._conn, self._process, self._pipe
        self._conn = self._process = self._pipe = None
        if conn is not None and pipe is not None:
            with contextlib.suppress(Exception):
                await asyncio.get_running_loop().run_in_executor(pipe, self._exchange, conn, ("close",))
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

    async def _send(self, message: object) -> None:
        conn = self._conn
        assert conn is not None
        await asyncio.get_running_loop().run_in_executor(self._pipe, conn.send, message)

    async def _call(self, request: Request) -> object:
        conn = self._conn
        if conn is None or self._pipe is None:
            raise WriterDied("the writer process is not running")
        return await asyncio.get_running_loop().run_in_executor(self._pipe, self._exchange, conn, request)

    def _exchange(self, conn: Connection, request: Request) -> object:
        with self._lock:
            try:
                conn.send(request)
                status, result = conn.recv()
            except (EOFError, OSError) as exc:
                raise WriterDied(f"the writer process ended ({type(exc).__name__})") from exc
        if status == "error":
            raise RuntimeError(f"the writer failed: {result}")
        return result


_CHILD = "from projections.writer_host import child_main; child_main()"


def child_main() -> None:
    """The writer process: answer requests until ``close`` or until the runner goes away."""
    conn = Connection(int(sys.argv[1]))
    path, store_url, kinds = conn.recv()
    sys.path[:] = path
    writer = Writer(store_url, [_resolve(kind) for kind in kinds])
    while True:
        try:
            request: Request = conn.recv()
        except (EOFError, OSError):
            # The runner's end closed: it stopped or died; nothing is half-done here.
            writer.close()
            return
        try:
            # Builtins only, so the runner unpickles them without importing anything.
            result = msgspec.to_builtins(_answer(writer, request))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {one_line(exc)}"))
            continue
        conn.send(("ok", result))
        if request[0] == "close":
            return


def _answer(writer: Writer, request: Request) -> Report | BatchResult | None:
    match request:
        case ("apply", batch):
            return writer.apply(batch)
        case ("open",):
            return writer.open()
        case ("reset", names, from_seq, stream):
            return writer.reset(names, from_seq, stream)
        case ("adopt", names, stream):
            return writer.adopt(names, stream)
        case ("close",):
            writer.close()
            return None
    raise ValueError(f"not a request: {request!r}")


def _resolve(name: str) -> type[Projection]:
    module, _, qualname = name.partition(":")
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    if not (isinstance(found, type) and issubclass(found, Projection)):
        raise TypeError(f"{name} is not a projection")
    return found


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
