"""What every operator command shares: connecting, asking the service, the stream's info."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import msgspec
from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import StreamInfo
from nats.js.errors import NotFoundError

from contracts import subjects
from contracts.replies import ErrorBody
from eventstore import JetStreamEventStore, NatsUnreachable, StreamSpec, connect

T = TypeVar("T")

REQUEST_TIMEOUT = 10.0
"""Longer than a query's own 5 s wait for ``min_seq``, so its UNAVAILABLE gets through."""


class OperatorError(Exception):
    """A one-line message for the operator; the command exits non-zero."""


class _Envelope(msgspec.Struct):
    ok: bool
    data: msgspec.Raw = msgspec.Raw(b"null")
    as_of_seq: int = 0
    error: ErrorBody | None = None


@asynccontextmanager
async def connected(url: str, creds: Path | None = None) -> AsyncIterator[NATS]:
    """A NATS connection for one command; an unreachable server is an ``OperatorError``."""
    try:
        nc = await connect(url, name="inmail-operator", creds=creds)
    except NatsUnreachable as exc:
        raise OperatorError(str(exc)) from exc
    try:
        yield nc
    finally:
        await nc.close()


async def ask(nc: NATS, subject: str, request: object, answer: type[T]) -> T:
    """Send a request to the service; its reply's data as ``answer``, or an ``OperatorError``."""
    timeout = REQUEST_TIMEOUT
    try:
        reply = await nc.request(subject, msgspec.json.encode(request), timeout=timeout)
    except NoRespondersError as exc:
        raise OperatorError(
            f"no InMail service answers on {subject}: is `inmail serve` running on this NATS server?"
        ) from exc
    except (NatsTimeoutError, TimeoutError) as exc:
        raise OperatorError(f"no answer on {subject} within {timeout:g}s") from exc
    try:
        envelope = msgspec.json.decode(reply.data, type=_Envelope)
        if not envelope.ok:
            error = envelope.error or ErrorBody("UNAVAILABLE", "no error given")
            raise OperatorError(f"{subject} answered {error.code}: {error.message}")
        return msgspec.json.decode(envelope.data, type=answer)
    except msgspec.DecodeError as exc:
        raise OperatorError(f"{subject} answered something unreadable: {exc}") from exc


async def stream_info(nc: NATS, stream: str) -> StreamInfo:
    """The event stream's info from JetStream; a missing stream is an ``OperatorError``."""
    try:
        return await nc.jetstream(timeout=5).stream_info(stream)
    except NotFoundError as exc:
        raise OperatorError(f"stream {stream} does not exist on this NATS server") from exc
    except (NoRespondersError, NatsTimeoutError, TimeoutError) as exc:
        raise OperatorError("JetStream does not answer on this NATS server") from exc


def events_store(nc: NATS, stream: str) -> JetStreamEventStore:
    """The event stream, to read from."""
    return JetStreamEventStore(nc, StreamSpec(name=stream, subjects=(subjects.EVENTS_ALL,)))


def check_from_seq(from_seq: int) -> None:
    """Refuse a ``--from-seq`` below 1: stream sequences start at 1."""
    if from_seq < 1:
        raise OperatorError(f"--from-seq must be 1 or more, not {from_seq}")
