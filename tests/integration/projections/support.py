"""Running projections in a test and asking them questions over NATS, as clients do."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from contracts import subjects
from eventstore import JetStreamEventStore
from inmail.app import wait_until_answering
from inmail.query_handlers import LAST_SUBSCRIBED, RevealingAnswers, build_query_broker
from projections.base import Batch, Projection
from projections.catalogue import CATALOGUE
from projections.credits import CreditsProjection
from projections.db import Tx
from projections.queries import QueryService
from projections.runner import Projections

CATCH_UP = 30.0
"""A liveness bound, not a timing assertion: how long a test waits for projections to catch up."""


SERVICE_CREDS: list[Path | None] = [None]
"""The service role's credentials on the package's nats-server (set by its fixture)."""


class AsStored:
    """No key store in these tests: every field is shown as stored (their events are clear text)."""

    async def builtins(self, value: Any) -> Any:
        return value

    async def text(self, value: str) -> str:
        return value


@asynccontextmanager
async def running(
    store: JetStreamEventStore, url: str, **options: Any
) -> AsyncIterator[tuple[Projections, QueryService]]:
    """Projections in ``url``, answering queries on the store's NATS server as the service does."""
    projections = Projections(store, url, **options)
    service = QueryService(projections, store)
    server = store.nc.connected_url
    assert server is not None
    answers = RevealingAnswers(service, AsStored(), AsStored())
    broker = build_query_broker(server.geturl(), answers, creds=SERVICE_CREDS[0])
    await broker.start()
    try:
        await wait_until_answering(store.nc, LAST_SUBSCRIBED)
        # Started last, so a test sees the positions as they were when the projections started.
        await projections.start()
        try:
            yield projections, service
        finally:
            await projections.stop()
    finally:
        await broker.stop()


async def caught_up(projections: Projections, seq: int, names: list[str] | None = None) -> None:
    assert await projections.wait_for(seq, CATCH_UP, names), (projections.positions(), projections.problems())


async def ask(service: QueryService, name: str, **fields: Any) -> dict[str, Any]:
    """The decoded reply envelope of a query."""
    return await ask_raw(service, name, msgspec.json.encode({k: _wire(v) for k, v in fields.items()}))


async def ask_raw(service: QueryService, name: str, body: bytes) -> dict[str, Any]:
    """The decoded reply envelope of a query's body, sent over NATS (the store's connection)."""
    reply = await service.event_store.nc.request(subjects.query(name), body, timeout=CATCH_UP)
    decoded: dict[str, Any] = msgspec.json.decode(reply.data)
    return decoded


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
