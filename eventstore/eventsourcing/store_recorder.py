"""What every stream-backed recorder shares: writing events with optimistic concurrency, reading them.

Every method builds a coroutine over ``JetStreamEventStore`` and runs it on the
factory's ``NatsBridge``; nothing here talks to NATS by itself.

Concurrency. Inserting events for an aggregate is published with
``Nats-Expected-Last-Subject-Sequence`` set to the sequence of the aggregate's last
stored event (0 when it has none), so a concurrent writer makes the insert fail with
nothing written. The recorder remembers each aggregate's last (version, sequence) as a
hint and reads the subject's last message when the hint is missing or proves wrong; an
``IntegrityError`` is raised only on what the server holds. Events of several
aggregates in one insert go into one atomic batch (at most 1,000 messages). A process
recorder's position goes into the same batch, checked the same way (``recorders``).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncGenerator, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from eventsourcing.persistence import (
    IntegrityError,
    Notification,
    ProgrammingError,
    StoredEvent,
    Tracking,
)

from eventstore import (
    MAX_BATCH,
    JetStreamEventStore,
    NewMessage,
    StoredMessage,
    StreamSpec,
    Write,
    WrongExpectedVersion,
)
from eventstore.eventsourcing.bridge import NatsBridge
from eventstore.eventsourcing.calls import MAX_ATTEMPTS, call
from eventstore.eventsourcing.layout import (
    NOTIFICATION_ID,
    ORIGINATOR_ID_TYPE,
    ORIGINATOR_VERSION,
    TOPIC,
    TRACKING_TOKEN,
    decode_token,
    encode_token,
    is_valid_stream_name,
    originator_token,
    subject_prefix,
)

T = TypeVar("T")

MAX_REMEMBERED = 10_000
"""Aggregates whose last (version, sequence) a recorder keeps as a hint."""


@dataclass(slots=True)
class _Group:
    """The messages one insert writes to one subject, checked against its last position."""

    subject: str
    position_header: str
    first: int
    last: int
    messages: list[NewMessage]
    indexes: list[int]
    """Where each message's stored event sits in the caller's list (-1: not an event)."""
    may_be_new: bool


class StoreRecorder:
    """What every stream-backed recorder shares: its stream, its store and its bridge."""

    def __init__(
        self, bridge: NatsBridge, stream: str, *, replicas: int = 1, create_stream: bool = True
    ) -> None:
        if not is_valid_stream_name(stream):
            raise ProgrammingError(f"not a usable stream name: {stream!r}")
        self.bridge = bridge
        self.stream = stream
        self.prefix = subject_prefix(stream)
        self.events_filter = f"{self.prefix}.*"
        self.spec = StreamSpec(name=stream, subjects=(f"{self.prefix}.>",), replicas=replicas)
        self._store: JetStreamEventStore | None = None
        self._store_lock = asyncio.Lock()
        self._positions: dict[str, tuple[int, int]] = {}
        if create_stream:
            self._call(self._ensure_stream())

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return call(self.bridge, coro)

    async def _ensure_stream(self) -> None:
        store = await self._get_store()
        await store.ensure_stream()

    async def _get_store(self) -> JetStreamEventStore:
        async with self._store_lock:
            if self._store is None:
                store = JetStreamEventStore(await self.bridge.connection(), self.spec)
                # Opened here, once: concurrent first reads would each open a reply subscription.
                await store.open()
                self._store = store
            return self._store

    # ------------------------------------------------------------------ writing

    def _event_groups(self, stored_events: Sequence[StoredEvent]) -> list[_Group]:
        groups: dict[str, _Group] = {}
        for index, event in enumerate(stored_events):
            subject = f"{self.prefix}.{originator_token(event.originator_id)}"
            version = event.originator_version
            message = NewMessage(
                msg_id=uuid.uuid4().hex,
                data=event.state,
                headers={
                    ORIGINATOR_VERSION: str(version),
                    TOPIC: event.topic,
                    ORIGINATOR_ID_TYPE: "uuid" if isinstance(event.originator_id, uuid.UUID) else "str",
                },
            )
            group = groups.get(subject)
            if group is None:
                groups[subject] = _Group(
                    subject, ORIGINATOR_VERSION, version, version, [message], [index], version <= 1
                )
                continue
            if version <= group.last:
                raise IntegrityError(
                    f"versions of {event.originator_id} must increase within one insert: "
                    f"{version} after {group.last}"
                )
            group.last = version
            group.messages.append(message)
            group.indexes.append(index)
        return list(groups.values())

    def _tracking_group(self, tracking: Tracking) -> _Group:
        message = NewMessage(
            msg_id=uuid.uuid4().hex,
            data=b"",
            headers={NOTIFICATION_ID: str(tracking.notification_id)},
        )
        return _Group(
            self._tracking_subject(tracking.application_name),
            NOTIFICATION_ID,
            tracking.notification_id,
            tracking.notification_id,
            [message],
            [-1],
            False,
        )

    def _tracking_subject(self, application_name: str) -> str:
        return f"{self.prefix}.{TRACKING_TOKEN}.{encode_token(application_name)}"

    async def _append(self, groups: list[_Group], count: int) -> list[int]:
        """Write all groups atomically; the stream sequence of each event, in the caller's order."""
        total = sum(len(group.messages) for group in groups)
        if total > MAX_BATCH:
            raise ProgrammingError(f"one insert holds at most {MAX_BATCH} messages, got {total}")
        store = await self._get_store()
        fresh = False
        for _ in range(MAX_ATTEMPTS):
            positions = await self._positions_for(store, groups, fresh=fresh)
            behind = [
                (group.subject, group.first, position[0])
                for group, position in zip(groups, positions, strict=True)
                if position is not None and group.first <= position[0]
            ]
            if behind:
                if fresh:
                    subject, first, recorded = behind[0]
                    raise IntegrityError(
                        f"{subject}: position {first} is not after the recorded {recorded}"
                    )
                # Only the hint said so: ask the server before refusing.
                fresh = True
                continue
            writes = [
                Write(group.subject, 0 if position is None else position[1], group.messages)
                for group, position in zip(groups, positions, strict=True)
            ]
            try:
                appended = await store.append_atomic(writes)
            except WrongExpectedVersion:
                # Someone wrote since the position was read (or the hint was stale):
                # read again and decide on what the server holds.
                fresh = True
                continue
            return self._note_appended(groups, appended.seqs, count)
        raise IntegrityError(
            f"gave up after {MAX_ATTEMPTS} attempts: other writers kept appending to "
            + ", ".join(group.subject for group in groups)
        )

    def _note_appended(self, groups: list[_Group], seqs: Sequence[int], count: int) -> list[int]:
        ids = [0] * count
        position = 0
        for group in groups:
            for index in group.indexes:
                if index >= 0:
                    ids[index] = seqs[position]
                position += 1
            self._remember(group.subject, group.last, seqs[position - 1])
        return ids

    async def _positions_for(
        self, store: JetStreamEventStore, groups: list[_Group], *, fresh: bool
    ) -> list[tuple[int, int] | None]:
        positions: list[tuple[int, int] | None] = [None] * len(groups)
        to_read: list[int] = []
        for index, group in enumerate(groups):
            known = None if fresh else self._positions.get(group.subject)
            if known is not None:
                positions[index] = known
            elif fresh or not group.may_be_new:
                to_read.append(index)
            # else: most inserts at version 0 or 1 create the aggregate, so expect an
            # empty subject; the server's check corrects the guess when it is wrong.
        read = await asyncio.gather(
            *(self._read_position(store, groups[i].subject, groups[i].position_header) for i in to_read)
        )
        for index, position in zip(to_read, read, strict=True):
            positions[index] = position
        return positions

    async def _read_position(
        self, store: JetStreamEventStore, subject: str, header: str
    ) -> tuple[int, int] | None:
        message = await store.last_message(subject)
        if message is None:
            self._positions.pop(subject, None)
            return None
        position = (int(message.headers[header]), message.seq)
        self._remember(subject, *position)
        return position

    def _remember(self, subject: str, version: int, seq: int) -> None:
        # Runs on the loop thread only, so no lock; an older reading never replaces a newer one.
        known = self._positions.pop(subject, None)
        if known is not None and known[1] > seq:
            version, seq = known
        self._positions[subject] = (version, seq)
        if len(self._positions) > MAX_REMEMBERED:
            del self._positions[next(iter(self._positions))]

    # ------------------------------------------------------------------ reading

    async def _select_events(
        self,
        originator_id: uuid.UUID | str,
        gt: int | None,
        lte: int | None,
        desc: bool,
        limit: int | None,
    ) -> list[StoredEvent]:
        store = await self._get_store()
        subject = f"{self.prefix}.{originator_token(originator_id)}"
        latest_only = desc and limit == 1 and lte is None
        if latest_only or gt is not None:
            # The latest event (or snapshot) alone is one direct get. After ``gt`` (a cached
            # aggregate fast-forwarding, events after a snapshot) there is often nothing new,
            # which the last message tells without reading the whole subject.
            last = await store.last_message(subject)
            messages = [] if last is None else [last]
            if (
                last is not None
                and not latest_only
                and gt is not None
                and int(last.headers[ORIGINATOR_VERSION]) > gt
            ):
                messages = await store.read_subject(subject)
        else:
            messages = await store.read_subject(subject)
        if messages:
            last_message = messages[-1]
            self._remember(subject, int(last_message.headers[ORIGINATOR_VERSION]), last_message.seq)
        events = [
            StoredEvent(
                originator_id=originator_id,
                originator_version=int(message.headers[ORIGINATOR_VERSION]),
                topic=message.headers[TOPIC],
                state=message.data,
            )
            for message in messages
        ]
        events = [
            event
            for event in events
            if (gt is None or event.originator_version > gt)
            and (lte is None or event.originator_version <= lte)
        ]
        if desc:
            events.reverse()
        return events if limit is None else events[:limit]

    async def _select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None,
        topics: Sequence[str],
        inclusive_of_start: bool,
    ) -> list[Notification]:
        store = await self._get_store()
        first = 1 if start is None else (start if inclusive_of_start else start + 1)
        first = max(first, 1)
        wanted_topics = frozenset(topics)
        found: list[Notification] = []
        while len(found) < limit and (stop is None or first <= stop):
            want = store.read_batch if wanted_topics else min(store.read_batch, limit - len(found))
            if stop is not None:
                want = min(want, stop - first + 1)
            page = await store.read_range(first, filter_subject=self.events_filter, limit=want)
            for message in page:
                if stop is not None and message.seq > stop:
                    return found
                notification = self._notification(message)
                if wanted_topics and notification.topic not in wanted_topics:
                    continue
                found.append(notification)
                if len(found) == limit:
                    return found
            # A batch direct get stops short only at the end of the stream.
            if len(page) < want:
                break
            first = page[-1].seq + 1
        return found

    async def _max_notification_id(self) -> int | None:
        store = await self._get_store()
        last = await store.last_message(self.events_filter)
        return None if last is None else last.seq

    def _notification(self, message: StoredMessage) -> Notification:
        token = message.subject[len(self.prefix) + 1 :]
        originator_id: uuid.UUID | str
        if message.headers.get(ORIGINATOR_ID_TYPE) == "uuid":
            originator_id = uuid.UUID(token)
        else:
            originator_id = decode_token(token)
        return Notification(
            id=message.seq,
            originator_id=originator_id,
            originator_version=int(message.headers[ORIGINATOR_VERSION]),
            topic=message.headers[TOPIC],
            state=message.data,
        )

    async def _max_tracking_id(self, application_name: str) -> int | None:
        store = await self._get_store()
        position = await self._read_position(
            store, self._tracking_subject(application_name), NOTIFICATION_ID
        )
        return None if position is None else position[0]

    async def _follow(self, gt: int | None) -> AsyncGenerator[StoredMessage, None]:
        store = await self._get_store()
        start = 1 if gt is None else gt + 1
        async with contextlib.aclosing(
            store.follow(start, filter_subject=self.events_filter)
        ) as messages:
            async for message in messages:
                yield message
