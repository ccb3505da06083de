"""The event store through server restarts and crashes: nothing acknowledged is lost or doubled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client as NATS

from eventstore import (
    Appended,
    JetStreamEventStore,
    NewMessage,
    OutcomeUnknown,
    StoreUnavailable,
    StreamSpec,
    WrongExpectedVersion,
    connect,
)
from inmail.natsserver import EmbeddedNatsServer
from tests.integration.eventstore_support import aggregate, ids, new_event, version_of


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
    nc = await connect(own_nats_server.url, creds=own_nats_server.creds("admin"))
    store = JetStreamEventStore(
        nc, StreamSpec(name="EVENTS", subjects=("events.>",)), timeout=2.0, resolve_timeout=15.0
    )
    await store.ensure_stream()
    await store.open()
    yield store
    await store.close()
    await nc.close()


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
        version = (await own_store.append(subject, events[start : start + 2], version)).last_seq
    reconnects = own_store.nc.stats["reconnects"]

    own_nats_server.restart(crash=True)
    await wait_reconnected(own_store.nc, reconnects)

    assert ids(await own_store.read_subject(subject)) == [e.msg_id for e in events]
    assert (await own_store.append(subject, [new_event()], 10)).seqs == (11,)
