"""The client without asyncio: its own event loop in a thread, each call blocking until answered."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Collection, Coroutine, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar

import msgspec

from contracts.commands import Command
from contracts.events import AnyEvent, Event
from inmail.client.core import Answered, Core, Stats, Written
from inmail.client.events import ACK_WAIT, Delivery, Events

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")
C = TypeVar("C", bound=Core)
C_co = TypeVar("C_co", bound=Core, covariant=True)
"""Covariant: a blocking client of ``Methods`` is one of each part it is made of."""


class LoopThread:
    """An event loop running in a daemon thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="inmail-client", daemon=True)
        self.thread.start()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result()

    def stop(self) -> None:
        """Stop the loop and its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


class SyncCore(Generic[C_co]):
    """Wraps an asyncio client running on a ``LoopThread``; the typed methods are in ``methods.py``."""

    def __init__(self, client: C_co, runner: LoopThread) -> None:
        self.client = client
        self.runner = runner

    @property
    def stats(self) -> Stats:
        """The client's counts of requests and retries."""
        return self.client.stats

    def after(self, written: Written | int) -> Self:
        """This client with every query waiting until the read model includes ``written``."""
        return type(self)(self.client.after(written), self.runner)

    def within(self, deadline: float) -> Self:
        """This client with another retry deadline (0: one attempt per request)."""
        return type(self)(self.client.within(deadline), self.runner)

    def send(self, command: Command) -> Written:
        """Send a command built by the caller; its typed reply."""
        return self.runner.run(self.client.send(command))

    def ask(self, query: msgspec.Struct) -> Answered:
        """Send a query (or an operator request) built by the caller; its typed answer."""
        return self.runner.run(self.client.ask(query))

    def events(
        self,
        durable: str,
        *,
        from_seq: int | None = None,
        types: Collection[str | type[Event]] | None = None,
        ack_wait: float = ACK_WAIT,
        batch: int = 100,
    ) -> SyncEvents:
        """Typed events through the durable consumer ``durable`` (see ``InMailClient.events``)."""
        events = self.client.events(durable, from_seq=from_seq, types=types, ack_wait=ack_wait, batch=batch)
        return SyncEvents(events, self.runner)

    def close(self) -> None:
        """Close the client and stop its event loop."""
        try:
            self.runner.run(self.client.close())
        finally:
            self.runner.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def blocking(
    method: Callable[Concatenate[C, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[SyncCore[C], P], R]:
    """The blocking form of an asyncio client method, with the same arguments."""

    def call(self: SyncCore[C], /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.runner.run(method(self.client, *args, **kwargs))

    call.__name__ = method.__name__
    call.__doc__ = method.__doc__
    return call


@dataclass(frozen=True, slots=True)
class SyncDelivery:
    """One event from the stream, to acknowledge once handled."""

    event: AnyEvent
    seq: int
    subject: str
    redelivered: bool
    _delivery: Delivery = field(repr=False)
    _runner: LoopThread = field(repr=False)

    @property
    def type(self) -> str:
        """The event's type name, e.g. ``InMailSent``."""
        return self._delivery.type

    def ack(self) -> None:
        """Acknowledge the event; once this returns, the server will not deliver it to this name again."""
        self._runner.run(self._delivery.ack())


class SyncEvents:
    """``Events`` as a blocking iterator; ``close()`` (or leaving its ``with``) hands back unseen events."""

    def __init__(self, events: Events, runner: LoopThread) -> None:
        self.events = events
        self.runner = runner

    def __iter__(self) -> Iterator[SyncDelivery]:
        return self

    def __next__(self) -> SyncDelivery:
        try:
            item = self.runner.run(self.events.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None
        return SyncDelivery(item.event, item.seq, item.subject, item.redelivered, item, self.runner)

    def close(self) -> None:
        """Hand fetched but undelivered events back; stop fetching."""
        self.runner.run(self.events.aclose())

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
