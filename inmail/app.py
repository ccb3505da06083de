"""The service: one place that wires NATS, the event store, the command handlers,
the projections with their queries, and the monthly refresh.

Nothing connects at import time: ``InMailService(settings).start()`` does.
This module is the composition root, so it is the one place on the command
side that imports the read side (``projections``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faststream import AckPolicy
from faststream.nats import NatsBroker
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError

from contracts import replies, subjects
from contracts.admin import ADMIN_OPERATIONS
from contracts.commands import COMMANDS
from contracts.queries import QUERIES
from eventstore import JetStreamEventStore, OutcomeUnknown, connect
from inmail.streams import events_stream, members_stream, notifications_stream
from projections.queries import QueryService
from projections.runner import Projections
from services.contacts import ContactBook
from services.due.notifier import Notifier
from services.due.runner import DueWork
from services.executor import Clock, CommandExecutor, CommandSettings, system_clock
from services.monthly_refresh import MonthlyRefresh
from services.repository import MemberRepository

log = logging.getLogger("inmail.service")


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """Everything the service needs to run; the CLI fills it from its flags."""

    nats_url: str
    store_url: str
    trust_client_time: bool = False
    max_in_flight: int = 1024
    """Requests handled concurrently (most of a command's time is I/O)."""
    commands: bool = True
    """Answer the command subjects (and run the scheduler, when ``scheduler`` is on)."""
    projections: bool = True
    """Run the projections and answer the query and admin subjects."""
    scheduler: bool = True
    """Run the monthly refresh (with ``commands``)."""
    due_work: bool = True
    """Fold the log into due work and email alerts, and perform it (with ``commands``): by the
    server's clock, or under trusted client time when ``RunDue`` asks."""
    replicas: int = 1
    cache_size: int = 200_000
    drain_timeout: float = 15.0
    clock: Clock = system_clock
    """Now, for commands without a trusted ``occurred_at`` and for the monthly refresh."""


def default_store_url(data_dir: Path) -> str:
    """The read models' SQLite file inside the data folder."""
    return f"sqlite:///{(data_dir / 'readmodels.db').resolve()}"


def _correlation_ids() -> Callable[[], str]:
    prefix = secrets.token_hex(8)
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter):x}"


async def _whole_message(msg: Any) -> Any:
    # FastStream would JSON-decode the body and validate it against the annotation;
    # our handlers decode with msgspec themselves so that every error becomes a reply,
    # and they need the reply subject, which the message carries.
    return msg


class InMailService:
    """The running service; ``start`` then ``stop``, both idempotent."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.nc: NATS | None = None
        self.events: JetStreamEventStore | None = None
        self.executor: CommandExecutor | None = None
        self.projections: Projections | None = None
        self.queries: QueryService | None = None
        self.broker: NatsBroker | None = None
        self.dispatcher: Dispatcher | None = None
        self.due: DueWork | None = None
        self._scheduler: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect, make sure the streams exist, start projections, then answer requests."""
        s = self.settings
        if not (s.commands or s.projections):
            raise ValueError("a service with neither commands nor projections would do nothing")
        self.nc = nc = await connect(s.nats_url, name="inmail-service")
        self.events = events = JetStreamEventStore(nc, events_stream(s.replicas))
        await events.ensure_stream()
        await events.open()
        if s.commands:
            contacts = ContactBook(nc, members_stream(s.replicas))
            await contacts.ensure_stream()
            repository = MemberRepository(events, cache_size=s.cache_size)
            self.executor = CommandExecutor(
                repository, contacts, CommandSettings(trust_client_time=s.trust_client_time), clock=s.clock
            )
            if s.due_work:
                notifier = Notifier(nc, contacts, notifications_stream(s.replicas))
                self.due = DueWork(
                    self.executor, events, notifier, trust_client_time=s.trust_client_time, clock=s.clock
                )
                await self.due.start()
                self.executor.due = self.due
        if s.projections:
            self.projections = Projections(events, s.store_url)
            await self.projections.start()
            self.queries = QueryService(self.projections, events)
        self.dispatcher = Dispatcher(nc, s.max_in_flight)
        self.broker = build_broker(
            s,
            self.dispatcher,
            self.executor.handle_raw if self.executor else None,
            self.queries.handle_raw if self.queries else None,
        )
        await self.broker.start()
        await self._wait_until_answering(nc)
        if self.executor is not None and s.scheduler:
            refresh = MonthlyRefresh(self.executor, events, clock=s.clock)
            self._scheduler = asyncio.create_task(refresh.run(), name="monthly-refresh")
        log.info("InMail service answering on %s", s.nats_url)

    async def _wait_until_answering(self, nc: NATS) -> None:
        # Subscriptions reach the server asynchronously: "started" means a request on the
        # subject subscribed last got its answer (an empty command body is refused, so
        # nothing is written; an empty Health query is answered).
        probe = subjects.command(COMMANDS[0].__name__) if self.settings.commands else subjects.query("Health")
        for _ in range(100):
            try:
                await nc.request(probe, b"", timeout=0.5)
                return
            except Exception:
                await asyncio.sleep(0.05)
        raise RuntimeError("the service's own subscriptions did not answer within 5 s")

    async def stop(self) -> None:
        """Stop taking requests, finish the ones in flight, then close everything."""
        if self._scheduler is not None:
            self._scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scheduler
            self._scheduler = None
        if self.broker is not None:
            # No new requests from here on; those in flight finish and get their replies.
            async with _unless_server_gone("stopping the subscribers"):
                await self.broker.stop()
            self.broker = None
        if self.dispatcher is not None:
            await self.dispatcher.drain(self.settings.drain_timeout)
        if self.due is not None:
            await self.due.stop()
            self.due = None
        if self.projections is not None:
            await self.projections.stop()
            self.projections = None
        if self.events is not None:
            await self.events.close()
        if self.nc is not None and not self.nc.is_closed:
            async with _unless_server_gone("draining the connection"):
                await self.nc.drain()
        self.nc = None


