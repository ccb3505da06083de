"""The JetStream event store against a real nats-server: concurrency, atomicity, reads, restarts."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import msgspec
import nats
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api as js_api

from eventstore import (
    MAX_BATCH,
    Appended,
    AppendRejected,
    JetStreamEventStore,
    NewMessage,
    OutcomeUnknown,
    StoredMessage,
    StoreUnavailable,
    StreamConfigMismatch,
    StreamSpec,
    Write,
    WrongExpectedVersion,
    connect,
)
from inmail.natsserver import EmbeddedNatsServer
from tests.conftest import unique


def new_event(label: str = "event") -> NewMessage:
    """An event with a fresh id; the label travels in the payload so tests can tell events apart."""
    return NewMessage(msg_id=str(uuid.uuid4()), data=msgspec.json.encode({"label": label}))


def ids(messages: Sequence[StoredMessage]) -> list[str | None]:
    return [m.msg_id for m in messages]


def aggregate(store: JetStreamEventStore, name: str) -> str:
    return f"{store.spec.subjects[0].removesuffix('>')}{name}"


async def version_of(store: JetStreamEventStore, subject: str) -> int:
    stored = await store.read_subject(subject)
    return stored[-1].seq if stored else 0


async def collect(messages: AsyncIterator[StoredMessage]) -> list[StoredMessage]:
    """Everything a bounded follow yields; one that never ends fails instead of hanging."""

    async def drain() -> list[StoredMessage]:
        return [m async for m in messages]

    return await asyncio.wait_for(drain(), 10)


async def wait_reconnected(nc: NATS, reconnects_before: int, within: float = 10.0) -> None:
    """Wait until the client has noticed the restart and connected again."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not (nc.is_connected and nc.stats["reconnects"] > reconnects_before):
        if loop.time() > deadline:
            pytest.fail(f"the client did not reconnect within {within:.0f}s")
        await asyncio.sleep(0.02)


