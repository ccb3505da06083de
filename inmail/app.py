"""The service: one place that wires NATS, the event store, the command handlers,
the projections with their queries, the monthly refresh and the due work.

Nothing connects at import time: ``InMailService(settings).start()`` does.
This module is the composition root, so it is the one place on the command
side that imports the read side (``projections``). The transports live beside it:
``inmail.command_subscription`` (commands, plain nats-py) and
``inmail.query_handlers`` (queries and operator requests, FastStream).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from faststream.nats import NatsBroker
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from opentelemetry.sdk.trace import TracerProvider

from contracts import subjects
from contracts.commands import COMMANDS
from eventstore import Followed, JetStreamEventStore, connect
from inmail.command_subscription import CommandSubscription
from inmail.health import DependencyCheck
from inmail.observability.metrics import Metrics
from inmail.observability.observed_commands import ObservedCommands
from inmail.observability.tracing import Tracing
from inmail.query_handlers import LAST_SUBSCRIBED, RevealingAnswers, build_query_broker
from inmail.stream_guard import StreamGuard
from inmail.streams import events_stream, members_stream, notifications_stream
from projections.queries import QueryService
from projections.runner import Projections
from services.contacts import ContactBook
from services.due.notifier import Notifier
from services.due.runner import DueWork
from services.executor import Clock, CommandExecutor, CommandSettings, system_clock
from services.monthly_refresh import MonthlyRefresh, ensure_bucket
from services.repository import MemberRepository
from vault import KeyStore, Revealer, Sealer
from vault.sealing import EVENT_PERSONAL_FIELDS

log = logging.getLogger("inmail.service")


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """Everything the service needs to run; the CLI fills it from its flags."""

    nats_url: str
    store_url: str
    nats_creds: Path | None = None
    """The service's NATS credentials file (``service.creds``); None on a server without authentication."""
    trust_client_time: bool = False
    max_in_flight: int = 1024
    """Commands handled concurrently, and queries on each query subject (most of it is I/O)."""
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
    new_stream: bool = False
    """Start over on ``INMAIL_EVENTS`` as it is now, even if it is not the stream the service
    recorded (created when missing; read models following another one are rebuilt)."""
    metrics: bool = True
    """Record the Prometheus series of the contract (off only to measure what they cost)."""
    tracer_provider: TracerProvider | None = None
    """Where spans go (``inmail.observability.tracing``); None: no tracing."""
    key_dir: Path | None = None
    """The folder of the key-encryption key (``vault.keystore``), outside every stream and backup;
    shared by every process of an installation. None: ``datakeys`` beside a SQLite store."""

    def keys_folder(self) -> Path:
        """Where the key-encryption key lives."""
        if self.key_dir is not None:
            return self.key_dir
        if self.store_url.startswith("sqlite:///"):
            return Path(self.store_url.removeprefix("sqlite:///")).parent / "datakeys"
        raise ValueError("a service with a PostgreSQL store needs key_dir (inmail serve --key-dir)")


