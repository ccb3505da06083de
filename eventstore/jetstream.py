"""The async event store: one JetStream stream, one subject per aggregate.

A subject's last stream sequence is its aggregate's version. Appends carry
``Nats-Expected-Last-Subject-Sequence`` (optimistic concurrency) and
``Nats-Msg-Id`` (the event id, so a retried append is dropped by the server).
Several messages are written with JetStream's atomic batch publish: all or none.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import (
    BadHeaderError,
    BadSubjectError,
    MaxPayloadError,
    NoRespondersError,
    OutboundBufferLimitError,
)
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import api as js_api
from nats.js.errors import NotFoundError

MAX_BATCH = 1000
"""JetStream refuses atomic batches of more than 1,000 messages."""

_CONFLICT_CODES = frozenset({10071, 10164})
"""Wrong last sequence; 10164 is what a concurrent in-flight write on R3 (and a batch) reports."""

_BATCH_DUPLICATE = 10201
"""An atomic batch holding a message id already stored: what a resent, stored batch gets."""

_STATUS = "Status"

_DEADLINE_TICK = 0.05
"""Seconds between two checks for requests past their deadline."""


class EventStoreError(Exception):
    """Base of the store's typed errors."""


class WrongExpectedVersion(EventStoreError):
    """Another writer appended to the aggregate first: reload and decide again."""

    def __init__(self, subject: str, expected: int, actual: int | None) -> None:
        self.subject = subject
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{subject}: expected version {expected}, actual {'unknown' if actual is None else actual}"
        )


class StoreUnavailable(EventStoreError):
    """The store could not be reached; nothing was written."""


class OutcomeUnknown(StoreUnavailable):
    """The append may or may not have been stored, and the store stayed out of reach."""


class AppendRejected(EventStoreError):
    """The server refused the append for a reason other than concurrency."""

    def __init__(self, err_code: int, description: str) -> None:
        self.err_code = err_code
        super().__init__(f"JetStream refused the append ({err_code}): {description}")


class StreamConfigMismatch(EventStoreError):
    """The stream exists with a configuration this store cannot use."""


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """The stream this store writes to; created once, checked on every start."""

    name: str
    subjects: tuple[str, ...]
    storage: Literal["file", "memory"] = "file"
    replicas: int = 1
    duplicate_window: float = 120.0
    """Seconds during which a repeated ``Nats-Msg-Id`` is dropped by the server."""

    def to_config(self) -> js_api.StreamConfig:
        return js_api.StreamConfig(
            name=self.name,
            subjects=list(self.subjects),
            retention=js_api.RetentionPolicy.LIMITS,
            storage=js_api.StorageType.FILE if self.storage == "file" else js_api.StorageType.MEMORY,
            num_replicas=self.replicas,
            duplicate_window=self.duplicate_window,
            discard=js_api.DiscardPolicy.OLD,
            max_msgs=-1,
            max_bytes=-1,
            max_age=0,
            max_msgs_per_subject=-1,
            allow_direct=True,
            allow_atomic=True,
            deny_delete=True,
        )


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to append; ``msg_id`` becomes ``Nats-Msg-Id`` (the event id)."""

    msg_id: str
    data: bytes
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as the stream holds it."""

    seq: int
    subject: str
    data: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def msg_id(self) -> str | None:
        return self.headers.get("Nats-Msg-Id")


@dataclass(frozen=True, slots=True)
class Write:
    """Messages for one aggregate subject, at the version the writer decided on."""

    subject: str
    expected_version: int
    messages: Sequence[NewMessage]


@dataclass(frozen=True, slots=True)
class Appended:
    """Where an append landed. ``seqs`` are the stream sequences, in order."""

    seqs: tuple[int, ...]

    @property
    def last_seq(self) -> int:
        return self.seqs[-1]


class _Ack(msgspec.Struct):
    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    count: int = 0
    error: _ApiError | None = None


