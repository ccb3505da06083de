"""The event store's reads against a real nats-server: by subject, by range, by sequence, the last."""

from __future__ import annotations

import msgspec
import pytest

from eventstore import (
    JetStreamEventStore,
)
from tests.integration.eventstore_support import aggregate, ids, new_event, version_of


async def test_read_subject_from_a_version(event_store: JetStreamEventStore) -> None:
    a, b = aggregate(event_store, "a"), aggregate(event_store, "b")
    events = [new_event(f"a{i}") for i in range(5)]
    version = 0
    for event in events:
        version = (await event_store.append(a, [event], version)).last_seq
        await event_store.append(b, [new_event()], await version_of(event_store, b))
    all_of_a = await event_store.read_subject(a)

    from_second = await event_store.read_subject(a, after=all_of_a[1].seq)

    assert [m.seq for m in all_of_a] == [1, 3, 5, 7, 9]
    assert ids(from_second) == [e.msg_id for e in events[2:]]
    assert ids(await event_store.read_subject(a, after=all_of_a[1].seq, limit=2)) == [
        e.msg_id for e in events[2:4]
    ]
    assert await event_store.read_subject(a, after=all_of_a[-1].seq) == []
    assert await event_store.read_subject(aggregate(event_store, "none")) == []
    assert all(m.subject == a for m in all_of_a)
    assert msgspec.json.decode(all_of_a[0].data)["label"] == "a0"


@pytest.mark.parametrize("size", [21, 25])
async def test_read_subject_pages_through_aggregates_larger_than_a_read_batch(
    event_store: JetStreamEventStore, size: int
) -> None:
    small_pages = JetStreamEventStore(event_store.nc, event_store.spec, read_batch=7)
    await small_pages.open()
    try:
        a, b = aggregate(event_store, "long"), aggregate(event_store, "noise")
        events = [new_event(f"e{i}") for i in range(size)]
        version = 0
        for start in range(0, size, 5):
            version = (await event_store.append(a, events[start : start + 5], version)).last_seq
            await event_store.append(b, [new_event()], await version_of(event_store, b))

        stored = await small_pages.read_subject(a)
        limited = await small_pages.read_subject(a, limit=10)
        tail = await small_pages.read_subject(a, after=stored[2].seq)
    finally:
        await small_pages.close()

    assert ids(stored) == [e.msg_id for e in events]
    assert [m.seq for m in stored] == sorted(m.seq for m in stored)
    assert ids(limited) == [e.msg_id for e in events[:10]]
    assert ids(tail) == [e.msg_id for e in events[3:]]


async def test_read_range_follows_the_stream_order(event_store: JetStreamEventStore) -> None:
    a, b = aggregate(event_store, "a"), aggregate(event_store, "b")
    await event_store.append(a, [new_event(), new_event()], 0)
    await event_store.append(b, [new_event()], 0)
    await event_store.append(a, [new_event()], 2)

    everything = await event_store.read_range(1)
    from_two = await event_store.read_range(2, limit=2)
    only_a = await event_store.read_range(2, filter_subject=a)

    assert [(m.seq, m.subject) for m in everything] == [(1, a), (2, a), (3, b), (4, a)]
    assert [m.seq for m in from_two] == [2, 3]
    assert [m.seq for m in only_a] == [2, 4]
    assert await event_store.read_range(5) == []


async def test_get_returns_one_message_by_sequence(event_store: JetStreamEventStore) -> None:
    subject = aggregate(event_store, "a")
    event = new_event("wanted")
    await event_store.append(subject, [new_event()], 0)
    await event_store.append(subject, [event], 1)

    got = await event_store.get(2)

    assert got is not None
    assert (got.seq, got.subject, got.msg_id, got.data) == (2, subject, event.msg_id, event.data)
    assert await event_store.get(3) is None


async def test_get_of_a_purged_sequence_is_none_not_the_next_message(
    event_store: JetStreamEventStore,
) -> None:
    a, b = aggregate(event_store, "a"), aggregate(event_store, "b")
    await event_store.append(a, [new_event()], 0)
    await event_store.append(b, [new_event()], 0)
    await event_store.js.purge_stream(event_store.spec.name, subject=a)

    assert await event_store.get(1) is None
    got = await event_store.get(2)
    assert got is not None and got.subject == b


async def test_last_seq_is_zero_on_an_empty_stream_then_the_last_append(
    event_store: JetStreamEventStore,
) -> None:
    assert await event_store.last_seq() == 0

    await event_store.append(aggregate(event_store, "a"), [new_event(), new_event()], 0)
    await event_store.append(aggregate(event_store, "b"), [new_event()], 0)

    assert await event_store.last_seq() == 3


async def test_last_seq_of_a_subject_is_its_last_append_or_zero(event_store: JetStreamEventStore) -> None:
    a, b = aggregate(event_store, "a"), aggregate(event_store, "b")
    assert await event_store.last_seq_of(a) == 0

    await event_store.append(a, [new_event(), new_event()], 0)
    await event_store.append(b, [new_event()], 0)

    assert await event_store.last_seq_of(a) == 2
    assert await event_store.last_seq_of(b) == 3
    assert await event_store.last_seq_of(aggregate(event_store, "none")) == 0


async def test_the_leaders_reads_answer_as_the_direct_gets_do(event_store: JetStreamEventStore) -> None:
    a, b = aggregate(event_store, "a"), aggregate(event_store, "b")
    assert await event_store.confirmed_last_seq_of(a) == 0
    event = new_event("wanted")
    await event_store.append(a, [new_event(), event], 0)
    await event_store.append(b, [new_event()], 0)

    assert await event_store.confirmed_last_seq_of(a) == 2
    assert await event_store.confirmed_last_seq_of(b) == 3
    got = await event_store.confirmed_get(2)
    assert got is not None
    assert (got.seq, got.subject, got.msg_id, got.data) == (2, a, event.msg_id, event.data)
    assert await event_store.confirmed_get(4) is None
