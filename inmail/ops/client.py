"""What every operator command shares: connecting, asking the service, the stream's info."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import TypeVar

from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import StreamInfo
from nats.js.errors import NotFoundError

from contracts import subjects
from eventstore import JetStreamEventStore, NatsUnreachable, StreamSpec, connect
from inmail.client import InMailClient, InMailError, NoAnswer

T = TypeVar("T")

REQUEST_TIMEOUT = 10.0
"""Longer than a query's own 5 s wait for ``min_seq``, so its UNAVAILABLE gets through."""


class OperatorError(Exception):
    """A one-line message for the operator; the command exits non-zero."""


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


@asynccontextmanager
async def service(nc: NATS) -> AsyncIterator[InMailClient]:
    """The service's client on the command's connection: one attempt per request, no retries.

    An operator wants to know at once that nothing answers, not after a retry deadline.
    """
    client = await InMailClient.over(nc, deadline=0, attempt_timeout=REQUEST_TIMEOUT)
    try:
        yield client
    finally:
        await client.close()


async def ask(client: InMailClient, answer: Awaitable[T], subject: str) -> T:
    """The answer to a call of ``client`` on ``subject``; a refusal or silence is an ``OperatorError``."""
    try:
        return await answer
    except InMailError as exc:
        raise refused(client, exc, subject) from exc


def refused(client: InMailClient, exc: InMailError, subject: str) -> OperatorError:
    """The operator's one line for a refusal of (or no answer to) a request on ``subject``."""
    if isinstance(exc, NoAnswer):
        return OperatorError(f"{exc.message} at {server_of(client.nc)}: is `inmail serve` running there?")
    return OperatorError(f"{subject} answered {exc.code}: {exc.message}")


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
