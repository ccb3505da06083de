"""The query and operator handlers in memory (FastStream's TestNatsBroker), over a fake read side."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
from faststream.nats import NatsBroker, TestNatsBroker

from contracts import subjects
from contracts.admin import OpenAlert, Replay, Reveal
from contracts.queries import CreditBalance, CreditLedger, EnforcementStatus, Health, Inbox, ResponseStats
from contracts.replies import QueryOk
from inmail.query_handlers import Reply, build_query_broker
from inmail.routes import ADMIN_ROUTES, QUERY_ROUTES


class FakeReadSide:
    """Answers every request with the request itself, and remembers what it was asked."""

    def __init__(self) -> None:
        self.asked: list[msgspec.Struct] = []

    async def _answer(self, request: msgspec.Struct) -> Reply:
        self.asked.append(request)
        return QueryOk(data=request, as_of_seq=7)

    async def health(self, query: Health) -> Reply:
        return await self._answer(query)

    async def inbox(self, query: Inbox) -> Reply:
        return await self._answer(query)

    async def credit_balance(self, query: CreditBalance) -> Reply:
        return await self._answer(query)

    async def credit_ledger(self, query: CreditLedger) -> Reply:
        return await self._answer(query)

    async def response_stats(self, query: ResponseStats) -> Reply:
        return await self._answer(query)

    async def enforcement_status(self, query: EnforcementStatus) -> Reply:
        return await self._answer(query)

    async def replay(self, request: Replay) -> Reply:
        return await self._answer(request)

    async def reveal(self, request: Reveal) -> Reply:
        return await self._answer(request)

    async def open_alert(self, request: OpenAlert) -> Reply:
        return await self._answer(request)


class BrokenReadModel(FakeReadSide):
    async def inbox(self, query: Inbox) -> Reply:
        raise RuntimeError("the database went away")


REPLIES = "test.replies"


class Client:
    """Requests with a reply subject, as NATS clients send them; the replies come back on it.

    (``TestNatsBroker.request`` sends no reply subject, and the handlers ignore such messages.)
    """

    def __init__(self, broker: NatsBroker) -> None:
        self.broker = broker
        self.replies: list[dict[str, Any]] = []

    async def request(self, subject: str, body: bytes) -> dict[str, Any]:
        await self.broker.publish(body, subject, reply_to=REPLIES)
        return self.replies.pop()

    async def publish(self, subject: str, body: bytes) -> None:
        await self.broker.publish(body, subject)


@asynccontextmanager
async def handlers(read_side: FakeReadSide) -> AsyncIterator[Client]:
    broker = build_query_broker("nats://in-memory:4222", read_side)
    client = Client(broker)
    broker.subscriber(REPLIES)(client.replies.append)
    async with TestNatsBroker(broker):
        yield client


async def test_a_valid_query_is_decoded_into_its_struct_and_its_reply_returned() -> None:
    read_side = FakeReadSide()
    async with handlers(read_side) as client:
        reply = await client.request(
            subjects.query("Inbox"), b'{"member_id": "bob", "box": "received", "limit": 3}'
        )
    assert read_side.asked == [Inbox(member_id="bob", box="received", limit=3)]
    assert reply["ok"] is True and reply["as_of_seq"] == 7
    assert reply["data"]["member_id"] == "bob" and reply["data"]["limit"] == 3


async def test_health_with_an_empty_body_is_answered() -> None:
    read_side = FakeReadSide()
    async with handlers(read_side) as client:
        reply = await client.request(subjects.query("Health"), b"")
    assert reply["ok"] is True
    assert read_side.asked == [Health()]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"{not json", "not JSON"),
        (b'["bob", "received"]', "object"),
        (b'{"member_id": "bob"}', "box"),
        (b'{"member_id": "bob", "box": "spam"}', "box"),
        (b'{"member_id": "bob", "box": "sent", "limit": "5"}', "limit"),
        (b'{"member_id": "bob", "box": "sent", "limit": 0}', "limit"),
        (b'{"member_id": "bob", "box": "sent", "colour": "red"}', "colour"),
        (b'{"member_id": "bob", "box": "sent", "min_seq": -1}', "min_seq"),
        (b'{"member_id": "bob\\n", "box": "sent"}', "member_id"),
    ],
)
async def test_a_malformed_query_is_answered_invalid_query_naming_what_is_wrong(
    body: bytes, named: str
) -> None:
    read_side = FakeReadSide()
    async with handlers(read_side) as client:
        reply = await client.request(subjects.query("Inbox"), body)
    assert reply["ok"] is False and reply["error"]["code"] == "INVALID_QUERY"
    assert reply["error"]["message"].startswith("invalid Inbox query: ")
    assert named in reply["error"]["message"]
    assert read_side.asked == []


async def test_a_replay_request_is_decoded_and_a_malformed_one_refused() -> None:
    read_side = FakeReadSide()
    async with handlers(read_side) as client:
        started = await client.request(subjects.admin("Replay"), b'{"names": ["credits"], "from_seq": 5}')
        refused = await client.request(subjects.admin("Replay"), b'{"from_seq": 0}')
    assert started["ok"] is True
    assert read_side.asked == [Replay(names=["credits"], from_seq=5)]
    assert refused["error"]["code"] == "INVALID_QUERY"
    assert refused["error"]["message"].startswith("invalid Replay request: ")
    assert "from_seq" in refused["error"]["message"]


async def test_a_query_without_a_reply_subject_is_ignored() -> None:
    read_side = FakeReadSide()
    async with handlers(read_side) as client:
        await client.publish(subjects.query("Inbox"), b'{"member_id": "bob", "box": "received"}')
        await client.publish(subjects.admin("Replay"), b"{}")
    assert read_side.asked == []


async def test_a_read_side_that_fails_answers_unavailable() -> None:
    async with handlers(BrokenReadModel()) as client:
        reply = await client.request(subjects.query("Inbox"), b'{"member_id": "bob", "box": "sent"}')
        health = await client.request(subjects.query("Health"), b"{}")
    assert reply["ok"] is False and reply["error"]["code"] == "UNAVAILABLE"
    assert "Inbox could not be answered" in reply["error"]["message"]
    assert health["ok"] is True


async def test_every_query_and_operator_subject_of_the_routes_is_answered() -> None:
    read_side = FakeReadSide()
    async with handlers(read_side) as client:
        for route in (*QUERY_ROUTES, *ADMIN_ROUTES):
            reply = await client.request(route.subject, b"{}")
            assert "ok" in reply, route.subject
    assert {type(asked) for asked in read_side.asked} == {Health, ResponseStats, Replay}
