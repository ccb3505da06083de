"""JetStream's stream snapshot and restore, over plain requests (nats-py has no helper for them).

The protocol ``nats stream backup`` and ``nats stream restore`` use:

- Snapshot: a request on ``$JS.API.STREAM.SNAPSHOT.<stream>`` names a deliver
  subject; the answer carries the stream's configuration and state, then the
  server sends the snapshot (an s2-compressed tar of the stream's files) to that
  subject in chunks. A chunk with a reply subject must be acknowledged there (an
  empty message): the server keeps only a window of unacknowledged chunks in
  flight and gives up after 5 s without an acknowledgement. An empty message ends
  it: no status or 204 when complete, 408 or 500 with a description when not.
- Restore: a request on ``$JS.API.STREAM.RESTORE.<stream>`` with that configuration
  and state is answered with a subject to send the chunks to, each as a request
  (the empty answer is the acknowledgement, a JSON error the failure); an empty
  request ends it and is answered with the restored stream's info or an error.
  The server refuses to restore over an existing stream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, TypeVar

import msgspec
from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

CHUNK = 128 * 1024
"""Bytes per chunk, both ways (JetStream's default snapshot chunk)."""

API_TIMEOUT = 10.0
CHUNK_TIMEOUT = 30.0
"""A snapshot may first check every block; a restore writes each chunk before it answers."""
FINISH_TIMEOUT = 300.0
"""The end of a restore is answered once the whole stream is rebuilt from the chunks."""

Progress = Callable[[int], object]
_A = TypeVar("_A")


class SnapshotFailed(Exception):
    """A snapshot or restore that JetStream refused or broke off; one line."""


class SnapshotHeader(msgspec.Struct, frozen=True):
    """The stream's configuration and state as the snapshot answered them: what a restore sends back."""

    config: msgspec.Raw
    state: msgspec.Raw


class StreamState(msgspec.Struct, frozen=True):
    """The parts of a stream's state a backup reports."""

    messages: int = 0
    bytes: int = 0
    first_seq: int = 0
    last_seq: int = 0


class _ApiError(msgspec.Struct, frozen=True):
    code: int = 0
    err_code: int = 0
    description: str = ""


_MISSING = msgspec.Raw(b"null")


class _SnapshotAnswer(msgspec.Struct, frozen=True):
    config: msgspec.Raw = _MISSING
    state: msgspec.Raw = _MISSING
    error: _ApiError | None = None


class _RestoreAnswer(msgspec.Struct, frozen=True):
    deliver_subject: str = ""
    error: _ApiError | None = None


class _Restored(msgspec.Struct, frozen=True):
    state: StreamState | None = None
    error: _ApiError | None = None


async def snapshot(nc: NATS, stream: str, sink: IO[bytes], progress: Progress) -> SnapshotHeader:
    """Write a snapshot of ``stream`` (without consumers) to ``sink``; its configuration and state."""
    inbox = nc.new_inbox()
    # Subscribed before asking: the server sends the first chunks right after its answer.
    chunks = await nc.subscribe(inbox)
    try:
        request = {"deliver_subject": inbox, "no_consumers": True, "chunk_size": CHUNK}
        answer = await _ask(nc, f"$JS.API.STREAM.SNAPSHOT.{stream}", request, _SnapshotAnswer)
        if answer.error is not None or _MISSING in (answer.config, answer.state):
            raise SnapshotFailed(f"JetStream refused to snapshot {stream}: {_describe(answer.error)}")
        while True:
            try:
                chunk = await chunks.next_msg(timeout=CHUNK_TIMEOUT)
            except (NatsTimeoutError, TimeoutError) as exc:
                raise SnapshotFailed(
                    f"the snapshot of {stream} stalled: no data for {CHUNK_TIMEOUT:g}s"
                ) from exc
            if not chunk.data:
                status = (chunk.headers or {}).get("Status", "204")
                if status != "204":
                    description = (chunk.headers or {}).get("Description", "")
                    broke_off = f"the snapshot of {stream} broke off: {status} {description}"
                    raise SnapshotFailed(broke_off.rstrip())
                return SnapshotHeader(config=answer.config, state=answer.state)
            sink.write(chunk.data)
            progress(len(chunk.data))
            if chunk.reply:
                await nc.publish(chunk.reply, b"")
    finally:
        await chunks.unsubscribe()


async def restore_stream(
    nc: NATS, stream: str, header: SnapshotHeader, source: IO[bytes], progress: Progress
) -> StreamState:
    """Create ``stream`` from a snapshot read from ``source``; the restored stream's state."""
    answer = await _ask(nc, f"$JS.API.STREAM.RESTORE.{stream}", header, _RestoreAnswer)
    if answer.error is not None or not answer.deliver_subject:
        raise SnapshotFailed(f"JetStream refused to restore {stream}: {_describe(answer.error)}")
    while chunk := source.read(CHUNK):
        ack = await _send(nc, answer.deliver_subject, chunk, CHUNK_TIMEOUT, stream)
        if ack:
            failed = msgspec.json.decode(ack, type=_Restored)
            raise SnapshotFailed(f"JetStream refused the snapshot of {stream}: {_describe(failed.error)}")
        progress(len(chunk))
    restored = msgspec.json.decode(
        await _send(nc, answer.deliver_subject, b"", FINISH_TIMEOUT, stream), type=_Restored
    )
    if restored.error is not None or restored.state is None:
        raise SnapshotFailed(f"JetStream could not restore {stream}: {_describe(restored.error)}")
    return restored.state


async def _ask(nc: NATS, subject: str, request: object, answer: type[_A]) -> _A:
    reply = await _send(nc, subject, msgspec.json.encode(request), API_TIMEOUT, subject.rsplit(".", 1)[1])
    return msgspec.json.decode(reply, type=answer)


async def _send(nc: NATS, subject: str, data: bytes, timeout: float, stream: str) -> bytes:  # noqa: ASYNC109
    try:
        return (await nc.request(subject, data, timeout=timeout)).data
    except NoRespondersError as exc:
        raise SnapshotFailed(f"JetStream does not answer for {stream} on this NATS server") from exc
    except (NatsTimeoutError, TimeoutError) as exc:
        raise SnapshotFailed(f"JetStream did not answer for {stream} within {timeout:g}s") from exc


def _describe(error: _ApiError | None) -> str:
    if error is None:
        return "no reason given"
    return f"{error.description} (error {error.err_code or error.code})"