async def wait_disconnected(nc: NATS, within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while nc.is_connected:
        if loop.time() > deadline:
            pytest.fail(f"the client did not notice the server going away within {within:.0f}s")
        await asyncio.sleep(0.02)


@pytest.fixture
async def own_store(
    own_nats_server: EmbeddedNatsServer,
) -> AsyncIterator[JetStreamEventStore]:
    """A store on the test's own (durable) server, with short timeouts so restarts stay quick."""
    nc = await connect(own_nats_server.url)
    store = JetStreamEventStore(
        nc, StreamSpec(name="EVENTS", subjects=("events.>",)), timeout=2.0, resolve_timeout=15.0
    )
    await store.ensure_stream()
    await store.open()
    yield store
    await store.close()
    await nc.close()


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
    assert all(w.conflicts[0].actual is not None and w.conflicts[0].actual > 0
               for w in first_round_losers)
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


# ----------------------------------------------------------------- atomic batches


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
        await event_store.append_atomic(
            [Write(a, 0, [new_event(), new_event()]), Write(b, 1, [new_event()])]
        )

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


# ----------------------------------------------------------------- reads


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
            version = (await event_store.append(a, events[start:start + 5], version)).last_seq
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


# ----------------------------------------------------------------- follow


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
            await event_store.append_atomic(
                [Write(a, 0, rejected[:2]), Write(b, 0, rejected[2:])]
            )
        last = await event_store.append(b, [after], 1)

        followed = ids(await collect(event_store.follow(1, until=last.last_seq)))
        await asyncio.wait_for(after_seen_by_core.wait(), 5)
    finally:
        await core.unsubscribe()

    rejected_ids = [m.msg_id for m in rejected]
    assert followed == [before.msg_id, after.msg_id]
    assert core_seen == [before.msg_id, *rejected_ids, after.msg_id]


# ----------------------------------------------------------------- stream set-up


async def test_purging_a_stream_does_not_reset_its_sequences(
    event_store: JetStreamEventStore,
) -> None:
    subject = aggregate(event_store, "a")
    await event_store.append(subject, [new_event() for _ in range(3)], 0)

    await event_store.js.purge_stream(event_store.spec.name)

    assert await event_store.read_subject(subject) == []
    assert await event_store.last_seq() == 3
    assert (await event_store.append(subject, [new_event()], 0)).seqs == (4,)


async def test_ensure_stream_is_idempotent(event_store: JetStreamEventStore) -> None:
    subject = aggregate(event_store, "a")
    await event_store.append(subject, [new_event()], 0)
    before = await event_store.stream_info()

    await event_store.ensure_stream()
    await event_store.ensure_stream()

    after = await event_store.stream_info()
    assert after.created == before.created
    assert after.config == before.config
    assert after.state.last_seq == 1
    assert len(await event_store.read_subject(subject)) == 1


@pytest.fixture
async def nc(nats_server: EmbeddedNatsServer) -> AsyncIterator[NATS]:
    client = await nats.connect(nats_server.url)
    yield client
    await client.close()


async def mismatch_of(nc: NATS, existing: js_api.StreamConfig, spec: StreamSpec) -> str:
    """Create ``existing`` directly, let a store for ``spec`` refuse it, check it is unchanged."""
    js = nc.jetstream()
    await js.add_stream(existing)
    try:
        before = await js.stream_info(spec.name)
        with pytest.raises(StreamConfigMismatch) as raised:
            await JetStreamEventStore(nc, spec).ensure_stream()
        after = await js.stream_info(spec.name)
        assert after.config == before.config
        assert after.created == before.created
    finally:
        await js.delete_stream(spec.name)
    return str(raised.value)


async def test_a_stream_with_other_subjects_is_refused_and_left_alone(nc: NATS) -> None:
    name = unique("MISMATCH").upper()
    spec = StreamSpec(name=name, subjects=(f"{name.lower()}.>",))
    existing = spec.to_config()
    existing.subjects = [f"{name.lower()}.other.>"]

    message = await mismatch_of(nc, existing, spec)

    assert name in message
    assert f"subjects is ['{name.lower()}.other.>'], needs ['{name.lower()}.>']" in message


async def test_a_memory_stream_is_refused_and_left_alone(nc: NATS) -> None:
    name = unique("MISMATCH").upper()
    spec = StreamSpec(name=name, subjects=(f"{name.lower()}.>",))
    existing = spec.to_config()
    existing.storage = js_api.StorageType.MEMORY

    message = await mismatch_of(nc, existing, spec)

    assert name in message
    assert "storage is memory, needs file" in message
    assert "subjects" not in message


async def test_a_plain_nats_py_stream_lists_every_missing_feature(nc: NATS) -> None:
    name = unique("MISMATCH").upper()
    spec = StreamSpec(name=name, subjects=(f"{name.lower()}.>",))
    existing = js_api.StreamConfig(name=name, subjects=list(spec.subjects))

    message = await mismatch_of(nc, existing, spec)

    # The server omits unset flags, so "is None" and "is False" both mean off.
    assert re.search(r"atomic batch publish is (None|False), needs True", message)
    assert re.search(r"direct get is (None|False), needs True", message)


async def test_an_append_no_stream_listens_to_is_unavailable_at_once(
    event_store: JetStreamEventStore,
) -> None:
    outside = f"{unique('nostream')}.a"

    with pytest.raises(StoreUnavailable, match="NoResponders") as raised:
        await event_store.append(outside, [new_event()], 0)
    with pytest.raises(StoreUnavailable, match="NoResponders"):
        await event_store.append(outside, [new_event(), new_event()], 0)

    assert not isinstance(raised.value, OutcomeUnknown)
    assert await event_store.last_seq() == 0


# ----------------------------------------------------------------- restarts and crashes


async def append_next(store: JetStreamEventStore, subject: str, event: NewMessage) -> Appended:
    return await store.append(subject, [event], await version_of(store, subject))


async def test_a_restart_between_appends_loses_nothing_and_versions_continue(
    own_nats_server: EmbeddedNatsServer, own_store: JetStreamEventStore
) -> None:
    subject = aggregate(own_store, "a")
    before = [new_event(f"before{i}") for i in range(5)]
    for event in before:
        await append_next(own_store, subject, event)
    reconnects = own_store.nc.stats["reconnects"]

    own_nats_server.restart()
    await wait_reconnected(own_store.nc, reconnects)

    assert ids(await own_store.read_subject(subject)) == [e.msg_id for e in before]
    after = new_event("after")
    assert (await own_store.append(subject, [after], 5)).seqs == (6,)
    with pytest.raises(WrongExpectedVersion):
        await own_store.append(subject, [new_event()], 5)
    assert ids(await own_store.read_subject(subject)) == [e.msg_id for e in [*before, after]]
    assert await own_store.last_seq() == 6


async def test_an_append_right_after_a_restart_is_stored_once_or_reported_unstored(
    own_nats_server: EmbeddedNatsServer, own_store: JetStreamEventStore
) -> None:
    subject = aggregate(own_store, "a")
    await own_store.append(subject, [new_event()], 0)

    # The client has not noticed the restart yet: its request goes to the dead socket.
    own_nats_server.restart()
    event = new_event("right after")
    try:
        outcome: Appended | StoreUnavailable = await own_store.append(subject, [event], 1)
    except StoreUnavailable as unavailable:
        outcome = unavailable

    assert not isinstance(outcome, OutcomeUnknown)
    stored = ids(await own_store.read_subject(subject))
    if isinstance(outcome, Appended):
        assert outcome.seqs == (2,)
        assert stored.count(event.msg_id) == 1
    else:
        assert event.msg_id not in stored


async def test_an_append_while_the_server_is_down_is_unavailable_and_not_stored(
    own_nats_server: EmbeddedNatsServer, own_store: JetStreamEventStore
) -> None:
    subject = aggregate(own_store, "a")
    await own_store.append(subject, [new_event()], 0)
    reconnects = own_store.nc.stats["reconnects"]
    own_nats_server.stop()
    await wait_disconnected(own_store.nc)
    event = new_event("while down")

    with pytest.raises(StoreUnavailable) as raised:
        await own_store.append(subject, [event], 1)
    with pytest.raises(StoreUnavailable):
        await own_store.append(subject, [event, new_event()], 1)
    with pytest.raises(StoreUnavailable):
        await own_store.read_subject(subject)

    own_nats_server.start()
    await wait_reconnected(own_store.nc, reconnects)
    assert not isinstance(raised.value, OutcomeUnknown)
    assert await own_store.last_seq() == 1
    assert (await own_store.append(subject, [event], 1)).seqs == (2,)


async def test_a_crash_with_appends_in_flight_loses_nothing_acknowledged(
    own_nats_server: EmbeddedNatsServer, own_store: JetStreamEventStore
) -> None:
    acknowledged: dict[str, list[str]] = {}
    enough_acks = asyncio.Event()
    crashed = asyncio.Event()

    async def writer(name: str, events_per_append: int) -> None:
        subject = aggregate(own_store, name)
        mine = acknowledged.setdefault(subject, [])
        version = 0
        for _ in range(30):
            events = [new_event() for _ in range(events_per_append)]
            while True:
                try:
                    appended = await own_store.append(subject, events, version)
                    break
                except OutcomeUnknown:
                    raise
                except StoreUnavailable:
                    # Nothing was stored: the same events at the same version are safe to resend.
                    await asyncio.sleep(0.05)
            version = appended.last_seq
            mine.extend(e.msg_id for e in events)
            if sum(map(len, acknowledged.values())) >= 40:
                enough_acks.set()
            if not crashed.is_set() and len(mine) >= 30:
                await crashed.wait()

    writers = [asyncio.create_task(writer(f"w{i}", 1 + i % 3)) for i in range(8)]
    await enough_acks.wait()
    reconnects = own_store.nc.stats["reconnects"]
    own_nats_server.restart(crash=True)
    crashed.set()
    await asyncio.gather(*writers)
    await wait_reconnected(own_store.nc, reconnects)

    total = 0
    for subject, expected_ids in acknowledged.items():
        stored = await own_store.read_subject(subject)
        assert ids(stored) == expected_ids
        total += len(expected_ids)
    assert await own_store.last_seq() == total


async def test_a_crash_loses_no_acknowledged_write_with_the_durable_setting(
    own_nats_server: EmbeddedNatsServer, own_store: JetStreamEventStore
) -> None:
    # SIGKILL leaves the OS page cache intact, so this proves process-crash safety and
    # that the store acknowledged only what the server took; power loss needs a real fsync.
    assert "sync_interval: always" in own_nats_server.config_text()
    subject = aggregate(own_store, "a")
    events = [new_event(f"e{i}") for i in range(10)]
    version = 0
    for start in range(0, 10, 2):
        version = (await own_store.append(subject, events[start:start + 2], version)).last_seq
    reconnects = own_store.nc.stats["reconnects"]

    own_nats_server.restart(crash=True)
    await wait_reconnected(own_store.nc, reconnects)

    assert ids(await own_store.read_subject(subject)) == [e.msg_id for e in events]
    assert (await own_store.append(subject, [new_event()], 10)).seqs == (11,)
