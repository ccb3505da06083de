"""The dashboard's view of the event stream as it grows: what is new, for whom, and which templates.

One pull consumer per service (``JetStreamEventStore.follow_batches``), started when
a dashboard first asks and stopped with the HTTP server, reads from a little
before the end (``HISTORY`` events, to learn the templates in use and the latest
event time) and then follows live. Each event is only glanced at: its type, time,
template and recipient, decoded into a small Struct that skips every other field.
Each page wakes the dashboards' server-sent-event streams, which tell the browser
the new stream sequence and the members whose pages changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import msgspec

from contracts import subjects
from eventstore import JetStreamEventStore, StoredMessage

log = logging.getLogger("inmail.http")

HISTORY = 10_000
"""Events read from before the end when following starts."""
MAX_MEMBERS = 200
"""Members named in one update at most; beyond that an update says "anyone" (None)."""


class _Glance(msgspec.Struct):
    type: str
    occurred_at: datetime
    template_id: str | None = None
    recipient_id: str | None = None


_glance = msgspec.json.Decoder(_Glance)


@dataclass(eq=False, slots=True)  # one per browser: compared and hashed by identity
class Listener:
    """One dashboard's stream of updates: what changed since it last looked."""

    members: set[str] | None = field(default_factory=set)
    """Members whose events arrived since the last update (None: too many to say)."""
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def take(self) -> set[str] | None:
        """The members changed since the last call; resets."""
        members, self.members = self.members, set()
        self.wake.clear()
        return members


class LiveEvents:
    """Follows the event stream for the dashboards; lazily started, shared by all of them."""

    def __init__(self, events: JetStreamEventStore) -> None:
        self.events = events
        self.stream_seq = 0
        self.latest_time: datetime | None = None
        self.templates: Counter[str] = Counter()
        self.listeners: set[Listener] = set()
        self.stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def started(self) -> None:
        """Start following unless it already does; returns once the recent history is read."""
        if self._task is None or self._task.done():
            self._ready.clear()
            self._task = asyncio.create_task(self._follow(), name="dashboard-live")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await self._ready.wait()

    async def stop(self) -> None:
        """Stop following and end every listener's stream."""
        self.stopped.set()
        for listener in self.listeners:
            listener.wake.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])

    def top_templates(self, count: int) -> list[str]:
        """The templates used most in the events seen, most used first."""
        return [template for template, _ in self.templates.most_common(count)]

    async def _follow(self) -> None:
        try:
            last = await self.events.last_seq()
        except Exception as exc:
            # The next dashboard that asks starts it again.
            log.warning("the dashboard cannot follow the event stream: %s", exc)
            self._ready.set()
            return
        self.stream_seq = last
        if last == 0:
            self._ready.set()
        pages = self.events.follow_batches(max(1, last - HISTORY + 1), batch=1000, expires=5.0)
        async with contextlib.aclosing(pages):
            async for page in pages:
                self._absorb(page)
                if page[-1].seq >= last:
                    self._ready.set()

    def _absorb(self, page: Sequence[StoredMessage]) -> None:
        members: set[str] = set()
        for message in page:
            try:
                glance = _glance.decode(message.data)
            except msgspec.DecodeError:
                continue  # not ours to judge: the projections report undecodable events
            if message.subject.startswith(subjects.MEMBER_EVENTS_PREFIX):
                members.add(subjects.member_of_subject(message.subject))
            if glance.recipient_id:
                members.add(glance.recipient_id)
            if glance.type == "InMailSent" and glance.template_id:
                self.templates[glance.template_id] += 1
            if self.latest_time is None or glance.occurred_at > self.latest_time:
                self.latest_time = glance.occurred_at
        self.stream_seq = max(self.stream_seq, page[-1].seq)
        for listener in self.listeners:
            if listener.members is not None:
                listener.members |= members
                if len(listener.members) > MAX_MEMBERS:
                    listener.members = None
            listener.wake.set()
