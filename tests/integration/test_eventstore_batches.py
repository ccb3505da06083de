"""The event store's atomic batches against a real nats-server: all of a batch or none of it."""

from __future__ import annotations

import uuid

import pytest

from eventstore import (
    MAX_BATCH,
    JetStreamEventStore,
    NewMessage,
    Write,
    WrongExpectedVersion,
)
from tests.integration.eventstore_support import aggregate, ids, new_event


async def test_a_batch_on_one_aggregate_is_stored_contiguously(
    event_store: JetStreamEventStore,
) -> None:
    subject = aggregate(event_store, "a")
    await event_store.append(aggregate(event_store, "other"), [new_event()], 0)
    batch = [new_event("one"), new_event("two"), new_event("three")]

    appended = await event_store.append(subject, batch, 0)

    assert appended.seqs == (2, 3, 4)
    stored = await event_store.read_subject(subject)
    assert ids(stored) == [m.msg_id for m in batch]
    assert [m.seq for m in stored] == [2, 3, 4]


async def test_a_batch_over_several_aggregates_commits_each_at_its_version(
    event_store: JetStreamEventStore,
) -> None:
    a, b = aggregate(event_store, "a"), aggregate(event_store, "b")
    await event_store.append(a, [new_event()], 0)

    appended = await event_store.append_atomic(
        [Write(a, 1, [new_event(), new_event()]), Write(b, 0, [new_event()])]
    )

    assert appended.seqs == (2, 3, 4)
    assert [m.seq for m in await event_store.read_subject(a)] == [1, 2, 3]
    assert [m.seq for m in await event_store.read_subject(b)] == [4]


async def test_a_batch_whose_second_aggregate_is_stale_stores_nothing(
    event_store: JetStreamEventStore,
) -> None:
    a, b = aggregate(event_store, "a"), aggregate(event_store, "b")
    await event_store.append(b, [new_event()], 0)
    await event_store.append(b, [new_event()], 1)
    last_before = await event_store.last_seq()

    with pytest.raises(WrongExpectedVersion) as raised:
        await event_store.append_atomic([Write(a, 0, [new_event(), new_event()]), Write(b, 1, [new_event()])])

    assert raised.value.actual == 2
    assert await event_store.last_seq() == last_before
    assert await event_store.read_subject(a) == []
    assert len(await event_store.read_subject(b)) == 2


async def test_a_batch_stale_in_the_middle_stores_nothing_before_or_after(
    event_store: JetStreamEventStore,
) -> None:
    a, b, c, d = (aggregate(event_store, name) for name in "abcd")
    await event_store.append(c, [new_event()], 0)
    await event_store.append(c, [new_event()], 1)

    with pytest.raises(WrongExpectedVersion):
        await event_store.append_atomic(
            [
                Write(a, 0, [new_event()]),
                Write(b, 0, [new_event(), new_event()]),
                Write(c, 1, [new_event()]),
                Write(d, 0, [new_event()]),
            ]
        )

    assert await event_store.last_seq() == 2
    for subject in (a, b, d):
        assert await event_store.read_subject(subject) == []
    # The untouched aggregates are still new: nothing of the batch moved their versions.
    assert (await event_store.append(a, [new_event()], 0)).seqs == (3,)


async def test_a_batch_over_the_limit_is_refused_before_anything_is_sent(
    event_store: JetStreamEventStore,
) -> None:
    subject = aggregate(event_store, "big")

    with pytest.raises(ValueError, match=str(MAX_BATCH)):
        await event_store.append(subject, [new_event() for _ in range(MAX_BATCH + 1)], 0)

    assert await event_store.last_seq() == 0


async def test_the_server_refuses_an_over_limit_batch_as_a_whole(
    event_store: JetStreamEventStore,
) -> None:
    # Bypasses the store's own check to show why it exists: the server rejects the
    # batch at its commit and keeps none of the messages sent before it.
    nc, subject = event_store.nc, aggregate(event_store, "raw")
    batch_id = uuid.uuid4().hex
    for position in range(1, MAX_BATCH + 1):
        await nc.publish(
            subject,
            b"{}",
            headers={"Nats-Batch-Id": batch_id, "Nats-Batch-Sequence": str(position)},
        )
    commit = {
        "Nats-Batch-Id": batch_id,
        "Nats-Batch-Sequence": str(MAX_BATCH + 1),
        "Nats-Batch-Commit": "1",
    }
    reply = await nc.request(subject, b"{}", headers=commit, timeout=5)

    assert b"too large" in reply.data
    assert await event_store.last_seq() == 0


async def test_a_batch_failing_part_way_on_the_client_stores_nothing(
    event_store: JetStreamEventStore,
) -> None:
    subject = aggregate(event_store, "partial")
    too_big = NewMessage(str(uuid.uuid4()), b"x" * (event_store.nc.max_payload + 1))

    # The first two messages go out before the third is refused; without a commit
    # the server keeps none of them, and the store must say so at once.
    with pytest.raises(ValueError, match="payload"):
        await event_store.append(subject, [new_event(), new_event(), too_big], 0)

    assert await event_store.last_seq() == 0
    assert (await event_store.append(subject, [new_event()], 0)).seqs == (1,)


async def test_an_empty_append_is_refused(event_store: JetStreamEventStore) -> None:
    with pytest.raises(ValueError, match="nothing"):
        await event_store.append(aggregate(event_store, "a"), [], 0)
