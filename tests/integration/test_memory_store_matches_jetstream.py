"""The in-memory event store keeps the JetStream store's promises: the same assertions run on both.

Unit tests run the command side over ``InMemoryEventStore``; they are only as
good as its likeness to JetStream where the command side relies on it.
"""

from __future__ import annotations

import uuid

import pytest

from eventstore import (
    AppendRejected,
    EventStore,
    InMemoryEventStore,
    JetStreamEventStore,
    NewMessage,
    WrongExpectedVersion,
)


@pytest.fixture(params=["jetstream", "memory"])
def store(request: pytest.FixtureRequest, event_store: JetStreamEventStore) -> tuple[EventStore, str]:
    """A store and the subject prefix its aggregates live under."""
    if request.param == "memory":
        return InMemoryEventStore(), "mem"
    return event_store, event_store.spec.subjects[0].removesuffix(".>")


def message(label: str = "event") -> NewMessage:
    return NewMessage(uuid.uuid4().hex, label.encode())


async def test_one_sequence_runs_across_subjects_and_a_subjects_last_is_its_version(store) -> None:
    events, prefix = store
    a, b = f"{prefix}.a", f"{prefix}.b"
    assert (await events.append(a, [message()], 0)).seqs == (1,)
    assert (await events.append(b, [message(), message()], 0)).seqs == (2, 3)
    assert (await events.append(a, [message()], 1)).seqs == (4,)
    assert [await events.last_seq_of(s) for s in (a, b, f"{prefix}.none")] == [4, 3, 0]


async def test_a_stale_expected_version_is_refused_naming_both_versions(store) -> None:
    events, prefix = store
    subject = f"{prefix}.a"
    await events.append(subject, [message()], 0)
    await events.append(subject, [message()], 1)

    with pytest.raises(WrongExpectedVersion) as raised:
        await events.append(subject, [message()], 1)

    assert (raised.value.subject, raised.value.expected, raised.value.actual) == (subject, 1, 2)
    assert await events.last_seq_of(subject) == 2


async def test_several_messages_are_appended_all_or_none(store) -> None:
    events, prefix = store
    subject = f"{prefix}.a"
    await events.append(subject, [message("first")], 0)

    with pytest.raises(WrongExpectedVersion):
        await events.append(subject, [message("lost"), message("lost")], 0)

    assert [m.data for m in await events.read_subject(subject)] == [b"first"]


async def test_a_message_id_sent_again_at_the_current_version_is_stored_once(store) -> None:
    events, prefix = store
    subject = f"{prefix}.a"
    again = message()
    first = await events.append(subject, [again], 0)

    assert await events.append(subject, [again], first.last_seq) == first
    assert [m.msg_id for m in await events.read_subject(subject)] == [again.msg_id]


async def test_a_batch_sent_again_is_refused_as_a_duplicate_and_stored_once(store) -> None:
    events, prefix = store
    subject = f"{prefix}.a"
    batch = [message(), message()]
    await events.append(subject, batch, 0)

    with pytest.raises(AppendRejected, match="duplicate"):
        await events.append(subject, batch, 2)

    assert [m.msg_id for m in await events.read_subject(subject)] == [m.msg_id for m in batch]


async def test_reads_by_subject_and_by_sequence(store) -> None:
    events, prefix = store
    a, b = f"{prefix}.a", f"{prefix}.b"
    await events.append(a, [message("a1"), message("a2")], 0)
    await events.append(b, [message("b1")], 0)
    await events.append(a, [message("a3")], 2)

    assert [(m.seq, m.data) for m in await events.read_subject(a, after=1)] == [(2, b"a2"), (4, b"a3")]
    assert [m.data for m in await events.read_subject(a, limit=2)] == [b"a1", b"a2"]
    stored = await events.get(3)
    assert stored is not None and (stored.subject, stored.data) == (b, b"b1")
    assert await events.get(5) is None
