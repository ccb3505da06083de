"""What the JetStream persistence module promises beyond eventsourcing's own suites.

Stream naming, the subject layout, notification ids as stream sequences, optimistic
concurrency between separate writers, positions in a process application's stream,
and the bridge's thread and connection lifecycle; all against a real nats-server.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import cast

import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    IntegrityError,
    OperationalError,
    ProgrammingError,
    StoredEvent,
    Tracking,
)
from eventsourcing.tests.application import BankAccounts
from eventsourcing.utils import Environment
from nats.js.api import StreamInfo
from nats.js.errors import NotFoundError

from eventstore import JetStreamEventStore, StoredMessage, StreamSpec, connect
from inmail.natsserver import EmbeddedNatsServer, NatsServerSettings
from services.eventstore import (
    JetStreamApplicationRecorder,
    JetStreamFactory,
    JetStreamProcessRecorder,
)


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = EmbeddedNatsServer(
        NatsServerSettings(data_dir=tmp_path_factory.mktemp("eventsourcing-nats"), port=0)
    )
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def stream() -> Iterator[str]:
    yield f"es_{uuid.uuid4().hex[:12]}"


def factory_for(url: str, stream: str, name: str = "Tests") -> JetStreamFactory:
    return JetStreamFactory(Environment(name, {"NATS_URL": url, "NATS_STREAM": stream}))


def stream_info(url: str, name: str) -> StreamInfo | None:
    async def info() -> StreamInfo | None:
        nc = await connect(url)
        try:
            return await nc.jetstream().stream_info(name)
        except NotFoundError:
            return None
        finally:
            await nc.close()

    return asyncio.run(info())


def stored_messages(url: str, name: str) -> list[StoredMessage]:
    async def read() -> list[StoredMessage]:
        nc = await connect(url)
        try:
            store = JetStreamEventStore(nc, StreamSpec(name, (f"es.{name}.>",)))
            return await store.read_range(1)
        finally:
            await nc.close()

    return asyncio.run(read())


def event(originator_id: uuid.UUID | str, version: int, topic: str = "topic") -> StoredEvent:
    return StoredEvent(originator_id, version, topic, f"state {version}".encode())


def test_each_application_gets_a_stream_named_after_it(nats_url: str) -> None:
    app_name = f"Bank accounts.v{uuid.uuid4().hex[:6]}"

    class Named(Application[uuid.UUID]):
        name = app_name

    app = Named(env={"PERSISTENCE_MODULE": "services.eventstore", "NATS_URL": nats_url})
    try:
        recordings = app.save(Aggregate(), Aggregate())
    finally:
        app.close()

    stream = app_name.replace(" ", "_").replace(".", "_")
    info = stream_info(nats_url, stream)
    assert info is not None
    assert info.config.subjects == [f"es.{stream}.>"]
    messages = stored_messages(nats_url, stream)
    assert [r.notification.id for r in recordings] == [m.seq for m in messages] == [1, 2]
    subjects = [f"es.{stream}.{r.domain_event.originator_id}" for r in recordings]
    assert [m.subject for m in messages] == subjects


def test_the_application_prefixed_stream_setting_wins(nats_url: str, stream: str) -> None:
    app = BankAccounts(
        env={
            "PERSISTENCE_MODULE": "services.eventstore",
            "NATS_URL": nats_url,
            "NATS_STREAM": f"{stream}_not_this_one",
            "BANKACCOUNTS_NATS_STREAM": stream,
        }
    )
    try:
        account_id = app.open_account("Alice", "alice@example.com")
        app.credit_account(account_id, Decimal("10.00"))
        app.take_snapshot(account_id)
    finally:
        app.close()

    assert stream_info(nats_url, f"{stream}_not_this_one") is None
    events = stored_messages(nats_url, stream)
    snapshots = stored_messages(nats_url, f"{stream}_snapshots")
    assert [m.headers["Es-Originator-Version"] for m in events] == ["1", "2"]
    assert [m.headers["Es-Originator-Version"] for m in snapshots] == ["2"]
    assert all(m.subject == f"es.{stream}.{account_id}" for m in events)


def test_a_stale_writer_gets_an_integrity_error_and_writes_nothing(nats_url: str, stream: str) -> None:
    one, other = factory_for(nats_url, stream), factory_for(nats_url, stream)
    try:
        first = cast(JetStreamApplicationRecorder, one.application_recorder())
        second = cast(JetStreamApplicationRecorder, other.application_recorder())
        aggregate = uuid.uuid4()
        first.insert_events([event(aggregate, 1)])
        assert len(second.select_events(aggregate)) == 1  # both now believe version 1 is last

        first.insert_events([event(aggregate, 2, "by first")])
        with pytest.raises(IntegrityError):
            second.insert_events([event(aggregate, 2, "by second"), event(uuid.uuid4(), 1)])

        assert [e.topic for e in second.select_events(aggregate)] == ["topic", "by first"]
        assert second.max_notification_id() == 2
        # Its hint is stale, but version 3 is still next: it reads the server and succeeds.
        assert second.insert_events([event(aggregate, 3)]) == [3]
    finally:
        one.close()
        other.close()

    checks = [m.headers.get("Nats-Expected-Last-Subject-Sequence") for m in stored_messages(nats_url, stream)]
    assert checks == ["0", "1", "2"]


def test_several_aggregates_are_written_all_or_nothing(nats_url: str, stream: str) -> None:
    factory = factory_for(nats_url, stream)
    try:
        recorder = cast(JetStreamApplicationRecorder, factory.application_recorder())
        taken = uuid.uuid4()
        recorder.insert_events([event(taken, 1)])
        with pytest.raises(IntegrityError):
            recorder.insert_events([event(uuid.uuid4(), 1), event(taken, 1), event(uuid.uuid4(), 1)])
        assert recorder.max_notification_id() == 1

        with pytest.raises(ProgrammingError):
            recorder.insert_events([event(uuid.uuid4(), 1) for _ in range(1001)])
        assert recorder.max_notification_id() == 1
    finally:
        factory.close()


def test_events_after_a_version_are_read_only_when_there_are_any(nats_url: str, stream: str) -> None:
    factory = factory_for(nats_url, stream)
    try:
        recorder = factory.aggregate_recorder()
        aggregate = uuid.uuid4()
        recorder.insert_events([event(aggregate, 1), event(aggregate, 2), event(aggregate, 3)])

        def versions(
            gt: int | None = None, lte: int | None = None, desc: bool = False, limit: int | None = None
        ) -> list[int]:
            found = recorder.select_events(aggregate, gt=gt, lte=lte, desc=desc, limit=limit)
            return [e.originator_version for e in found]

        assert versions(gt=3) == []
        assert versions(gt=1) == [2, 3]
        assert versions(gt=1, desc=True) == [3, 2]
        assert versions(gt=1, desc=True, limit=1) == [3]
        assert versions(gt=3, desc=True, limit=1) == []
        assert versions(gt=1, lte=2) == [2]
        assert versions(lte=2, desc=True, limit=1) == [2]
    finally:
        factory.close()


def test_originator_ids_come_back_as_they_went_in(nats_url: str, stream: str) -> None:
    ids: list[uuid.UUID | str] = [
        uuid.uuid4(),
        "plain-id_1",
        "alice@example.com",
        "a.b c*>",
        "",
        "=looks-encoded",
        "ünïcödé",
    ]
    factory = factory_for(nats_url, stream)
    try:
        recorder = cast(JetStreamApplicationRecorder, factory.application_recorder())
        recorder.insert_events([event(originator_id, 1) for originator_id in ids])
        notifications = recorder.select_notifications(None, 100)
        assert [n.originator_id for n in notifications] == ids
        assert [type(n.originator_id) for n in notifications] == [type(i) for i in ids]
        for originator_id in ids:
            assert [e.originator_version for e in recorder.select_events(originator_id)] == [1]
    finally:
        factory.close()


def test_positions_in_a_process_stream_never_become_notifications(nats_url: str, stream: str) -> None:
    factory = factory_for(nats_url, stream)
    try:
        recorder = cast(JetStreamProcessRecorder, factory.process_recorder())
        recorder.insert_tracking(Tracking("upstream", 1))
        ids = recorder.insert_events([event(uuid.uuid4(), 1)], tracking=Tracking("upstream", 2))
        recorder.insert_events([], tracking=Tracking("upstream", 3))

        assert ids == [2]  # sequence 1 holds the first position
        assert [n.id for n in recorder.select_notifications(None, 10)] == [2]
        assert recorder.max_notification_id() == 2
        assert recorder.max_tracking_id("upstream") == 3
        with pytest.raises(IntegrityError):
            recorder.insert_events([event(uuid.uuid4(), 1)], tracking=Tracking("upstream", 3))
        assert recorder.max_notification_id() == 2
    finally:
        factory.close()

    subjects = [m.subject for m in stored_messages(nats_url, stream)]
    tracking = f"es.{stream}.tracking.upstream"
    assert subjects[0] == subjects[2] == subjects[3] == tracking
    assert subjects[1] != tracking


def test_a_subscription_stops_while_another_thread_waits_on_it(nats_url: str, stream: str) -> None:
    factory = factory_for(nats_url, stream)
    try:
        recorder = cast(JetStreamApplicationRecorder, factory.application_recorder())
        recorder.insert_events([event(uuid.uuid4(), 1)])
        received: list[int] = []
        with recorder.subscribe(gt=None) as subscription:

            def consume() -> None:
                received.extend(n.id for n in subscription)

            consumer = threading.Thread(target=consume)
            consumer.start()
            recorder.insert_events([event(uuid.uuid4(), 1)])
            deadline = time.monotonic() + 5
            while len(received) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            subscription.stop()
            consumer.join(5)
        assert not consumer.is_alive()
        assert received == [1, 2]
    finally:
        factory.close()


def test_the_bridge_starts_on_first_use_and_close_ends_it(nats_url: str, stream: str) -> None:
    before = set(threading.enumerate())
    factory = factory_for(nats_url, stream)
    assert not factory.bridge.started
    assert set(threading.enumerate()) == before

    recorder = factory.application_recorder()
    bridge_threads = set(threading.enumerate()) - before
    assert len(bridge_threads) == 1

    factory.close()
    assert all(not t.is_alive() for t in bridge_threads)
    with pytest.raises(OperationalError):
        recorder.max_notification_id()


def test_an_unreachable_server_is_an_operational_error(stream: str) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        url = f"nats://127.0.0.1:{unused.getsockname()[1]}"
        factory = factory_for(url, stream)
        try:
            with pytest.raises(OperationalError):
                factory.application_recorder()
        finally:
            factory.close()
