"""Running projections in a test, asking them questions, and serving them over NATS."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from contracts import subjects
from eventstore import JetStreamEventStore
from projections.base import Batch, Projection
from projections.catalogue import CATALOGUE
from projections.credits import CreditsProjection
from projections.db import Tx
from projections.queries import QueryService
from projections.runner import Projections

CATCH_UP = 30.0
"""A liveness bound, not a timing assertion: how long a test waits for projections to catch up."""


@asynccontextmanager
async def running(
    store: JetStreamEventStore, url: str, **options: Any
) -> AsyncIterator[tuple[Projections, QueryService]]:
    projections = Projections(store, url, **options)
    await projections.start()
    try:
        yield projections, QueryService(projections, store)
    finally:
        await projections.stop()


async def caught_up(projections: Projections, seq: int, names: list[str] | None = None) -> None:
    assert await projections.wait_for(seq, CATCH_UP, names), (projections.positions(), projections.problems())


async def ask(service: QueryService, name: str, **fields: Any) -> dict[str, Any]:
    """The decoded reply envelope of a query."""
    body = msgspec.json.encode({k: _wire(v) for k, v in fields.items()})
    reply: dict[str, Any] = msgspec.json.decode(await service.handle_raw(name, body))
    return reply


async def data(service: QueryService, name: str, **fields: Any) -> Any:
    """The data of a query that must succeed."""
    reply = await ask(service, name, **fields)
    assert reply["ok"] is True, reply
    return reply["data"]


def _wire(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


async def pages(service: QueryService, name: str, key: str, **fields: Any) -> list[dict[str, Any]]:
    """Every item of a paginated query, following ``next`` cursors."""
    items: list[dict[str, Any]] = []
    before: str | None = None
    while True:
        page = await data(service, name, **fields, **({"before": before} if before else {}))
        items.extend(page[key])
        before = page["next"]
        if before is None:
            return items


async def everything(
    service: QueryService, members: Iterable[str], times: Iterable[datetime]
) -> dict[str, Any]:
    """Every question worth asking of the read models, answered: to compare two of them."""
    times = list(times)
    answers: dict[str, Any] = {}
    senders: set[str] = set()
    for member in sorted(members):
        for box in ("received", "sent"):
            answers[f"inbox {member} {box}"] = await pages(
                service, "Inbox", "items", member_id=member, box=box, limit=7
            )
            for status in ("sent", "read", "replied", "declined"):
                answers[f"inbox {member} {box} {status}"] = await pages(
                    service, "Inbox", "items", member_id=member, box=box, status=status, limit=3
                )
        senders.update(item["sender_id"] for item in answers[f"inbox {member} sent"])
        answers[f"balance {member}"] = await data(service, "CreditBalance", member_id=member)
        for at in times:
            answers[f"balance {member} {at}"] = await ask(service, "CreditBalance", member_id=member, at=at)
        answers[f"ledger {member}"] = await pages(
            service, "CreditLedger", "entries", member_id=member, limit=9
        )
    answers["stats"] = await data(service, "ResponseStats")
    for sender in sorted(senders):
        answers[f"stats {sender}"] = await data(service, "ResponseStats", sender_id=sender)
    for field, values in (
        ("tier", ["free", "premium_career", "sales_navigator", "recruiter_lite", "recruiter"]),
        ("kind", ["recruiter_outreach", "talent_pipeline", "event_invitation"]),
        ("template_id", ["t1", "t2", "t3"]),
    ):
        for value in values:
            answers[f"stats {field}={value}"] = await data(service, "ResponseStats", **{field: value})
    for since, until in itertools.pairwise(times):
        answers[f"stats {since}..{until}"] = await data(service, "ResponseStats", since=since, until=until)
    return answers


class Responder:
    """The query service on NATS, answering as the service's handlers do (core request/reply)."""

    def __init__(self, nc: NATS, service: QueryService) -> None:
        self.nc = nc
        self.service = service
        self.subscriptions: list[Any] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.subscriptions.append(
            await self.nc.subscribe(f"{subjects.QUERY_ROOT}.*", queue=subjects.QUERY_QUEUE, cb=self._on)
        )
        self.subscriptions.append(await self.nc.subscribe(subjects.admin("Replay"), cb=self._on))
        # The server knows the subscriptions once it answered a PING sent after them.
        await self.nc.flush()

    async def _on(self, msg: Msg) -> None:
        # One task per request: a query waiting for min_seq must not hold up the others.
        task = asyncio.create_task(self._answer(msg))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, msg: Msg) -> None:
        name = msg.subject.rsplit(".", 1)[-1]
        await msg.respond(await self.service.handle_raw(name, msg.data))

    async def stop(self) -> None:
        for subscription in self.subscriptions:
            await subscription.unsubscribe()
        for task in list(self.tasks):
            task.cancel()


class SimulatedCrash(BaseException):
    """Stands for the process dying: not an Exception, so nothing on the way handles it."""


def crashing(base: type[Projection], *, after_batches: int) -> type[Projection]:
    """``base``, except that after ``after_batches`` batches it applies half a batch and dies."""

    class Crashing(base):  # type: ignore[valid-type,misc]
        applied = 0

        def apply(self, tx: Tx, events: Batch, *, strict: bool) -> None:
            Crashing.applied += 1
            if Crashing.applied > after_batches:
                super().apply(tx, events[: len(events) // 2 + 1], strict=strict)
                raise SimulatedCrash(f"died in the middle of batch {Crashing.applied}")
            super().apply(tx, events, strict=strict)

    return Crashing


class SlowCredits(CreditsProjection):
    """Credits that linger inside each transaction after writing it: a window for kill -9."""

    def apply(self, tx: Tx, events: Batch, *, strict: bool) -> None:
        super().apply(tx, events, strict=strict)
        time.sleep(0.02)


def catalogue_with(**replacements: type[Projection]) -> dict[str, type[Projection]]:
    return {**CATALOGUE, **replacements}
