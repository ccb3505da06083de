"""eventsourcing recorders on JetStream: a synchronous skin over the async event store.

Every method builds a coroutine over ``JetStreamEventStore`` and runs it on the
factory's ``NatsBridge``; nothing here talks to NATS by itself.

Mapping. One stream per application, subjects ``es.<stream>.>``. Each aggregate
(originator) has one subject, ``es.<stream>.<token>``: the token is the originator id
itself when it is a UUID or a plain ``[A-Za-z0-9_-]+`` string, otherwise ``=`` and its
UTF-8 in unpadded base64url. A stored event is one message: the state is the body, the
version, topic and id type are headers. The stream sequence of a message is its
notification id; an application's stream holds nothing but its events, so the ids are
contiguous and in commit order.

Concurrency. Inserting events for an aggregate is published with
``Nats-Expected-Last-Subject-Sequence`` set to the sequence of the aggregate's last
stored event (0 when it has none), so a concurrent writer makes the insert fail with
nothing written. The recorder remembers each aggregate's last (version, sequence) as a
hint and reads the subject's last message when the hint is missing or proves wrong; an
``IntegrityError`` is raised only on what the server holds. Events of several
aggregates in one insert go into one atomic batch (at most 1,000 messages).

Tracking. ``JetStreamTrackingRecorder`` keeps one position per upstream application in
a KV bucket (``<stream>_tracking``), moved forward by compare-and-set. Nothing else can
be written atomically with a KV key, so a view that keeps its own state elsewhere gets
at-least-once processing from it, not exactly-once.
``JetStreamProcessRecorder`` records events and position atomically: a JetStream atomic
batch can only span one stream, so the position is a message on
``es.<stream>.tracking.<application>`` in the process application's own stream, written
in the same batch as the events and checked with the same expected-sequence header (a
position can be neither lost nor recorded twice). Its notification ids are therefore
the stream sequences of its events, increasing but not contiguous: tracking messages
take sequences too, and reads skip them (events match ``es.<stream>.*``, tracking
subjects have one more token).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import re
import threading
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import nats.errors
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    DatabaseError,
    IntegrityError,
    Notification,
    OperationalError,
    PersistenceError,
    ProcessRecorder,
    ProgrammingError,
    StoredEvent,
    Subscription,
    Tracking,
    TrackingRecorder,
)
from nats.js import api as js_api
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from eventstore import (
    MAX_BATCH,
    AppendRejected,
    EventStoreError,
    JetStreamEventStore,
    NatsUnreachable,
    NewMessage,
    StoredMessage,
    StreamConfigMismatch,
    StreamSpec,
    Write,
    WrongExpectedVersion,
)
from eventstore.eventsourcing.bridge import BridgeClosed, NatsBridge

T = TypeVar("T")

ORIGINATOR_VERSION = "Es-Originator-Version"
TOPIC = "Es-Topic"
ORIGINATOR_ID_TYPE = "Es-Originator-Id-Type"
NOTIFICATION_ID = "Es-Notification-Id"
TRACKING_TOKEN = "tracking"

SUBJECT_ROOT = "es"
MAX_ATTEMPTS = 5
"""Inserts retried after a conflict that fresh reads show was only a stale hint."""
MAX_REMEMBERED = 10_000
"""Aggregates whose last (version, sequence) a recorder keeps as a hint."""
CALL_TIMEOUT = 60.0
"""A safety net over the store's own timeouts, so a caller never waits forever."""

_PLAIN = re.compile(r"[A-Za-z0-9_-]+")
_STREAM_NAME = re.compile(r"[A-Za-z0-9_-]{1,200}")


def is_valid_stream_name(name: str) -> bool:
    """True when ``name`` is usable as a stream name and a subject token (and a KV bucket)."""
    return _STREAM_NAME.fullmatch(name) is not None


def subject_prefix(stream: str) -> str:
    """The subjects of ``stream`` are ``<prefix>.>``."""
    return f"{SUBJECT_ROOT}.{stream}"


def encode_token(value: str) -> str:
    """A subject token (and KV key) for any string; plain strings stay readable."""
    if _PLAIN.fullmatch(value):
        return value
    return "=" + base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_token(token: str) -> str:
    """The string that ``encode_token`` turned into ``token``."""
    if not token.startswith("="):
        return token
    body = token[1:]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