@contextlib.asynccontextmanager
async def _unless_server_gone(step: str) -> AsyncIterator[None]:
    # Stopping must finish when the server went first (an operator stopping both, a
    # lost server): what is in flight can no longer be answered, nothing is left open.
    try:
        yield
    except NatsError as exc:
        log.warning("%s: NATS is gone (%s); stopping anyway", step, type(exc).__name__)


Handler = Callable[[str, bytes], Awaitable[bytes]]
"""(subject token, raw body) -> encoded reply envelope."""


class Dispatcher:
    """Runs each request in a task of its own and publishes the reply on our connection.

    FastStream's own concurrency (``max_workers``, an anyio worker pool) cost about a
    quarter of the service's CPU per command in a py-spy profile; a subscriber that only
    hands the message to a task and replies itself keeps FastStream's routing, schema and
    lifecycle at a fraction of that. ``max_in_flight`` bounds the tasks: when it is
    reached, the subscriber waits, and NATS buffers (backpressure, not unbounded memory).

    FastStream's per-message pipeline itself (context scopes, middlewares, parser,
    decoder) is still about 40% of the service's CPU per SendInMail; commands through
    plain nats-py subscriptions measured 1.5-1.8x the throughput (``docs/benchmarks.md``).
    They stay on FastStream: it is the service framework by design, and its middlewares
    are where metrics and tracing will hook in.
    """

    def __init__(self, replies: NATS | None, max_in_flight: int) -> None:
        self.replies = replies
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()

    async def dispatch(self, handle: Handler, name: str, body: bytes, reply_to: str) -> None:
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
        if reply_to and self.replies is not None:
            with contextlib.suppress(Exception):
                await self.replies.publish(reply_to, data)

    async def drain(self, grace: float) -> bool:
        """Wait for requests in flight; False when ``grace`` seconds were not enough."""
        if not self._tasks:
            return True
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
        return not pending


def build_broker(
    settings: ServiceSettings,
    dispatcher: Dispatcher,
    handle_command: Handler | None,
    handle_query: Handler | None,
) -> NatsBroker:
    """The FastStream broker with a subscriber per command, query and admin subject."""
    broker = NatsBroker(
        settings.nats_url,
        logger=None,
        name="inmail-handlers",
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        graceful_timeout=settings.drain_timeout,
        # A counter, not uuid4: FastStream mints a correlation id for every message.
        id_generator=_correlation_ids(),
        # Handlers take the whole message and decode it with msgspec themselves, so
        # FastDepends' injection and validation around each call is pure overhead
        # (about 6% of the service's CPU per SendInMail in a profile).
        apply_types=False,
    )
    # Subscribed in this order on one connection, so the server learns of them in this
    # order: the start-up probe (a command, or Health without commands) is on the last.
    routes: list[tuple[str, type, Handler, str]] = []
    if handle_query is not None:
        routes += [(subjects.admin(a.__name__), a, handle_query, "") for a in ADMIN_OPERATIONS]
        routes += [(subjects.query(q.__name__), q, handle_query, subjects.QUERY_QUEUE) for q in QUERIES]
    if handle_command is not None:
        routes += [
            (subjects.command(c.__name__), c, handle_command, subjects.COMMAND_QUEUE) for c in COMMANDS
        ]
    for subject, message, handle, queue in routes:
        _subscribe(broker, dispatcher, subject, message, handle, queue)
    return broker


def _subscribe(
    broker: NatsBroker, dispatcher: Dispatcher, subject: str, message: type, handle: Handler, queue: str
) -> None:
    name = message.__name__

    async def handler(request: Any) -> None:
        await dispatcher.dispatch(handle, name, request.body, request.reply_to)

    handler.__name__ = f"handle_{name}"
    broker.subscriber(
        subject,
        queue=queue,
        decoder=_whole_message,
        no_reply=True,
        # Core NATS has nothing to acknowledge: MANUAL leaves FastStream's acknowledgement
        # middleware out of every message's path (about 5% of the CPU per SendInMail).
        ack_policy=AckPolicy.MANUAL,
        title=name,
        description=(message.__doc__ or name).strip().splitlines()[0],
    )(handler)