def default_store_url(data_dir: Path) -> str:
    """The read models' SQLite file inside the data folder."""
    return f"sqlite:///{(data_dir / 'readmodels.db').resolve()}"


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
        """The query and operator handlers (FastStream), when projections run."""
        self.commands: CommandSubscription | None = None
        self.metrics = Metrics() if settings.metrics else None
        self.tracing = Tracing(settings.tracer_provider) if settings.tracer_provider is not None else None
        self.due: DueWork | None = None
        """Due work and email alerts, when commands run (``due.pending()``: work not yet done)."""
        self.keys: KeyStore | None = None
        """Every member's data key (``vault``): sealing on the command side, opening for answers."""
        self._scheduler: asyncio.Task[None] | None = None
        self._stream_watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect, make sure the streams exist, start projections, then answer requests."""
        s = self.settings
        if not (s.commands or s.projections):
            raise ValueError("a service with neither commands nor projections would do nothing")
        self.nc = nc = await connect(s.nats_url, name="inmail-service", creds=s.nats_creds)
        self.events = events = JetStreamEventStore(nc, events_stream(s.replicas))
        guard = StreamGuard(nc, events, replicas=s.replicas)
        try:
            # The read models' record of the stream counts too: no fresh empty stream where
            # they say there was one.
            read_models = await self._open_projections() if s.projections else {}
            await guard.open(read_models, new_stream=s.new_stream)
        except BaseException:
            await self.stop()
            raise
        await events.open()
        self.keys = keys = KeyStore(nc, s.keys_folder(), replicas=s.replicas)
        try:
            info = await events.info_or_none()
            await keys.open(next_seq=info.state.last_seq + 1 if info is not None else 1)
        except BaseException:
            await self.stop()
            raise
        sealer = Sealer(keys)
        if s.commands:
            contacts = ContactBook(nc, members_stream(s.replicas), seal=sealer)
            await contacts.ensure_stream()
            # Created here even when the scheduler does not run, so that every store of the
            # product exists with the replicas asked for, and Health can expect them all.
            await ensure_bucket(nc.jetstream(), s.replicas)
            repository = MemberRepository(
                events,
                cache_size=s.cache_size,
                message_headers=self.tracing.message_headers if self.tracing is not None else None,
                on_appended=self.metrics.events_appended if self.metrics is not None else None,
                seal=sealer,
            )
            self.executor = CommandExecutor(
                repository, contacts, CommandSettings(trust_client_time=s.trust_client_time), clock=s.clock
            )
            notifications = JetStreamEventStore(nc, notifications_stream(s.replicas))
            await notifications.ensure_stream()
            if s.due_work:
                self.due = DueWork(
                    self.executor,
                    events,
                    Notifier(notifications, contacts),
                    trust_client_time=s.trust_client_time,
                    clock=s.clock,
                )
                await self.due.start()
                self.executor.due = self.due
        dependencies = DependencyCheck(nc, s.replicas)
        for name, dependency in (await dependencies()).items():
            if dependency.problem:
                log.warning("%s: %s", name, dependency.problem)
        probes: list[str] = []
        observed: ObservedCommands | None = None
        if self.projections is not None:
            self.projections.on_applied = (
                self.tracing.projection_applied if self.tracing is not None else None
            )
            await self.projections.start(new_stream=s.new_stream)
            self.queries = QueryService(self.projections, events, dependencies=dependencies)
            self.broker = build_query_broker(
                s.nats_url,
                RevealingAnswers(
                    self.queries,
                    Revealer(keys),
                    Revealer(keys, fields=EVENT_PERSONAL_FIELDS),
                    sealed_from=keys.sealed_from,
                ),
                creds=s.nats_creds,
                max_in_flight=s.max_in_flight,
                graceful_timeout=s.drain_timeout,
            )
            await self.broker.start()
            probes.append(LAST_SUBSCRIBED)
        if self.executor is not None:
            # Counted and traced from the end of start on: the probe below is no client's command.
            observed = ObservedCommands(self.executor, metrics=None, tracing=None)
            self.commands = CommandSubscription(nc, observed.handle, s.max_in_flight)
            await self.commands.start()
            # An empty command body is refused, so the probe writes nothing.
            probes.append(subjects.command(COMMANDS[0].__name__))
        for probe in probes:
            await wait_until_answering(nc, probe)
        if self.executor is not None:
            self._stream_watch = asyncio.create_task(guard.watch(), name="stream-guard")
        if observed is not None:
            observed.metrics, observed.tracing = self.metrics, self.tracing
        if self.executor is not None and s.scheduler:
            refresh = MonthlyRefresh(self.executor, events, clock=s.clock, replicas=s.replicas)
            self._scheduler = asyncio.create_task(refresh.run(), name="monthly-refresh")
        log.info("InMail service answering on %s", s.nats_url)

    async def _open_projections(self) -> dict[str, Followed]:
        assert self.events is not None
        self.projections = Projections(self.events, self.settings.store_url)
        return await self.projections.open()

    async def stop(self) -> None:
        """Stop taking requests, finish the ones in flight, then close everything."""
        for task in (self._scheduler, self._stream_watch):
            if task is not None:
                await cancel_and_wait(task)
        self._scheduler = self._stream_watch = None
        # No new requests from here on; those in flight finish and get their replies.
        if self.commands is not None:
            async with _unless_server_gone("stopping the command subscription"):
                await self.commands.stop(self.settings.drain_timeout)
            self.commands = None
        if self.broker is not None:
            async with _unless_server_gone("stopping the query handlers"):
                await self.broker.stop()
            self.broker = None
        if self.due is not None:
            await self.due.stop()
            self.due = None
        if self.projections is not None:
            await self.projections.stop()
            self.projections = None
        if self.keys is not None:
            await self.keys.close()
            self.keys = None
        if self.events is not None:
            await self.events.close()
        if self.nc is not None and not self.nc.is_closed:
            async with _unless_server_gone("draining the connection"):
                await self.nc.drain()
        self.nc = None
        if self.tracing is not None:
            self.tracing.shutdown()


@contextlib.asynccontextmanager
async def _unless_server_gone(step: str) -> AsyncIterator[None]:
    # Stopping must finish when the server went first (an operator stopping both, a
    # lost server): what is in flight can no longer be answered, nothing is left open.
    try:
        yield
    except NatsError as exc:
        log.warning("%s: NATS is gone (%s); stopping anyway", step, type(exc).__name__)


async def cancel_and_wait(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and return once it has ended, however it ends.

    Cancelled again until it does: on Python 3.11, ``asyncio.wait_for`` (inside every
    nats-py request) swallows a cancellation that arrives as its future completes, and
    the monthly refresh then went on to sleep for a month with ``stop`` waiting on it.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
    if not task.cancelled() and task.exception() is not None:
        log.warning("%s ended with %r", task.get_name(), task.exception())


async def wait_until_answering(nc: NATS, subject: str) -> None:
    """Return once a request on ``subject`` gets an answer (at most 5 s).

    Subscriptions reach the server asynchronously, each connection's in order: an
    answer on the one subscribed last means the server knows them all.
    """
    for _ in range(100):
        try:
            await nc.request(subject, b"", timeout=0.5)
            return
        except Exception:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"the service's own subscription on {subject} did not answer within 5 s")
