"""Following the stream against a real nats-server: live, bounded, and only what was stored."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from nats.aio.msg import Msg

from eventstore import (
    JetStreamEventStore,
    StoredMessage,
    Write,
    WrongExpectedVersion,
)
from tests.integration.eventstore_support import aggregate, ids, new_event


async def collect(messages: AsyncIterator[StoredMessage]) -> list[StoredMessage]:
    """Everything a bounded follow yields; one that never ends fails instead of hanging."""

    async def drain() -> list[StoredMessage]:
        return [m async for m in messages]

    return await asyncio.wait_for(drain(), 10)


async def test_follow_delivers_a_message_appended_after_it_started(
    event_store: JetStreamEventStore,
) -> None:
    subject = aggregate(event_store, "a")
    await event_store.append(subject, [new_event()], 0)
    seen: asyncio.Queue[StoredMessage] = asyncio.Queue()

    async def follow() -> None:
        async for message in event_store.follow(1):
            await seen.put(message)

    follower = asyncio.create_task(follow())
    try:
        first = await asyncio.wait_for(seen.get(), 5)
        later = new_event("later")
        await event_store.append(subject, [later], 1)
        second = await asyncio.wait_for(seen.get(), 5)
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower

    assert first.seq == 1
    assert (second.seq, second.msg_id, second.data) == (2, later.msg_id, later.data)


async def test_follow_with_until_stops_after_that_sequence(
    event_store: JetStreamEventStore,
) -> None:
    a, b = aggregate(event_store, "a"), aggregate(event_store, "b")
    await event_store.append(a, [new_event() for _ in range(3)], 0)
    await event_store.append(b, [new_event() for _ in range(3)], 0)

    window = [m.seq for m in await collect(event_store.follow(2, until=4))]
    only_b = [m.seq for m in await collect(event_store.follow(1, filter_subject=b, until=6))]
    nothing = [m.seq for m in await collect(event_store.follow(5, until=4))]

    assert window == [2, 3, 4]
    assert only_b == [4, 5, 6]
    assert nothing == []


async def test_a_rejected_batch_is_seen_by_core_nats_but_never_by_follow(
    event_store: JetStreamEventStore,
) -> None:
    a, b = aggregate(event_store, "a"), aggregate(event_store, "b")
    before, after = new_event("before"), new_event("after")
    core_seen: list[str | None] = []
    # Core NATS keeps one publisher's order, so "after" arriving means all before it has.
    after_seen_by_core = asyncio.Event()

    async def on_core(msg: Msg) -> None:
        core_seen.append((msg.headers or {}).get("Nats-Msg-Id"))
        if core_seen[-1] == after.msg_id:
            after_seen_by_core.set()

    core = await event_store.nc.subscribe(event_store.spec.subjects[0], cb=on_core)
    try:
        await event_store.append(b, [before], 0)
        rejected = [new_event("rejected-a1"), new_event("rejected-a2"), new_event("rejected-b")]
        with pytest.raises(WrongExpectedVersion):
            await event_store.append_atomic([Write(a, 0, rejected[:2]), Write(b, 0, rejected[2:])])
        last = await event_store.append(b, [after], 1)

        followed = ids(await collect(event_store.follow(1, until=last.last_seq)))
        await asyncio.wait_for(after_seen_by_core.wait(), 5)
    finally:
        await core.unsubscribe()

    rejected_ids = [m.msg_id for m in rejected]
    assert followed == [before.msg_id, after.msg_id]
    assert core_seen == [before.msg_id, *rejected_ids, after.msg_id]
