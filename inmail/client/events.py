"""Events for subscribers: a durable pull consumer on ``INMAIL_EVENTS`` with explicit acks.

The consumer lives on the server under the subscriber's name, so a subscriber that
stops and starts again with the same name resumes after the last event it
acknowledged. Acknowledgements are confirmed by the server before ``ack()``
returns: an event acknowledged is never delivered again to that name. An event
delivered but not acknowledged (the subscriber stopped while handling it) comes
again after the consumer's ack wait, so handlers should tolerate a repeat (each
event has a unique ``event_id``; ``redelivered`` says when it may be one).
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field
from types import TracebackType

import msgspec
import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext

from contracts import subjects
from contracts.events import AnyEvent, Event, decode_event
from contracts.types import ID_PATTERN

ACK_WAIT = 30.0
"""Seconds before an event delivered and not acknowledged is delivered again."""

_NAME = re.compile(ID_PATTERN)
_DISCONNECTED = (
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    nats.errors.NoRespondersError,
)
_RECONNECT_PAUSE = 0.5


class UnreadableEvent(Exception):
    """An event this version of the contracts cannot decode (written by a newer service, or by mistake).

    It stays unacknowledged: the subscriber decides. ``skip()`` acknowledges it, so
    it is not delivered to this name again.
    """

    def __init__(self, seq: int, subject: str, error: str, msg: Msg) -> None:
        super().__init__(f"the event at seq {seq} on {subject} cannot be read: {error}")
        self.seq = seq
        self.subject = subject
        self._msg = msg

    async def skip(self) -> None:
        """Acknowledge the event without handling it."""
        await self._msg.ack_sync()


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event from the stream, to acknowledge once handled."""

    event: AnyEvent
    """The event, typed (``contracts.events``), older shapes upcast."""
    seq: int
    """Its stream sequence: the global order."""
    subject: str
    redelivered: bool
    """Delivered before without an acknowledgement: it may have been handled already."""
    _msg: Msg = field(repr=False)

    @property
    def type(self) -> str:
        """The event's type name, e.g. ``InMailSent``."""
        return type(self.event).__name__

    async def ack(self) -> None:
        """Acknowledge the event; once this returns, the server will not deliver it to this name again."""
        await self._msg.ack_sync(timeout=5)


class Events:
    """The events of ``INMAIL_EVENTS`` through the durable consumer ``durable``, in stream order.

    An async iterator of ``Delivery``; also an async context manager that hands
    fetched but not yet delivered events back to the server on exit.
    """

    def __init__(
        self,
        nc: NATS,
        durable: str,
        *,
        from_seq: int | None = None,
        types: Collection[str | type[Event]] | None = None,
        batch: int = 100,
        ack_wait: float = ACK_WAIT,
        stream: str = subjects.EVENTS_STREAM,
    ) -> None:
        if not _NAME.match(durable):
            raise ValueError(f"durable {durable!r} is not a name of 1-64 of A-Z a-z 0-9 _ -")
        if from_seq is not None and from_seq < 1:
            raise ValueError(f"from_seq must be 1 or more, not {from_seq}")
        self.js: JetStreamContext = nc.jetstream(timeout=5)
        self.durable = durable
        self.stream = stream
        self.types = None if types is None else {t if isinstance(t, str) else t.__name__ for t in types}
        self.batch = batch
        self.config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if from_seq else DeliverPolicy.ALL,
            opt_start_seq=from_seq,
        )
        self._sub: JetStreamContext.PullSubscription | None = None
        self._fetched: deque[Msg] = deque()

    def __aiter__(self) -> Events:
        return self

    async def __anext__(self) -> Delivery:
        while True:
            while not self._fetched:
                await self._fetch()
            msg = self._fetched.popleft()
            seq = msg.metadata.sequence.stream
            try:
                event = decode_event(msg.data)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                if self.types is not None and _type_of(msg.data) not in self.types:
                    await msg.ack_sync(timeout=5)
                    continue
                raise UnreadableEvent(seq, msg.subject, str(exc), msg) from exc
            if self.types is not None and type(event).__name__ not in self.types:
                # Not wanted: acknowledged so it is not delivered to this name again.
                await msg.ack_sync(timeout=5)
                continue
            return Delivery(event, seq, msg.subject, msg.metadata.num_delivered > 1, msg)

    async def _fetch(self) -> None:
        if self._sub is None:
            # The consumer is created on first use; an existing one is resumed as it is
            # (its position, and the from_seq it was created with). A failure here (no
            # stream, no permission) is the subscriber's to see, so it is not retried.
            self._sub = await self.js.pull_subscribe(
                subjects.EVENTS_ALL, durable=self.durable, stream=self.stream, config=self.config
            )
        try:
            self._fetched.extend(await self._sub.fetch(self.batch, timeout=5))
        except TimeoutError:
            return  # nothing new within the wait
        except _DISCONNECTED:
            # NATS is reconnecting; the consumer keeps its position on the server meanwhile.
            await asyncio.sleep(_RECONNECT_PAUSE)

    async def aclose(self) -> None:
        """Hand fetched but undelivered events back for immediate redelivery; stop fetching."""
        fetched, self._fetched = self._fetched, deque()
        for msg in fetched:
            await msg.nak()
        sub, self._sub = self._sub, None
        if sub is not None:
            await sub.unsubscribe()

    async def __aenter__(self) -> Events:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class _Typed(msgspec.Struct):
    type: str = ""


def _type_of(data: bytes) -> str:
    try:
        return msgspec.json.decode(data, type=_Typed).type
    except msgspec.DecodeError:
        return ""