class _ApiError(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


_decode_ack = msgspec.json.Decoder(_Ack).decode


class _PendingRead:
    """Collects the replies of one batch direct get."""

    __slots__ = ("deadline", "done", "messages", "pending", "status")

    def __init__(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        self.messages: list[StoredMessage] = []
        self.done: asyncio.Future[None] = loop.create_future()
        self.deadline = deadline
        self.pending = 0
        self.status = ""


class JetStreamEventStore:
    """Append to and read from one stream; every method is safe to call concurrently."""

    def __init__(
        self,
        nc: NATS,
        spec: StreamSpec,
        *,
        timeout: float = 5.0,
        resolve_timeout: float = 15.0,
        read_batch: int = 1000,
    ) -> None:
        self.nc = nc
        self.spec = spec
        self.timeout = timeout
        self.resolve_timeout = resolve_timeout
        self.read_batch = read_batch
        self.js = nc.jetstream(timeout=timeout)
        self._direct_subject = f"$JS.API.DIRECT.GET.{spec.name}"
        self._reads: dict[str, _PendingRead] = {}
        self._read_prefix = ""
        self._read_tokens = itertools.count(1)
        self._read_sub: Any = None
        self._acks: dict[str, tuple[asyncio.Future[Msg], float]] = {}
        self._ack_prefix = ""
        self._ack_tokens = itertools.count(1)
        self._ack_sub: Subscription | None = None
        self._opening = asyncio.Lock()
        self._deadlines: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ set-up

    async def ensure_stream(self) -> None:
        """Create the stream if it is missing; refuse to use one configured incompatibly."""
        wanted = self.spec.to_config()
        try:
            info = await self.js.stream_info(self.spec.name)
        except NotFoundError:
            await self.js.add_stream(wanted)
            return
        problems = _incompatibilities(info.config, wanted)
        if problems:
            raise StreamConfigMismatch(
                f"stream {self.spec.name} exists with an incompatible configuration: "
                + "; ".join(problems)
                + " (change it deliberately with the nats CLI, or use another stream name)"
            )

    async def open(self) -> None:
        """Prepare the shared reply subscriptions for reads and appends; idempotent."""
        if self._read_sub is not None and self._ack_sub is not None:
            return
        # Concurrent first calls would each subscribe and leak all but the last subscription.
        async with self._opening:
            if self._read_sub is None:
                self._read_prefix = self.nc.new_inbox()
                self._read_sub = await self.nc.subscribe(f"{self._read_prefix}.*", cb=self._on_read_reply)
            if self._ack_sub is None:
                self._ack_prefix = self.nc.new_inbox()
                self._ack_sub = await self.nc.subscribe(f"{self._ack_prefix}.*", cb=self._on_ack)

    async def close(self) -> None:
        if self._read_sub is not None:
            with contextlib.suppress(Exception):
                await self._read_sub.unsubscribe()
            self._read_sub = None
        if self._ack_sub is not None:
            # Appends still waiting time out and resolve their outcome by resending.
            with contextlib.suppress(Exception):
                await self._ack_sub.unsubscribe()
            self._ack_sub = None
        for pending in self._reads.values():
            if not pending.done.done():
                pending.done.set_exception(StoreUnavailable("event store closed"))
        self._reads.clear()

    # ------------------------------------------------------------------ appends

    async def append(
        self, subject: str, messages: Sequence[NewMessage], expected_version: int
    ) -> Appended:
        """Append messages to one aggregate at ``expected_version``, atomically."""
        return await self.append_atomic([Write(subject, expected_version, messages)])

    async def append_atomic(self, writes: Sequence[Write]) -> Appended:
        """Append to one or more aggregates, all or none; each write is checked at its version.

        One message is a plain publish; anything more is an atomic batch (a batch
        commit costs a few milliseconds, a plain publish a fraction of one).
        """
        writes = [w for w in writes if w.messages]
        count = sum(len(w.messages) for w in writes)
        if count == 0:
            raise ValueError("nothing to append")
        if count > MAX_BATCH:
            raise ValueError(f"an atomic append holds at most {MAX_BATCH} messages, got {count}")
        try:
            return await self._send(writes, count)
        except _Unknown as unknown:
            return await self._resolve(writes, count, unknown.reason)

    async def _send(self, writes: Sequence[Write], count: int) -> Appended:
        try:
            if count == 1:
                reply = await self._publish_one(writes[0])
            else:
                reply = await self._publish_batch(writes, count)
        except (OutboundBufferLimitError, NoRespondersError) as exc:
            # Not connected, or no JetStream listening: the message never reached a stream.
            raise StoreUnavailable(f"event store unreachable: {type(exc).__name__}") from exc
        except (MaxPayloadError, BadSubjectError, BadHeaderError) as exc:
            # Refused by the client before sending (for a batch: before the commit, so the
            # server drops what it got). Resending cannot help, so this is no unknown outcome.
            raise ValueError(f"cannot append: {exc}") from exc
        except (TimeoutError, NatsTimeoutError) as exc:
            raise _Unknown("no acknowledgement in time") from exc
        except Exception as exc:
            # Connection closed or reset mid-request: the message may have been stored.
            raise _Unknown(f"{type(exc).__name__}: {exc}") from exc
        ack = _decode_ack(reply.data)
        if ack.error is not None:
            err = ack.error
            if err.err_code in _CONFLICT_CODES:
                raise WrongExpectedVersion(
                    writes[0].subject if len(writes) == 1 else "(batch)",
                    writes[0].expected_version,
                    _actual_from(err.description),
                )
            if err.code == 503:
                raise StoreUnavailable(f"JetStream unavailable: {err.description}")
            raise AppendRejected(err.err_code, err.description)
        last = ack.seq
        return Appended(tuple(range(last - count + 1, last + 1)))

    async def _publish_one(self, write: Write) -> Msg:
        message = write.messages[0]
        headers = {
            "Nats-Msg-Id": message.msg_id,
            "Nats-Expected-Last-Subject-Sequence": str(write.expected_version),
        }
        if message.headers:
            headers.update(message.headers)
        return await self._request(write.subject, message.data, headers)

    async def _publish_batch(self, writes: Sequence[Write], count: int) -> Msg:
        batch_id = uuid.uuid4().hex
        position = 0
        for write in writes:
            for index, message in enumerate(write.messages):
                position += 1
                headers = {
                    "Nats-Batch-Id": batch_id,
                    "Nats-Batch-Sequence": str(position),
                    "Nats-Msg-Id": message.msg_id,
                }
                # The check goes on an aggregate's first message only: on a later one it
                # would compare against the batch's own earlier message and fail.
                if index == 0:
                    headers["Nats-Expected-Last-Subject-Sequence"] = str(write.expected_version)
                if message.headers:
                    headers.update(message.headers)
                if position == count:
                    headers["Nats-Batch-Commit"] = "1"
                    return await self._request(write.subject, message.data, headers)
                await self.nc.publish(write.subject, message.data, headers=headers)
        raise AssertionError("unreachable: the loop returns at the commit")

    async def _request(self, subject: str, data: bytes, headers: dict[str, str]) -> Msg:
        """Publish and wait for the acknowledgement on the store's own reply subscription.

        Cheaper than ``nc.request`` (random bytes for each reply token, a callback and a
        ``wait_for`` per call): with 64 appends in flight, a fifth less client CPU per append.
        The timeout is a deadline checked by ``_expire_overdue``, not a timer per request.
        """
        if self._ack_sub is None:
            await self.open()
        token = str(next(self._ack_tokens))
        loop = asyncio.get_running_loop()
        ack: asyncio.Future[Msg] = loop.create_future()
        self._acks[token] = (ack, loop.time() + self.timeout)
        self._watch_deadlines()
        try:
            await self.nc.publish(subject, data, reply=f"{self._ack_prefix}.{token}", headers=headers)
            reply = await ack
        finally:
            del self._acks[token]
        if reply.headers and reply.headers.get(_STATUS) == "503":
            raise NoRespondersError
        return reply

    async def _on_ack(self, msg: Msg) -> None:
        waiting = self._acks.get(msg.subject[len(self._ack_prefix) + 1 :])
        if waiting is not None and not waiting[0].done():
            waiting[0].set_result(msg)

    def _watch_deadlines(self) -> None:
        if self._deadlines is None or self._deadlines.done():
            self._deadlines = asyncio.get_running_loop().create_task(
                self._expire_overdue(), name="event-store-deadlines"
            )

    async def _expire_overdue(self) -> None:
        """Fail appends and reads past their deadline with ``TimeoutError``, until none is waiting.

        One task for every request instead of a timer per request: ``asyncio.timeout`` and
        ``wait_for`` (a timer handle, a heap push and a cancellation each, twice per
        command) took about a tenth of the service's CPU per SendInMail in a profile.
        A deadline is noticed within ``_DEADLINE_TICK`` seconds.
        """
        loop = asyncio.get_running_loop()
        while self._acks or self._reads:
            await asyncio.sleep(_DEADLINE_TICK)
            now = loop.time()
            # set_exception only schedules the waiters: neither dict changes while we iterate.
            for ack, deadline in self._acks.values():
                if deadline <= now and not ack.done():
                    ack.set_exception(TimeoutError())
            for pending in self._reads.values():
                if pending.deadline <= now and not pending.done.done():
                    pending.done.set_exception(TimeoutError())

    async def _resolve(self, writes: Sequence[Write], count: int, reason: str) -> Appended:
        """Turn an unknown outcome into a known one.

        Re-send the same messages (same ids, same expected versions): if the first
        attempt was stored, the server reports a duplicate or a wrong last sequence,
        and reading the aggregate finds our own first message there.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.resolve_timeout
        while loop.time() < deadline:
            await self._wait_connected(deadline)
            try:
                return await self._send(writes, count)
            except (WrongExpectedVersion, AppendRejected) as refused:
                # A stored batch sent again is refused as a duplicate, not as a conflict.
                if isinstance(refused, AppendRejected) and refused.err_code != _BATCH_DUPLICATE:
                    raise
                try:
                    found = await self._find_own(writes, count)
                except StoreUnavailable:
                    # Still unknown: StoreUnavailable would claim that nothing was stored.
                    await asyncio.sleep(0.1)
                    continue
                if found is not None:
                    return found
                raise
            except (_Unknown, StoreUnavailable):
                await asyncio.sleep(0.1)
        raise OutcomeUnknown(f"append outcome unknown after {self.resolve_timeout:.0f}s ({reason})")

    async def _find_own(self, writes: Sequence[Write], count: int) -> Appended | None:
        first = writes[0]
        stored = await self.read_subject(first.subject, after=first.expected_version, limit=count)
        if stored and stored[0].msg_id == first.messages[0].msg_id:
            # An atomic batch is contiguous in the stream.
            return Appended(tuple(range(stored[0].seq, stored[0].seq + count)))
        return None

    async def _wait_connected(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while not self.nc.is_connected:
            if self.nc.is_closed:
                raise OutcomeUnknown("connection closed with an append outcome unknown")
            if loop.time() >= deadline:
                return
            await asyncio.sleep(0.05)

    # ------------------------------------------------------------------ reads

    async def read_subject(
        self, subject: str, *, after: int = 0, limit: int | None = None
    ) -> list[StoredMessage]:
        """An aggregate's messages with sequence > ``after``, by batch direct get (no consumer)."""
        result: list[StoredMessage] = []
        start = after + 1
        while True:
            want = self.read_batch if limit is None else min(self.read_batch, limit - len(result))
            if want <= 0:
                return result
            page, pending = await self._direct_batch(
                {"batch": want, "seq": start, "next_by_subj": subject}
            )
            result.extend(page)
            if not page or pending == 0:
                return result
            start = page[-1].seq + 1

    async def last_seq_of(self, subject: str) -> int:
        """The sequence of the last message on ``subject`` (0 when there is none).

        The cheap way to ask "is anything newer than what I hold?": the server answers
        from its per-subject index. ``read_subject`` from a sequence instead scans the
        stream's blocks after it for the subject, and a catch-up that finds nothing
        still pays that scan: measured, it kept the nats-server at a full core under
        1,000 SendInMail/s once the blocks after the recipients' last events had left
        its cache (``docs/benchmarks.md``).
        """
        page, _ = await self._direct_batch({"multi_last": [subject], "batch": 1})
        return page[-1].seq if page else 0

    async def read_range(
        self, start: int, *, filter_subject: str | None = None, limit: int | None = None
    ) -> list[StoredMessage]:
        """Up to ``limit`` (default one read batch) stored messages from sequence ``start`` on."""
        request: dict[str, Any] = {"batch": limit or self.read_batch, "seq": start}
        request["next_by_subj"] = filter_subject or ">"
        page, _ = await self._direct_batch(request)
        return page

    async def get(self, seq: int) -> StoredMessage | None:
        """One message by stream sequence, or None when there is none (deleted, or beyond the end)."""
        page, _ = await self._direct_batch({"batch": 1, "seq": seq})
        return page[0] if page and page[0].seq == seq else None

    async def last_message(self, subject: str) -> StoredMessage | None:
        """The last stored message on ``subject`` (wildcards allowed), or None when there is none."""
        # A single direct get answers with the message itself or a status, never an end marker,
        # so it cannot go through the batch reader.
        try:
            reply = await self.nc.request(
                self._direct_subject,
                msgspec.json.encode({"last_by_subj": subject}),
                timeout=self.timeout,
            )
        except (OutboundBufferLimitError, NoRespondersError, TimeoutError) as exc:
            raise StoreUnavailable(f"event store read failed: {type(exc).__name__}") from exc
        headers = reply.headers or {}
        status = headers.get(_STATUS)
        if status == "404":
            return None
        if status:
            raise StoreUnavailable(f"event store read failed with status {status}")
        return StoredMessage(
            seq=int(headers["Nats-Sequence"]),
            subject=headers["Nats-Subject"],
            data=reply.data,
            headers=headers,
        )

    async def _direct_batch(self, request: dict[str, Any]) -> tuple[list[StoredMessage], int]:
        await self.open()
        token = str(next(self._read_tokens))
        loop = asyncio.get_running_loop()
        pending = _PendingRead(loop, loop.time() + self.timeout)
        self._reads[token] = pending
        self._watch_deadlines()
        try:
            await self.nc.publish(
                self._direct_subject,
                msgspec.json.encode(request),
                reply=f"{self._read_prefix}.{token}",
            )
            await pending.done
        except (TimeoutError, OutboundBufferLimitError, NoRespondersError) as exc:
            raise StoreUnavailable(f"event store read failed: {type(exc).__name__}") from exc
        finally:
            self._reads.pop(token, None)
        if pending.status not in ("204", "404"):
            raise StoreUnavailable(f"event store read failed with status {pending.status}")
        return pending.messages, pending.pending

    async def _on_read_reply(self, msg: Msg) -> None:
        token = msg.subject.rsplit(".", 1)[-1]
        pending = self._reads.get(token)
        if pending is None or pending.done.done():
            return
        headers = msg.headers or {}
        status = headers.get(_STATUS)
        if status:
            pending.status = status
            pending.pending = int(headers.get("Nats-Num-Pending", "0") or 0)
            pending.done.set_result(None)
            return
        pending.messages.append(
            StoredMessage(
                seq=int(headers["Nats-Sequence"]),
                subject=headers["Nats-Subject"],
                data=msg.data,
                headers=headers,
            )
        )

    async def last_seq(self) -> int:
        """The stream's last sequence (0 when empty)."""
        try:
            info = await self.js.stream_info(self.spec.name)
        except (NatsTimeoutError, NoRespondersError, OutboundBufferLimitError) as exc:
            raise StoreUnavailable(f"stream info unavailable: {type(exc).__name__}") from exc
        return int(info.state.last_seq)

    async def stream_info(self) -> js_api.StreamInfo:
        return await self.js.stream_info(self.spec.name)

    async def follow(
        self, start: int = 1, *, filter_subject: str | None = None, until: int | None = None
    ) -> AsyncGenerator[StoredMessage, None]:
        """Messages from ``start`` in stream order, live; see ``follow_batches``."""
        pages = self.follow_batches(start, filter_subject=filter_subject, until=until)
        async with contextlib.aclosing(pages):
            async for page in pages:
                for message in page:
                    yield message

    async def follow_batches(
        self,
        start: int = 1,
        *,
        filter_subject: str | None = None,
        until: int | None = None,
        batch: int = 1000,
        expires: float = 2.0,
    ) -> AsyncGenerator[list[StoredMessage], None]:
        """Stored messages from ``start`` on, in stream order, live, in pages of at most ``batch``.

        Through an ephemeral pull consumer with one pull request outstanding at a
        time: the server sends only what was asked for, so a slow reader never
        overflows a buffer and loses messages (a push consumer would keep pushing,
        and nats-py drops what its pending queue cannot hold). Core-NATS
        subscribers also see messages of batches that were then rejected; a
        consumer sees only what the stream stored. Ends after ``until`` if given.
        A consumer lost to a server restart is created again where it stopped.
        """
        if until is not None and until < start:
            return
        subject = filter_subject or _all_subjects(self.spec)
        follower = _PullFollower(self, max(start, 1), subject, batch, expires)
        try:
            while True:
                page = await follower.next_page()
                if until is not None and page and page[-1].seq >= until:
                    yield [m for m in page if m.seq <= until]
                    return
                if page:
                    yield page
        finally:
            await follower.close()


class _PullFollower:
    """One reader's ephemeral pull consumer and its single outstanding pull request.

    Messages are handled in the subscription callback, straight into the page being
    filled: no queue hop per message (that hop cost half the read rate).
    """

    def __init__(
        self, store: JetStreamEventStore, start: int, subject: str, batch: int, expires: float
    ) -> None:
        self.store = store
        self.next_seq = start
        self.subject = subject
        self.batch = batch
        self.expires = expires
        self.consumer = ""
        self.inbox = ""
        self.sub: Subscription | None = None
        self.page: list[StoredMessage] = []
        self.outstanding = 0
        """Messages the current pull request may still deliver (0: none outstanding)."""
        self.failed = False
        self.arrived = asyncio.Event()
        self.requested_at = 0.0

    async def next_page(self) -> list[StoredMessage]:
        """What arrived for the outstanding request; waits for at least one message or its end."""
        if self.sub is None:
            await self._create()
        if self.outstanding == 0 and not self.page:
            await self._pull()
        while not self.page and self.outstanding and not self.failed:
            self.arrived.clear()
            wait = self.requested_at + self.expires + 2.0 - asyncio.get_running_loop().time()
            try:
                # asyncio.timeout, not wait_for: on Python 3.11, wait_for can swallow a
                # cancellation that arrives as the event is set, and the follower then
                # kept reconnecting to a server that was gone instead of stopping.
                async with asyncio.timeout(max(wait, 0.01)):
                    await self.arrived.wait()
            except TimeoutError:
                # Neither messages nor the server's end-of-request status: the consumer
                # is gone (a server restart) or the connection dropped.
                self.failed = True
        page, self.page = self.page, []
        if self.failed:
            await self._recreate()
        return page

    async def _on_message(self, msg: Msg) -> None:
        headers = msg.headers
        status = headers.get(_STATUS) if headers else None
        if status is not None:
            if status == "100":
                return  # heartbeat
            self.outstanding = 0
            # 404/408: the request ended empty or expired; anything else (409: consumer
            # deleted, leadership change, ...) means following again from here.
            self.failed = status not in ("404", "408")
            self.arrived.set()
            return
        self.outstanding -= 1
        seq = _stream_seq(msg.reply)
        if seq >= self.next_seq:
            message = StoredMessage(seq=seq, subject=msg.subject, data=msg.data, headers=headers or {})
            self.page.append(message)
            self.next_seq = seq + 1
            if len(self.page) == 1 or not self.outstanding:
                self.arrived.set()

    async def _create(self) -> None:
        nc = self.store.nc
        self.failed = False
        self.outstanding = 0
        self.page = []
        inbox = nc.new_inbox()
        self.sub = await nc.subscribe(inbox, cb=self._on_message)
        config = {
            "stream_name": self.store.spec.name,
            "config": {
                "deliver_policy": "by_start_sequence",
                "opt_start_seq": self.next_seq,
                "ack_policy": "none",
                "filter_subject": self.subject,
                "inactive_threshold": 30_000_000_000,
                "mem_storage": True,
                "num_replicas": 1,
                "max_waiting": 1,
            },
        }
        api = f"$JS.API.CONSUMER.CREATE.{self.store.spec.name}"
        try:
            reply = await nc.request(api, msgspec.json.encode(config), timeout=self.store.timeout)
        except (NatsTimeoutError, NoRespondersError, OutboundBufferLimitError) as exc:
            await self.close()
            raise StoreUnavailable(f"cannot follow the stream: {type(exc).__name__}") from exc
        created = msgspec.json.decode(reply.data, type=_ConsumerCreated)
        if created.error is not None:
            await self.close()
            raise StoreUnavailable(f"cannot follow the stream: {created.error.description}")
        self.consumer = created.name
        self.inbox = inbox

    async def _pull(self) -> None:
        request = {"batch": self.batch, "expires": int(self.expires * 1e9)}
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{self.store.spec.name}.{self.consumer}"
        self.outstanding = self.batch
        self.requested_at = asyncio.get_running_loop().time()
        await self.store.nc.publish(subject, msgspec.json.encode(request), reply=self.inbox)

    async def _recreate(self) -> None:
        await self.close()
        while True:
            try:
                await self._create()
                return
            except StoreUnavailable:
                stop_if_cancelled()
                await asyncio.sleep(0.5)

    async def close(self) -> None:
        sub, self.sub = self.sub, None
        consumer, self.consumer = self.consumer, ""
        self.outstanding = 0
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        if consumer and self.store.nc.is_connected:
            with contextlib.suppress(Exception):
                await self.store.nc.publish(f"$JS.API.CONSUMER.DELETE.{self.store.spec.name}.{consumer}", b"")


def stop_if_cancelled() -> None:
    """Raise ``CancelledError`` when the current task was asked to stop.

    For retry loops: on Python 3.11, ``asyncio.wait_for`` (which nats-py's requests use)
    can turn a cancellation that coincides with its timeout into ``TimeoutError``, and a
    loop retrying on that error would never stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _stream_seq(reply: str) -> int:
    # $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>, or
    # the v2 form with domain and account hash after ACK (and possibly a trailing token).
    tokens = reply.split(".")
    return int(tokens[5] if len(tokens) == 9 else tokens[7])


class _ConsumerCreated(msgspec.Struct):
    name: str = ""
    error: _ApiError | None = None


class _Unknown(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def _all_subjects(spec: StreamSpec) -> str:
    return spec.subjects[0] if len(spec.subjects) == 1 else ">"


def _actual_from(description: str) -> int | None:
    # "wrong last sequence: 42"
    _, _, tail = description.rpartition(":")
    tail = tail.strip()
    return int(tail) if tail.isdigit() else None


_CHECKED_FIELDS: tuple[tuple[str, str], ...] = (
    ("subjects", "subjects"),
    ("storage", "storage"),
    ("retention", "retention"),
    ("allow_atomic", "atomic batch publish"),
    ("allow_direct", "direct get"),
    ("max_msgs_per_subject", "messages per subject"),
    ("max_age", "maximum age"),
    ("discard", "discard policy"),
)


def _incompatibilities(have: js_api.StreamConfig, want: js_api.StreamConfig) -> list[str]:
    problems = []
    for attr, label in _CHECKED_FIELDS:
        current, wanted = getattr(have, attr), getattr(want, attr)
        if attr == "subjects":
            current, wanted = sorted(current or []), sorted(wanted or [])
        if attr == "max_age":
            current, wanted = current or 0, wanted or 0
        if current != wanted:
            problems.append(f"{label} is {_show(current)}, needs {_show(wanted)}")
    return problems


def _show(value: object) -> str:
    return str(getattr(value, "value", value))
