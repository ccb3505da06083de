"""The async event store: one JetStream stream, one subject per aggregate.

A subject's last stream sequence is its aggregate's version. Appends carry
``Nats-Expected-Last-Subject-Sequence`` (optimistic concurrency) and
``Nats-Msg-Id`` (the event id, so a retried append is dropped by the server).
Several messages are written with JetStream's atomic batch publish: all or none.
This module holds the set-up and the appends; the reads are in ``eventstore.reads``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Sequence

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import (
    BadHeaderError,
    BadSubjectError,
    MaxPayloadError,
    NoRespondersError,
    OutboundBufferLimitError,
)
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import api as js_api
from nats.js.errors import BadRequestError, NotFoundError

from eventstore.errors import (
    AppendRejected,
    OutcomeUnknown,
    StoreUnavailable,
    StreamConfigMismatch,
    StreamReplaced,
    WrongExpectedVersion,
)
from eventstore.identity import ID_KEY
from eventstore.messages import Appended, NewMessage, Write
from eventstore.reads import StreamReads
from eventstore.spec import StreamSpec, incompatibilities
from eventstore.wire import BATCH_DUPLICATE, MAX_BATCH, decode_ack

_STREAM_NAME_IN_USE = 10058
"""A stream of that name exists with another configuration."""

_CONFLICT_CODES = frozenset({10071, 10164})
"""Wrong last sequence; 10164 is what a concurrent in-flight write on R3 (and a batch) reports."""


class JetStreamEventStore(StreamReads):
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
        super().__init__(nc, spec, timeout, read_batch)
        self.resolve_timeout = resolve_timeout
        self.replaced: str | None = None
        self._acked = 0
        """The highest sequence an append was acknowledged at: a later append acknowledged at or
        below it went to another stream of the same name."""

    async def ensure_stream(self) -> js_api.StreamInfo:
        """Create the stream if it is missing; refuse to use one configured incompatibly."""
        wanted = self.spec.to_config()
        info = await self.info_or_none()
        if info is None:
            # An id of its own in the metadata: what tells this stream from a later one of the
            # same name (``eventstore.identity``).
            minted = dataclasses.replace(wanted, metadata={ID_KEY: uuid.uuid4().hex})
            try:
                return await self.js.add_stream(minted)
            except BadRequestError as exc:
                if exc.err_code != _STREAM_NAME_IN_USE:
                    raise
                # Another process created it first (with an id of its own): that one it is.
                info = await self.js.stream_info(self.spec.name)
        problems = incompatibilities(info.config, wanted)
        if problems:
            raise StreamConfigMismatch(
                f"stream {self.spec.name} exists with an incompatible configuration: "
                + "; ".join(problems)
                + " (change it deliberately with the nats CLI, or use another stream name)"
            )
        return info

    @property
    def acked_seq(self) -> int:
        """The highest sequence an append of this store was acknowledged at (0: none yet)."""
        return self._acked

    async def info_or_none(self) -> js_api.StreamInfo | None:
        """The stream's configuration and state, or None when it does not exist."""
        try:
            return await self.js.stream_info(self.spec.name)
        except NotFoundError:
            return None

    def refuse(self, reason: str) -> None:
        """Append nothing more: the stream was replaced under the store (the first reason stays)."""
        if self.replaced is None:
            self.replaced = reason

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
        if self.replaced is not None:
            raise StreamReplaced(self.replaced)
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
        floor = self._acked
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
        ack = decode_ack(reply.data)
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
        if last <= floor and not ack.duplicate:
            # Sent after an append was acknowledged at ``floor``, so stored after it: a
            # sequence that went back means another stream took this one's name.
            self.refuse(
                f"stream {self.spec.name} was replaced: an append was acknowledged at seq {last} "
                f"after one at seq {floor}"
            )
            raise StreamReplaced(self.replaced or "")
        self._acked = max(self._acked, last)
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

    # ------------------------------------------------------------------ unknown outcomes

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
                if isinstance(refused, AppendRejected) and refused.err_code != BATCH_DUPLICATE:
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


class _Unknown(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def _actual_from(description: str) -> int | None:
    # "wrong last sequence: 42"
    _, _, tail = description.rpartition(":")
    tail = tail.strip()
    return int(tail) if tail.isdigit() else None
