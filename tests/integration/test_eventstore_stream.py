"""The event store's stream against a real nats-server: set-up, incompatible configs, no stream."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js import api as js_api

from eventstore import (
    JetStreamEventStore,
    OutcomeUnknown,
    StoreUnavailable,
    StreamConfigMismatch,
    StreamSpec,
)
from inmail.natsserver import EmbeddedNatsServer
from tests.conftest import unique
from tests.integration.eventstore_support import aggregate, new_event


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
    client = await nats.connect(nats_server.url, user_credentials=str(nats_server.creds("admin")))
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
