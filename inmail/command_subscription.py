"""The hot command subjects (``inmail.cmd.*``) on one plain nats-py subscription, beside FastStream.

Why not a FastStream subscriber, as the queries are: FastStream's per-message
pipeline (context scopes, middlewares, parser, decoder, response publisher) was
about 40% of the service's CPU per SendInMail in a py-spy profile, and commands
through a plain subscription measured 1.5-1.8x the throughput
(``docs/benchmarks.md``). Commands are the service's hot path, so this is the one
place that bypasses the framework (DESIGN decision 5). It changes nothing on the
wire: the same subjects, the same queue group, the same replies; the AsyncAPI
document still lists every command channel (from ``inmail.routes``), and the
integration tests drive it over NATS like any subscriber.

Each message goes to the ``Dispatcher``, which runs it in a task of its own and
publishes the reply. Messages without a reply subject are dropped: JetStream can be
made to publish events onto any subject (a push consumer's deliver subject), and
such a message must never be taken for a command.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from contracts import replies, subjects
from eventstore import OutcomeUnknown

log = logging.getLogger("inmail.service")

SUBJECT = subjects.command("*")
QUEUE = subjects.COMMAND_QUEUE

Handler = Callable[[str, bytes], Awaitable[bytes]]
"""(command name, raw body) -> encoded reply envelope."""


class CommandSubscription:
    """Every command subject, in queue group ``inmail-commands``, on the service's connection."""

    def __init__(self, nc: NATS, handle: Handler, max_in_flight: int) -> None:
        self.nc = nc
        self.handle = handle
        self.dispatcher = Dispatcher(nc, max_in_flight)
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        """Subscribe; requests reach the handler from the server's next message on."""
        self._subscription = await self.nc.subscribe(SUBJECT, queue=QUEUE, cb=self._on_message)

    async def _on_message(self, msg: Msg) -> None:
        if not msg.reply:
            log.debug("ignored a message without a reply subject on %s", msg.subject)
            return
        name = msg.subject[len(subjects.COMMAND_ROOT) + 1 :]
        await self.dispatcher.dispatch(self.handle, name, msg.data, msg.reply)

    async def stop(self, grace: float) -> None:
        """Take no more commands, hand on those already received, wait ``grace`` s for all to finish."""
        subscription, self._subscription = self._subscription, None
        try:
            if subscription is not None:
                # Drain, not unsubscribe: the messages the server already sent are still answered.
                await subscription.drain()  # type: ignore[no-untyped-call]
        finally:
            await self.dispatcher.drain(grace)


class Dispatcher:
    """Runs each request in a task of its own and publishes the reply on our connection.

    A plain subscription hands messages over one at a time; a task per request lets
    most of a command's time (I/O) overlap with others'. ``max_in_flight`` bounds the
    tasks: when it is reached, the subscription waits, and NATS buffers (backpressure,
    not unbounded memory).
    """

    def __init__(self, replies: NATS, max_in_flight: int) -> None:
        self.replies = replies
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()

    async def dispatch(self, handle: Handler, name: str, body: bytes, reply_to: str) -> None:
        """Start handling one request, once a slot is free."""
        await self._slots.acquire()
        task = asyncio.create_task(self._run(handle, name, body, reply_to))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, handle: Handler, name: str, body: bytes, reply_to: str) -> None:
        try:
            try:
                data = await handle(name, body)
            except OutcomeUnknown:
                # No reply at all: the client times out and retries with the same command_id,
                # which then answers from what was recorded. A reply here could only guess.
                log.warning("%s: append outcome unknown, not replying", name)
                return
            except Exception:
                log.exception("%s failed", name)
                data = replies.encode(replies.failure("UNAVAILABLE", "internal error; retry later"))
        finally:
            self._slots.release()
        with contextlib.suppress(Exception):
            await self.replies.publish(reply_to, data)

    async def drain(self, grace: float) -> bool:
        """Wait for requests in flight; False when ``grace`` seconds were not enough."""
        if not self._tasks:
            return True
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
        return not pending
