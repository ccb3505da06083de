"""Answering queries (``inmail.query.<Query>``) and the replay request (``inmail.admin.Replay``).

Transport-free like the command executor: a raw body in, the encoded reply
envelope out, and no exception escapes. A query that names ``min_seq`` waits
until the read model it reads has applied that sequence (up to 5 s, then
``UNAVAILABLE``). Every answer carries ``as_of_seq``: the position of the read
model it came from, read in the same snapshot as the answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from contracts import replies
from contracts.admin import Replay, ReplayStarted
from contracts.queries import (
    QUERIES,
    CreditBalance,
    CreditLedger,
    EnforcementStatus,
    Health,
    HealthData,
    Inbox,
    Query,
    ResponseStats,
)
from contracts.replies import Failure, QueryOk
from eventstore import JetStreamEventStore
from projections import credits, enforcement, inbox, response_stats
from projections.base import QueryFailure
from projections.db import Tx
from projections.runner import Projections

log = logging.getLogger("inmail.queries")

Q = TypeVar("Q", bound=Query)

MIN_SEQ_TIMEOUT = 5.0
"""How long an answer waits for ``min_seq`` before it is ``UNAVAILABLE``."""

_decoders: dict[str, msgspec.json.Decoder[Any]] = {
    kind.__name__: msgspec.json.Decoder(kind) for kind in QUERIES
}
_replay_decoder = msgspec.json.Decoder(Replay)


class QueryService:
    """Decodes queries, waits for ``min_seq``, reads the right read model, replies."""

    def __init__(
        self,
        projections: Projections,
        event_store: JetStreamEventStore,
        *,
        min_seq_timeout: float = MIN_SEQ_TIMEOUT,
    ) -> None:
        self.projections = projections
        self.event_store = event_store
        self.min_seq_timeout = min_seq_timeout
        self._stream_seq = 0

    async def handle_raw(self, name: str, body: bytes) -> bytes:
        """The encoded reply to a query (or ``Replay``) named by its subject token."""
        try:
            reply = await self._handle(name, body)
        except Exception:
            log.exception("%s could not be answered", name)
            reply = replies.failure("UNAVAILABLE", f"{name} could not be answered; try again")
        return replies.encode(reply)

    async def _handle(self, name: str, body: bytes) -> QueryOk | Failure:
        # An empty body is an empty object: a bare request for Health is natural.
        body = body.strip() or b"{}"
        if name == Replay.__name__:
            return await self._replay(body)
        decoder = _decoders.get(name)
        if decoder is None:
            return replies.failure("INVALID_QUERY", f"unknown query {name}")
        try:
            query = decoder.decode(body)
        except msgspec.ValidationError as exc:
            return replies.failure("INVALID_QUERY", f"invalid {name} query: {exc}")
        except msgspec.DecodeError:
            return replies.failure("INVALID_QUERY", f"invalid {name} query: the body is not JSON")
        match query:
            case Health():
                return await self._health(query)
            case Inbox():
                return await self._read("inbox", query, inbox.query)
            case CreditBalance():
                return await self._read("credits", query, credits.balance_query)
            case CreditLedger():
                return await self._read("credits", query, credits.ledger_query)
            case ResponseStats():
                return await self._read("response_stats", query, response_stats.query)
            case EnforcementStatus():
                return await self._read("enforcement", query, enforcement.query)
        return replies.failure("INVALID_QUERY", f"unknown query {name}")

    async def _read(self, name: str, query: Q, answer: Callable[[Tx, Q], Any]) -> QueryOk | Failure:
        if name not in self.projections.names:
            return replies.failure("UNAVAILABLE", f"the {name} read model does not run in this service")
        if query.min_seq is not None and not await self._reached(query.min_seq, [name]):
            return self._not_reached(query.min_seq, name)
        try:
            data, as_of = await self.projections.read(name, lambda tx: answer(tx, query))
        except QueryFailure as failure:
            return replies.failure(failure.code, failure.message)
        except Exception as exc:
            log.warning("the %s read model could not be read: %s", name, exc)
            return replies.failure("UNAVAILABLE", f"the {name} read model could not be read; try again")
        return QueryOk(data=data, as_of_seq=as_of)

    async def _reached(self, seq: int, names: list[str] | None) -> bool:
        return await self.projections.wait_for(seq, self.min_seq_timeout, names)

    def _not_reached(self, seq: int, name: str | None) -> Failure:
        positions = self.projections.positions()
        problems = self.projections.problems()
        names = [name] if name else list(positions)
        where = ", ".join(f"{n} at {positions[n]}" for n in names)
        stopped = "; ".join(f"{n} {problems[n]}" for n in names if n in problems)
        return replies.failure(
            "UNAVAILABLE",
            f"read model not at seq {seq} within {self.min_seq_timeout:g}s ({where})"
            + (f"; {stopped}" if stopped else ""),
        )

    async def _health(self, query: Health) -> QueryOk | Failure:
        if query.min_seq is not None and not await self._reached(query.min_seq, None):
            return self._not_reached(query.min_seq, None)
        try:
            self._stream_seq = await self.event_store.last_seq()
        except Exception as exc:
            # Health must answer even when the stream is out of reach: say so, with the last known.
            log.warning("stream info unavailable for Health: %s", exc)
        positions = self.projections.positions()
        data = HealthData(
            status=self.projections.status(),
            stream_seq=self._stream_seq,
            projections=positions,
            problems=self.projections.problems(),
        )
        return QueryOk(data=data, as_of_seq=min(positions.values(), default=0))

    async def _replay(self, body: bytes) -> QueryOk | Failure:
        try:
            request = _replay_decoder.decode(body)
        except msgspec.ValidationError as exc:
            return replies.failure("INVALID_QUERY", f"invalid Replay request: {exc}")
        except msgspec.DecodeError:
            return replies.failure("INVALID_QUERY", "invalid Replay request: the body is not JSON")
        names = request.names or list(self.projections.names)
        unknown = [n for n in names if n not in self.projections.names]
        if unknown:
            return replies.failure(
                "INVALID_QUERY",
                f"names: unknown projection {', '.join(unknown)} "
                f"(this service runs {', '.join(self.projections.names)})",
            )
        target = await self.projections.reset(names, request.from_seq)
        log.info("replay of %s from seq %d requested; target %d", ", ".join(names), request.from_seq, target)
        started = ReplayStarted(names=names, from_seq=request.from_seq, target_seq=target)
        return QueryOk(data=started, as_of_seq=request.from_seq - 1)
