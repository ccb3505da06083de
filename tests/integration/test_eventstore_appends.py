"""The event store's appends against a real nats-server: optimistic concurrency and duplicates."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from eventstore import (
    Appended,
    AppendRejected,
    JetStreamEventStore,
    NewMessage,
    Write,
    WrongExpectedVersion,
)
from tests.integration.eventstore_support import aggregate, ids, new_event, version_of

# ----------------------------------------------------------------- concurrency


@dataclass
class Writer:
    event: NewMessage
    won_at_version: int | None = None
    appended: Appended | None = None
    conflicts: list[WrongExpectedVersion] = field(default_factory=list)


async def test_twenty_concurrent_writers_on_one_aggregate_each_land_exactly_once(
    event_store: JetStreamEventStore,
) -> None:
    subject = aggregate(event_store, "contended")
    writers = [Writer(new_event(f"writer-{i}")) for i in range(20)]
    # Every writer reads version 0 before any writes, so the first round is a real race.
    everyone_has_read = asyncio.Barrier(len(writers))

    async def write(writer: Writer) -> None:
        first_attempt = True
        while True:
            version = await version_of(event_store, subject)
            if first_attempt:
                first_attempt = False
                await everyone_has_read.wait()
            try:
                writer.appended = await event_store.append(subject, [writer.event], version)
            except WrongExpectedVersion as conflict:
                writer.conflicts.append(conflict)
                continue
            writer.won_at_version = version
            return

    await asyncio.gather(*(write(w) for w in writers))

    stored = await event_store.read_subject(subject)
    assert [m.seq for m in stored] == list(range(1, 21))
    assert sorted(ids(stored), key=str) == sorted((w.event.msg_id for w in writers), key=str)
    assert len(set(ids(stored))) == 20
    by_id = {m.msg_id: m for m in stored}
    for writer in writers:
        assert writer.appended is not None
        assert writer.appended.seqs == (by_id[writer.event.msg_id].seq,)
        # Winning at version v means landing right after v: one winner per version.
        assert writer.won_at_version == writer.appended.last_seq - 1
    assert sorted(w.won_at_version or 0 for w in writers) == list(range(20))
    first_round_losers = [w for w in writers if w.won_at_version != 0]
    assert all(w.conflicts[0].expected == 0 for w in first_round_losers)
    assert all(w.conflicts[0].actual is not None and w.conflicts[0].actual > 0 for w in first_round_losers)
    assert sum(len(w.conflicts) for w in writers) >= 19
    assert await event_store.last_seq() == 20


async def test_a_stale_expected_version_is_rejected_with_the_actual_version(
    event_store: JetStreamEventStore,
) -> None:
    subject = aggregate(event_store, "a")
    await event_store.append(subject, [new_event()], 0)
    await event_store.append(subject, [new_event()], 1)

    with pytest.raises(WrongExpectedVersion) as raised:
        await event_store.append(subject, [new_event()], 1)

    assert (raised.value.subject, raised.value.expected, raised.value.actual) == (subject, 1, 2)
    assert await event_store.last_seq() == 2


async def test_expected_version_zero_means_a_new_aggregate(
    event_store: JetStreamEventStore,
) -> None:
    subject = aggregate(event_store, "new")
    await event_store.append(subject, [new_event()], 0)

    with pytest.raises(WrongExpectedVersion):
        await event_store.append(subject, [new_event()], 0)


# ----------------------------------------------------------------- duplicates


async def test_a_repeated_append_with_the_same_msg_id_is_stored_once(
    event_store: JetStreamEventStore,
) -> None:
    subject = aggregate(event_store, "dup")
    event = new_event()
    first = await event_store.append(subject, [event], 0)

    # The same id at the current version: the server drops it and acknowledges the original.
    again = await event_store.append(subject, [event], first.last_seq)

    assert again.seqs == first.seqs
    assert ids(await event_store.read_subject(subject)) == [event.msg_id]
    assert await event_store.last_seq() == 1


async def test_a_repeated_append_at_the_old_version_is_a_conflict_not_a_second_copy(
    event_store: JetStreamEventStore,
) -> None:
    subject = aggregate(event_store, "dup")
    event = new_event()
    await event_store.append(subject, [event], 0)

    # On an R1 stream the expected-sequence check answers before duplicate detection.
    with pytest.raises(WrongExpectedVersion):
        await event_store.append(subject, [event], 0)

    assert ids(await event_store.read_subject(subject)) == [event.msg_id]


async def test_a_repeated_batch_is_refused_and_stored_once(
    event_store: JetStreamEventStore,
) -> None:
    subject = aggregate(event_store, "dup")
    batch = [new_event(), new_event()]
    await event_store.append(subject, batch, 0)

    with pytest.raises(AppendRejected, match="duplicate"):
        await event_store.append(subject, batch, 2)

    assert ids(await event_store.read_subject(subject)) == [m.msg_id for m in batch]


async def test_an_unacknowledged_but_stored_append_resolves_to_where_it_landed(
    event_store: JetStreamEventStore,
) -> None:
    # Losing an acknowledgement at an exact moment cannot be staged against a real server,
    # so this stores the writes first and then runs the store's resolution of an unknown
    # outcome on them, as it would after a timeout: it must find them, not fail or re-store.
    one = [Write(aggregate(event_store, "single"), 0, [new_event()])]
    batch = [
        Write(aggregate(event_store, "x"), 0, [new_event(), new_event()]),
        Write(aggregate(event_store, "y"), 0, [new_event()]),
    ]
    landed_one = await event_store.append_atomic(one)
    landed_batch = await event_store.append_atomic(batch)

    assert await event_store._resolve(one, 1, "ack lost") == landed_one
    assert await event_store._resolve(batch, 3, "ack lost") == landed_batch
    assert await event_store.last_seq() == 4