def originator_token(originator_id: uuid.UUID | str) -> str:
    """The subject token of an aggregate; a UUID and its string form are the same aggregate."""
    return str(originator_id) if isinstance(originator_id, uuid.UUID) else encode_token(originator_id)


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


class _StoreRecorder:
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
        return _call(self.bridge, coro)

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


class JetStreamAggregateRecorder(_StoreRecorder, AggregateRecorder):
    """Stored events (or snapshots) of aggregates, one subject per aggregate."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Append the events atomically; IntegrityError if any aggregate moved on."""
        self._insert(stored_events)
        return None

    def _insert(
        self, stored_events: Sequence[StoredEvent], tracking: Tracking | None = None
    ) -> list[int]:
        groups = self._event_groups(stored_events)
        if tracking is not None:
            groups.append(self._tracking_group(tracking))
        if not groups:
            return []
        return self._call(self._append(groups, len(stored_events)))

    def select_events(
        self,
        originator_id: uuid.UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        """An aggregate's stored events, filtered by version, oldest first unless ``desc``."""
        return self._call(self._select_events(originator_id, gt, lte, desc, limit))


class JetStreamApplicationRecorder(JetStreamAggregateRecorder, ApplicationRecorder):
    """Stored events with notification ids: the stream sequences of an application's stream."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Append the events atomically and return their notification ids."""
        return self._insert(stored_events)

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        """Up to ``limit`` notifications from ``start`` (to ``stop``), optionally of some topics."""
        if limit <= 0:
            return []
        return self._call(
            self._select_notifications(start, limit, stop, topics, inclusive_of_start)
        )

    def max_notification_id(self) -> int | None:
        """The last notification id, or None when nothing is recorded."""
        return self._call(self._max_notification_id())

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        """Notifications after ``gt``, then new ones as they are recorded (a JetStream consumer)."""
        return JetStreamSubscription(self, gt=gt, topics=topics)


class JetStreamProcessRecorder(JetStreamApplicationRecorder, ProcessRecorder):
    """Events and the upstream position in one atomic batch on the application's stream."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Append the events and, with ``tracking=``, the position, all or nothing."""
        tracking: Tracking | None = kwargs.get("tracking")
        return self._insert(stored_events, tracking)

    def insert_tracking(self, tracking: Tracking) -> None:
        """Record a position with no events; IntegrityError unless it is past the last one."""
        self._insert([], tracking)

    def max_tracking_id(self, application_name: str) -> int | None:
        """The last position recorded for ``application_name``, or None."""
        return self._call(self._max_tracking_id(application_name))


class JetStreamTrackingRecorder(TrackingRecorder):
    """Positions in upstream applications, one KV key each, moved forward by compare-and-set."""

    def __init__(
        self, bridge: NatsBridge, bucket: str, *, replicas: int = 1, create_bucket: bool = True
    ) -> None:
        if not is_valid_stream_name(bucket):
            raise ProgrammingError(f"not a usable KV bucket name: {bucket!r}")
        self.bridge = bridge
        self.bucket = bucket
        self.replicas = replicas
        self.create_bucket = create_bucket
        self._kv: KeyValue | None = None
        self._kv_lock = asyncio.Lock()
        if create_bucket:
            self._call(self._get_kv())

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return _call(self.bridge, coro)

    def insert_tracking(self, tracking: Tracking) -> None:
        """Record a position; IntegrityError unless it is past the last one recorded."""
        self._call(self._insert_tracking(tracking))

    def max_tracking_id(self, application_name: str) -> int | None:
        """The last position recorded for ``application_name``, or None."""
        return self._call(self._max_tracking_id(application_name))

    async def _get_kv(self) -> KeyValue:
        async with self._kv_lock:
            if self._kv is None:
                js = (await self.bridge.connection()).jetstream()
                try:
                    self._kv = await js.key_value(self.bucket)
                except BucketNotFoundError:
                    if not self.create_bucket:
                        raise
                    self._kv = await js.create_key_value(
                        js_api.KeyValueConfig(
                            bucket=self.bucket,
                            history=1,
                            replicas=self.replicas,
                            storage=js_api.StorageType.FILE,
                        )
                    )
            return self._kv

    async def _entry(self, kv: KeyValue, key: str) -> KeyValue.Entry | None:
        try:
            return await kv.get(key)
        except KeyNotFoundError:
            return None

    async def _max_tracking_id(self, application_name: str) -> int | None:
        entry = await self._entry(await self._get_kv(), encode_token(application_name))
        return None if entry is None or entry.value is None else int(entry.value)

    async def _insert_tracking(self, tracking: Tracking) -> None:
        kv = await self._get_kv()
        key = encode_token(tracking.application_name)
        value = str(tracking.notification_id).encode()
        for _ in range(MAX_ATTEMPTS):
            entry = await self._entry(kv, key)
            if entry is not None and entry.value is not None:
                recorded = int(entry.value)
                if tracking.notification_id <= recorded:
                    raise IntegrityError(
                        f"{tracking.application_name}: position {tracking.notification_id} "
                        f"is not after the recorded {recorded}"
                    )
            try:
                if entry is None:
                    await kv.create(key, value)
                else:
                    await kv.update(key, value, last=entry.revision)
            except KeyWrongLastSequenceError:
                continue  # another writer moved it: decide again on its value
            return
        raise IntegrityError(
            f"gave up after {MAX_ATTEMPTS} attempts: other writers kept moving "
            f"the position of {tracking.application_name}"
        )


class JetStreamSubscription(Subscription[JetStreamApplicationRecorder]):
    """Notifications from an ordered JetStream consumer; ``stop()`` ends it from any thread."""

    def __init__(
        self,
        recorder: JetStreamApplicationRecorder,
        gt: int | None = None,
        topics: Sequence[str] = (),
    ) -> None:
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        self._messages = recorder._follow(gt)
        self._wanted_topics = frozenset(topics)
        self._waiting: concurrent.futures.Future[StoredMessage] | None = None
        self._guard = threading.Lock()

    def __next__(self) -> Notification:
        while True:
            with self._guard:
                if self._has_been_stopped:
                    raise StopIteration
                waiting = self._waiting = self._recorder.bridge.submit(
                    _next_message(self._messages)
                )
            try:
                message = waiting.result()
            except (concurrent.futures.CancelledError, StopAsyncIteration, BridgeClosed):
                raise StopIteration from None
            except _FAILURES as exc:
                raise _translate(exc) from exc
            finally:
                with self._guard:
                    self._waiting = None
            notification = self._recorder._notification(message)
            self._last_notification_id = notification.id
            if not self._wanted_topics or notification.topic in self._wanted_topics:
                return notification

    def stop(self) -> None:
        """Stop the subscription; a ``__next__`` waiting in another thread returns at once."""
        with self._guard:
            super().stop()
            waiting = self._waiting
        if waiting is not None:
            # Cancelling the wait cancels the consumer's task; the generator closes itself.
            waiting.cancel()
            return
        with contextlib.suppress(BridgeClosed, RuntimeError):
            self._recorder.bridge.submit(self._messages.aclose())


async def _next_message(messages: AsyncIterator[StoredMessage]) -> StoredMessage:
    return await anext(messages)


_FAILURES: tuple[type[Exception], ...] = (
    EventStoreError,
    NatsUnreachable,
    BridgeClosed,
    nats.errors.Error,
    TimeoutError,
    concurrent.futures.CancelledError,
)
"""What NATS, the store and the bridge raise; anything else is a bug and stays as it is."""


def _call(bridge: NatsBridge, coro: Coroutine[Any, Any, T]) -> T:
    try:
        return bridge.run(coro, timeout=CALL_TIMEOUT)
    except _FAILURES as exc:
        raise _translate(exc) from exc


def _translate(exc: Exception) -> PersistenceError:
    """The eventsourcing (PEP 249 style) error for a failure of NATS, the store or the bridge."""
    if isinstance(exc, WrongExpectedVersion):
        return IntegrityError(str(exc))
    if isinstance(exc, StreamConfigMismatch | BucketNotFoundError):
        return ProgrammingError(str(exc))
    if isinstance(exc, AppendRejected):
        return DatabaseError(str(exc))
    if isinstance(exc, concurrent.futures.CancelledError):
        return OperationalError("the NATS bridge was closed while waiting for NATS")
    return OperationalError(f"{type(exc).__name__}: {exc}")
