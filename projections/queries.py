"""Answering queries (``inmail.query.<Query>``) and the replay request (``inmail.admin.Replay``).

Transport-free like the command executor: the FastStream handlers in
``inmail.query_handlers`` decode each request into its Struct and call the
method named after it; the reply envelope comes back. A query that names
``min_seq`` waits until the read model it reads has applied that sequence (up to
5 s, then ``UNAVAILABLE``). Every answer carries ``as_of_seq``: the position of
the read model it came from, read in the same snapshot as the answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from contracts import replies
from contracts.admin import Replay, ReplayStarted
from contracts.queries import (
    CreditBalance,
    CreditLedger,
    Dependency,
    EnforcementStatus,
    Health,
    HealthData,
    Inbox,
    QuarantinedEvent,
    Query,
    ResponseStats,
)
from contracts.replies import Failure, QueryOk
from eventstore import JetStreamEventStore, StoreUnavailable
from projections import credits, enforcement, inbox, response_stats
from projections.base import QueryFailure
from projections.db import Tx
from projections.runner import NewStreamUnconfirmed, Projections

log = logging.getLogger("inmail.queries")

Q = TypeVar("Q", bound=Query)

MIN_SEQ_TIMEOUT = 5.0
"""How long an answer waits for ``min_seq`` before it is ``UNAVAILABLE``."""

DependencyCheck = Callable[[], Awaitable[Mapping[str, Dependency]]]
"""The streams and buckets the service needs, by name, as they are now (given by the composition
root, which knows them all: the command side's too)."""


class QueryService:
    """Waits for ``min_seq``, reads the right read model, answers; one method per query."""

    def __init__(
        self,
        projections: Projections,
        event_store: JetStreamEventStore,
        *,
        min_seq_timeout: float = MIN_SEQ_TIMEOUT,
        dependencies: DependencyCheck | None = None,
    ) -> None:
        self.projections = projections
        self.event_store = event_store
        self.min_seq_timeout = min_seq_timeout
        self.dependencies = dependencies
        self._stream_seq = 0

    async def health(self, query: Health) -> QueryOk | Failure:
        """Every dependency, each projection's position, lag and problems; ``ok`` only when all is."""
        if query.min_seq is not None and not await self._reached(query.min_seq, None):
            return self._not_reached(query.min_seq, None)
        stream_seq, dependencies = await asyncio.gather(self._last_seq(), self._dependencies())
        positions = self.projections.positions()
        problems = self.projections.problems()
        problems.update({name: d.problem for name, d in dependencies.items() if d.problem})
        quarantined = await self._quarantined()
        data = HealthData(
            # Quarantined events hold up their members' commands: not everything can succeed.
            status="degraded" if problems or quarantined else self.projections.status(),
            stream_seq=self._stream_seq,
            projections=positions,
            problems=problems,
            dependencies=dict(dependencies),
            # Unknown, not 0, for a stream out of reach or behind the read model.
            lag={
                name: stream_seq - seq
                for name, seq in positions.items()
                if stream_seq is not None and seq <= stream_seq
            },
            quarantined=quarantined,
        )
        return QueryOk(data=data, as_of_seq=min(positions.values(), default=0))

    async def inbox(self, query: Inbox) -> QueryOk | Failure:
        """A member's received or sent InMails, newest first; or the scheduled ones."""
        return await self._read("inbox", query, inbox.query)

    async def credit_balance(self, query: CreditBalance) -> QueryOk | Failure:
        """A member's credits now, or as they were at ``at``."""
        return await self._read("credits", query, credits.balance_query)

    async def credit_ledger(self, query: CreditLedger) -> QueryOk | Failure:
        """Every credit movement of a member, newest first."""
        return await self._read("credits", query, credits.ledger_query)

    async def response_stats(self, query: ResponseStats) -> QueryOk | Failure:
        """Response rates over the InMails matching every given filter."""
        return await self._read("response_stats", query, response_stats.query)

    async def enforcement_status(self, query: EnforcementStatus) -> QueryOk | Failure:
        """A sender's stage under the response-rate floor and the latest assessment behind it."""
        return await self._read("enforcement", query, enforcement.query)

    async def replay(self, request: Replay) -> QueryOk | Failure:
        """Clear the named read models (all by default) and follow again from ``from_seq``."""
        names = request.names or list(self.projections.names)
        unknown = [n for n in names if n not in self.projections.names]
        if unknown:
            return replies.failure(
                "INVALID_QUERY",
                f"names: unknown projection {', '.join(unknown)} "
                f"(this service runs {', '.join(self.projections.names)})",
            )
        try:
            from_seq, target = await self.projections.reset(
                names, request.from_seq, new_stream=request.new_stream
            )
        except NewStreamUnconfirmed as exc:
            return replies.failure("INVALID_QUERY", str(exc))
        except StoreUnavailable as exc:
            return replies.failure("UNAVAILABLE", f"cannot replay: {exc}")
        log.info("replay of %s from seq %d requested; target %d", ", ".join(names), from_seq, target)
        started = ReplayStarted(names=names, from_seq=from_seq, target_seq=target)
        return QueryOk(data=started, as_of_seq=from_seq - 1)

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

    async def _last_seq(self) -> int | None:
        try:
            self._stream_seq = await self.event_store.last_seq()
        except Exception as exc:
            # Health must answer even when the stream is out of reach: say so, with the last known.
            log.warning("stream info unavailable for Health: %s", exc)
            return None
        return self._stream_seq

    async def _dependencies(self) -> Mapping[str, Dependency]:
        return await self.dependencies() if self.dependencies is not None else {}

    async def _quarantined(self) -> list[QuarantinedEvent]:
        try:
            return await self.projections.quarantined()
        except Exception as exc:
            # Health answers even when the read-model store hiccups; the next one will tell.
            log.warning("quarantined events unavailable for Health: %s", exc)
            return []
