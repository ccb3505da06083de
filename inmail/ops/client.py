"""What every operator command shares: connecting, asking the service, the stream's info."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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
    seq: int = 0
    error: ErrorBody | None = None


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[NATS]:
    """A NATS connection for one command; an unreachable server is an ``OperatorError``."""
    try:
        nc = await connect(url, name="inmail-operator")
    except NatsUnreachable as exc:
        raise OperatorError(str(exc)) from exc
    try:
        yield nc
    finally:
        await nc.close()


async def ask(nc: NATS, subject: str, request: object, answer: type[T]) -> T:
    """Send a request to the service; its reply's data as ``answer``, or an ``OperatorError``."""
    data, _ = await ask_to_write(nc, subject, request, answer)
    return data


async def ask_to_write(nc: NATS, subject: str, request: object, answer: type[T]) -> tuple[T, int]:
    """``ask`` for a request that writes: its reply's data and the sequence of what it wrote."""
    timeout = REQUEST_TIMEOUT
    try:
        reply = await nc.request(subject, msgspec.json.encode(request), timeout=timeout)
    except NoRespondersError as exc:
        raise OperatorError(
            f"no InMail service answers on {subject} at {server_of(nc)}: is `inmail serve` running there?"
        ) from exc
    except (NatsTimeoutError, TimeoutError) as exc:
        raise OperatorError(f"no answer on {subject} at {server_of(nc)} within {timeout:g}s") from exc
    try:
        envelope = msgspec.json.decode(reply.data, type=_Envelope)
        if not envelope.ok:
            error = envelope.error or ErrorBody("UNAVAILABLE", "no error given")
            raise OperatorError(f"{subject} answered {error.code}: {error.message}")
        return msgspec.json.decode(envelope.data, type=answer), envelope.seq
    except msgspec.DecodeError as exc:
        raise OperatorError(f"{subject} answered something unreadable: {exc}") from exc


async def stream_info(nc: NATS, stream: str) -> StreamInfo:
    """The event stream's info from JetStream; a missing stream is an ``OperatorError``."""
    try:
        return await nc.jetstream(timeout=5).stream_info(stream)
    except NotFoundError as exc:
        raise OperatorError(
            f"stream {stream} does not exist on the NATS server at {server_of(nc)}: "
            "is this the server `inmail serve` uses?"
        ) from exc
    except (NoRespondersError, NatsTimeoutError, TimeoutError) as exc:
        raise OperatorError(f"JetStream does not answer on the NATS server at {server_of(nc)}") from exc


def server_of(nc: NATS) -> str:
    """The URL of the server a connection talks to, for messages that must name it."""
    url = nc.connected_url
    return f"{url.scheme}://{url.netloc}" if url is not None else "(not connected)"


def events_store(nc: NATS, stream: str) -> JetStreamEventStore:
    """The event stream, to read from."""
    return JetStreamEventStore(nc, StreamSpec(name=stream, subjects=(subjects.EVENTS_ALL,)))


def check_from_seq(from_seq: int) -> None:
    """Refuse a ``--from-seq`` below 1: stream sequences start at 1."""
    if from_seq < 1:
        raise OperatorError(f"--from-seq must be 1 or more, not {from_seq}")
