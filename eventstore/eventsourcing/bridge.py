"""A background event loop that lets synchronous code use the asyncio-only NATS client.

eventsourcing calls its recorders synchronously, from any number of threads; nats-py
lives on one asyncio loop. A ``NatsBridge`` owns one loop thread and one connection:
callers hand it coroutines (``asyncio.run_coroutine_threadsafe``) and wait for the
result. Nothing starts until the first call, and ``close()`` closes the connection and
stops the thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import weakref
from collections.abc import Coroutine
from typing import Any, TypeVar

from nats.aio.client import Client as NATS

from eventstore.connection import connect

T = TypeVar("T")

CLOSE_TIMEOUT = 5.0
"""Seconds to wait for the connection to close and the loop thread to end."""


class BridgeClosed(RuntimeError):
    """The bridge was closed; it runs nothing any more."""


class _LoopState:
    """What the loop thread owns; shared with the finalizer, so it must not refer to the bridge."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=_run_loop, args=(self.loop,), name=f"nats-bridge:{name}", daemon=True
        )
        self.nc: NATS | None = None
        self.connect_lock = asyncio.Lock()


class NatsBridge:
    """One NATS connection on one event-loop thread, for synchronous callers; thread-safe."""

    def __init__(self, url: str, *, name: str = "inmail-eventsourcing", creds: str | None = None) -> None:
        self.url = url
        self.creds = creds
        self.name = name
        self._lock = threading.Lock()
        self._state: _LoopState | None = None
        self._closed = False
        self._finalizer: weakref.finalize[[_LoopState], NatsBridge] | None = None

    @property
    def started(self) -> bool:
        """True once the loop thread runs (the first call starts it)."""
        return self._state is not None

    @property
    def closed(self) -> bool:
        """True after ``close()``."""
        return self._closed

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop thread and wait for its result (or exception)."""
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no result from NATS within {timeout}s") from None

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop thread; cancelling the future cancels the coroutine."""
        try:
            state = self._running_state()
            if threading.get_ident() == state.thread.ident:
                # Waiting here for the loop would block the very thread that must run it.
                raise RuntimeError("a NatsBridge cannot be called from its own loop thread")
            return asyncio.run_coroutine_threadsafe(coro, state.loop)
        except BaseException:
            coro.close()
            raise

    async def connection(self) -> NATS:
        """The bridge's connection, opened on first use; await it on the bridge's loop."""
        state = self._state
        if self._closed:
            raise BridgeClosed(f"the NATS bridge to {self.url} is closed")
        if state is None or asyncio.get_running_loop() is not state.loop:
            raise RuntimeError("NatsBridge.connection() must be awaited on the bridge's loop")
        async with state.connect_lock:
            if state.nc is None or state.nc.is_closed:
                state.nc = await connect(self.url, name=self.name, creds=self.creds)
            return state.nc

    def close(self) -> None:
        """Close the connection and stop the loop thread; idempotent."""
        with self._lock:
            self._closed = True
            finalizer, self._finalizer = self._finalizer, None
            self._state = None
        if finalizer is not None:
            finalizer()

    def _running_state(self) -> _LoopState:
        with self._lock:
            if self._closed:
                raise BridgeClosed(f"the NATS bridge to {self.url} is closed")
            if self._state is None:
                state = _LoopState(self.name)
                state.thread.start()
                # A bridge dropped without close() (an Application never closed) still
                # closes its connection and ends its thread when it is garbage-collected.
                self._finalizer = weakref.finalize(self, _shutdown, state)
                self._state = state
            return self._state


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        # Whatever still runs (a subscription's consumer, a call cut short by close())
        # gets its cancellation delivered before the loop goes away.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _shutdown(state: _LoopState) -> None:
    try:
        asyncio.run_coroutine_threadsafe(_close_and_stop(state), state.loop)
    except RuntimeError:
        return  # the loop is already closed
    if threading.get_ident() != state.thread.ident:
        state.thread.join(CLOSE_TIMEOUT)


async def _close_and_stop(state: _LoopState) -> None:
    try:
        nc = state.nc
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), CLOSE_TIMEOUT)
    finally:
        asyncio.get_running_loop().stop()
