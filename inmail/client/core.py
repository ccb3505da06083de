"""What every client method shares: checking arguments, sending with retries, typed replies.

A request is retried while its outcome is unknown or ``UNAVAILABLE`` (nothing
recorded), with the same body and so the same ``command_id``: the service answers
a repeat from what the first attempt recorded, so a retried command never acts
twice. Refusals are final and raise ``InMailError``.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import random
import re
import secrets
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

import msgspec
import nats.errors
from nats.aio.client import Client as NATS

from contracts import subjects
from contracts.commands import Command
from contracts.events import Event
from contracts.policy import CURRENT_POLICY
from contracts.queries import Query
from inmail.client.errors import InMailError, NoAnswer
from inmail.client.events import ACK_WAIT, Events
from inmail.client.transport import Requester

DEADLINE = 30.0
"""Seconds during which a request whose outcome is unknown is sent again."""
ATTEMPT_TIMEOUT = 5.0
"""Seconds an attempt waits for its answer (a query's ``min_seq`` wait is 5 s on the service)."""
FIRST_PAUSE = 0.05
MAX_PAUSE = 2.0

T = TypeVar("T")
R = TypeVar("R")
S = TypeVar("S", bound=msgspec.Struct)

_DISCONNECTED = (
    nats.errors.OutboundBufferLimitError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
)
"""What a request meets while the connection is being re-established."""


class Written(Protocol):
    """A command's reply: its data's fields and ``seq``, the stream sequence that records it."""

    @property
    def seq(self) -> int: ...


class Answered(Protocol):
    """A query's answer: its data's fields and ``as_of_seq``, the read model's position."""

    @property
    def as_of_seq(self) -> int: ...


@dataclass(slots=True)
class Stats:
    """Counts of one client (shared with the views ``after`` makes)."""

    requests: int = 0
    retries: int = 0


class _Error(msgspec.Struct, frozen=True):
    # ``code`` as a plain string, not ``ErrorCode``: a newer service's new code must
    # still reach the caller as a refusal, not fail the decoding of the reply.
    code: str
    message: str = ""


class _Envelope(msgspec.Struct, Generic[T], frozen=True):
    ok: bool
    data: T | None = None
    seq: int = 0
    as_of_seq: int = 0
    error: _Error | None = None


class Core:
    """A connection to the service; the typed methods are generated in ``methods.py``."""

    results: ClassVar[Mapping[type[msgspec.Struct], type[msgspec.Struct]]] = MappingProxyType({})
    """The result type of each command, query and operator request (set by ``Methods``)."""

    def __init__(
        self,
        nc: NATS,
        requester: Requester,
        *,
        owns_connection: bool,
        deadline: float = DEADLINE,
        attempt_timeout: float = ATTEMPT_TIMEOUT,
    ) -> None:
        self.nc = nc
        self.deadline = deadline
        self.attempt_timeout = attempt_timeout
        self.stats = Stats()
        self._requester = requester
        self._owns_connection = owns_connection
        self._min_seq = 0
        self._command_ids = _command_ids()
        self._encoder = msgspec.json.Encoder()
        self._decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}

    # Views sharing the connection ---------------------------------------------

    def after(self, written: Written | int) -> Self:
        """This client with its queries waiting until the read model includes ``written`` (reply or seq)."""
        view = copy.copy(self)
        view._min_seq = max(self._min_seq, written if isinstance(written, int) else written.seq)
        return view

    def within(self, deadline: float) -> Self:
        """This client with another retry deadline (0: one attempt per request)."""
        view = copy.copy(self)
        view.deadline = deadline
        return view

    # Any command or query, as a Struct ----------------------------------------

    async def send(self, command: Command) -> Written:
        """Send a command built by the caller; its typed reply (an ``InMailError`` on refusal)."""
        result: type[Written] = self._result_of(command)
        return await self._send(command, result)

    async def ask(self, query: msgspec.Struct) -> Answered:
        """Send a query (or an operator request) built by the caller; its typed answer."""
        result: type[Answered] = self._result_of(query)
        return await self._ask(query, result)

    def events(
        self,
        durable: str,
        *,
        from_seq: int | None = None,
        types: Collection[str | type[Event]] | None = None,
        ack_wait: float = ACK_WAIT,
        batch: int = 100,
    ) -> Events:
        """Typed events through the durable consumer ``durable``; ``ack()`` each once handled.

        A new name starts at ``from_seq`` (default: the first event); an existing
        name resumes after its last acknowledged event. ``types`` (names or event
        classes) keeps only those types; the others are acknowledged unseen.
        """
        return Events(self.nc, durable, from_seq=from_seq, types=types, ack_wait=ack_wait, batch=batch)

    # Used by the generated methods ---------------------------------------------

    async def _command(self, message: type[Command], result: type[R], /, **fields: Any) -> R:
        if fields.get("command_id") is None:
            fields["command_id"] = next(self._command_ids)
        return await self._send(_build(message, fields, "INVALID_COMMAND"), result)

    async def _query(self, message: type[msgspec.Struct], result: type[R], /, **fields: Any) -> R:
        return await self._ask(_build(message, fields, "INVALID_QUERY"), result)

    # The way of every request ---------------------------------------------------

    def _result_of(self, message: msgspec.Struct) -> Any:
        result = self.results.get(type(message))
        if result is None:
            raise TypeError(f"{type(message).__name__} is not a command or query this client knows")
        return result

    async def _send(self, command: Command, result: type[R]) -> R:
        name = type(command).__name__
        payload = self._checked(command, "INVALID_COMMAND")
        _check_texts(command)
        decode = self._reply_decoder(result, "seq")
        return await self._request(subjects.command(name), payload, decode, command.command_id)

    async def _ask(self, query: msgspec.Struct, result: type[R]) -> R:
        name = type(query).__name__
        if isinstance(query, Query):
            if self._min_seq and (query.min_seq or 0) < self._min_seq:
                query = msgspec.structs.replace(query, min_seq=self._min_seq)
            subject = subjects.query(name)
        else:
            subject = subjects.admin(name)
        payload = self._checked(query, "INVALID_QUERY")
        return await self._request(subject, payload, self._reply_decoder(result, "as_of_seq"), None)

    def _checked(self, message: msgspec.Struct, code: str) -> bytes:
        """The message's JSON, decoded with the service's own Struct: what it would refuse, refused here."""
        payload = self._encoder.encode(message)
        kind = type(message)
        decoder = self._decoders.get(kind)
        if decoder is None:
            decoder = self._decoders[kind] = msgspec.json.Decoder(kind)
        try:
            decoder.decode(payload)
        except msgspec.ValidationError as exc:
            raise InMailError(code, _explain(exc)) from None
        return payload

    def _reply_decoder(self, result: type[R], position: str) -> Callable[[bytes], R]:
        # A result class is its data Struct plus the position field: decode the data, add it.
        data_type = result.__bases__[0]
        decoder = self._decoders.get(result)
        if decoder is None:
            decoder = self._decoders[result] = msgspec.json.Decoder(_Envelope[data_type])  # type: ignore[valid-type]

        def decode(body: bytes) -> R:
            envelope = decoder.decode(body)
            if not envelope.ok or envelope.data is None:
                error = envelope.error or _Error("UNAVAILABLE", "the service gave no reason")
                raise InMailError(error.code, error.message)
            fields = msgspec.structs.asdict(envelope.data)
            fields[position] = envelope.seq if position == "seq" else envelope.as_of_seq
            return result(**fields)

        return decode

    async def _request(
        self, subject: str, payload: bytes, decode: Callable[[bytes], R], command_id: str | None
    ) -> R:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.deadline
        pause = FIRST_PAUSE
        self.stats.requests += 1
        while True:
            try:
                async with asyncio.timeout(self.attempt_timeout):
                    body = await self._requester.request(subject, payload)
                return decode(body)
            except InMailError as exc:
                if exc.code != "UNAVAILABLE":
                    raise
                problem: InMailError = exc
            except nats.errors.NoRespondersError:
                problem = NoAnswer(f"no InMail service answers on {subject}")
            except TimeoutError:
                problem = NoAnswer(f"no answer on {subject} within {self.attempt_timeout:g}s")
            except _DISCONNECTED as exc:
                problem = NoAnswer(f"NATS is not connected ({type(exc).__name__})")
            except nats.errors.ConnectionClosedError:
                raise NoAnswer("the NATS connection is closed") from None
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                raise NoAnswer(f"{subject} answered something unreadable: {exc}") from None
            if loop.time() + pause > give_up:
                if isinstance(problem, NoAnswer) and command_id is not None:
                    raise NoAnswer(
                        f"{problem.message}; it may or may not have acted: sending it again with "
                        f"command_id {command_id} is safe"
                    )
                raise problem
            self.stats.retries += 1
            # Jitter, so clients that lost the service together do not come back in step.
            await asyncio.sleep(pause * random.uniform(0.5, 1.0))
            pause = min(pause * 2, MAX_PAUSE)

    # Lifetime -------------------------------------------------------------------

    async def close(self) -> None:
        """Stop listening for replies; close the connection if this client opened it."""
        await self._requester.stop()
        if self._owns_connection:
            await self.nc.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def _command_ids() -> Iterator[str]:
    """Fresh command ids: a random 64-bit prefix per client and a counter (no system call per id)."""
    prefix = secrets.token_hex(8)
    for number in itertools.count(1):
        yield f"{prefix}-{number:x}"


def _build(kind: type[S], fields: dict[str, Any], code: str) -> S:
    try:
        return kind(**fields)
    except ValueError as exc:  # a rule of the Struct's own (``__post_init__``)
        raise InMailError(code, str(exc)) from None


def _check_texts(command: Command) -> None:
    """Section 2's limits on ``subject`` and ``body``, in the order the service checks them."""
    policy = CURRENT_POLICY
    for name, limit, code in (
        ("subject", policy.subject_max_chars, "SUBJECT_TOO_LONG"),
        ("body", policy.body_max_chars, "BODY_TOO_LONG"),
    ):
        text = getattr(command, name, None)
        if not isinstance(text, str):
            continue
        if not text.strip():
            raise InMailError("EMPTY_MESSAGE", f"the {name} is empty")
        if len(text) > limit:
            raise InMailError(code, f"the {name} has {len(text)} characters, at most {limit} allowed")


_REGEX = re.compile(r" matching regex '(?:[^'\\]|\\.)*'")


def _explain(exc: msgspec.ValidationError) -> str:
    # The contract's messages say in words what is wrong and never quote a regular expression.
    return _REGEX.sub(" in the contract's format", str(exc))
