"""The embedded nats-server, watched: started again when it dies, given up on when it keeps dying.

Without a watch, a killed server left ``inmail serve`` silent for ever: the child a
zombie, nothing logged, the port closed. Now its death is noticed within a fraction
of a second and logged; it is started again on the same port and data folder (the
service's connections reconnect by themselves) or, when that fails or it dies again
and again, serve ends non-zero with one line so that a supervisor can act. Either
happens within ``RESTART_DEADLINE`` seconds (contract section 5: 10 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from inmail.natsserver import EmbeddedNatsServer, NatsServerError

log = logging.getLogger("inmail.supervisor")

RESTART_DEADLINE = 8.0
"""Seconds a restart may take to accept connections; with the poll, within the contract's 10 s."""


class NatsServerLost(Exception):
    """The embedded nats-server died and could not be kept running; one line for the operator."""


class SupervisedNatsServer:
    """Starts, watches and stops one ``EmbeddedNatsServer``.

    Every start and stop runs on one thread that lives as long as this object:
    the server dies with the thread that started it (``PR_SET_PDEATHSIG``), so that
    thread must outlive the server, and the event loop must not block on a start.
    """

    def __init__(
        self,
        server: EmbeddedNatsServer,
        *,
        max_restarts: int = 3,
        window: float = 60.0,
        poll: float = 0.2,
    ) -> None:
        self.server = server
        self.max_restarts = max_restarts
        self.window = window
        self.poll = poll
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="nats-server")
        self._restarts: deque[float] = deque()

    async def start(self) -> str:
        """Start the server; its URL. ``NatsServerError`` (one line) when it cannot start."""
        return await self._on_thread(self.server.start)

    async def watch(self) -> None:
        """Run until the server is lost for good, then raise ``NatsServerLost``."""
        while True:
            await asyncio.sleep(self.poll)
            code = self.server.exit_code
            if code is not None:
                await self._restart(code)

    async def stop(self) -> None:
        """Stop the server (gracefully), then let the thread go."""
        with contextlib.suppress(RuntimeError):
            await self._on_thread(self.server.stop)
        self._thread.shutdown(wait=True)

    async def _restart(self, code: int) -> None:
        pid, settings = self.server.pid, self.server.settings
        now = time.monotonic()
        while self._restarts and now - self._restarts[0] > self.window:
            self._restarts.popleft()
        if len(self._restarts) >= self.max_restarts:
            raise NatsServerLost(
                f"the embedded nats-server {_ended(code)} again ({len(self._restarts)} restarts in "
                f"{self.window:.0f}s); giving up (see {settings.data_dir / 'nats-server.log'})"
            )
        self._restarts.append(now)
        log.warning(
            "the embedded nats-server (pid %s) %s; starting it again on port %s",
            pid,
            _ended(code),
            self.server.url.rsplit(":", 1)[1],
        )

        def again() -> str:
            self.server.stop()
            return self.server.start(timeout=RESTART_DEADLINE)

        try:
            url = await self._on_thread(again)
        except NatsServerError as exc:
            raise NatsServerLost(
                f"the embedded nats-server {_ended(code)} and could not start again: {exc}"
            ) from exc
        log.warning("the embedded nats-server is running again (pid %s) on %s", self.server.pid, url)

    async def _on_thread(self, call: Callable[[], str | None]) -> str:
        result = await asyncio.get_running_loop().run_in_executor(self._thread, call)
        return result or ""


def _ended(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with code {code}"


async def until_stopped(stop: asyncio.Event, embedded: SupervisedNatsServer | None) -> str | None:
    """Wait for ``stop``, or for the embedded server to be lost for good: then the reason, one line."""
    waits: list[asyncio.Task[object]] = [asyncio.create_task(stop.wait(), name="stop-signal")]
    if embedded is not None:
        waits.append(asyncio.create_task(embedded.watch(), name="nats-server-watch"))
    done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.wait(waits)
    for task in done:
        if isinstance(task.exception(), NatsServerLost):
            return str(task.exception())
        task.result()
    return None
