"""eventsourcing's own test suites, run against ``PERSISTENCE_MODULE=services.eventstore``.

The suites are unittest classes from the library; each class here only says how to
build a recorder (or factory, or application) on a real nats-server started for this
module. Every test gets streams of its own, deleted afterwards, so notification ids
start at 1 as the suites expect.

Skipped library tests: none. (Any future skip is listed here and in
docs/eventsourcing.md, with its reason.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import ClassVar, cast
from unittest import TestCase, mock

import pytest
from eventsourcing.persistence import AggregateRecorder, ProcessRecorder, TrackingRecorder
from eventsourcing.tests import application as es_application
from eventsourcing.tests import persistence as es_persistence
from eventsourcing.tests import projection as es_projection
from eventsourcing.utils import Environment
from nats.js.errors import NotFoundError

from eventstore import connect
from inmail.natsserver import EmbeddedNatsServer, NatsServerSettings
from services.eventstore import (
    JetStreamAggregateRecorder,
    JetStreamApplicationRecorder,
    JetStreamFactory,
    JetStreamProcessRecorder,
    JetStreamTrackingRecorder,
)


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A nats-server of this module's own (not port 4222, where an old server may listen)."""
    server = EmbeddedNatsServer(
        NatsServerSettings(data_dir=tmp_path_factory.mktemp("eventsourcing-nats"), port=0)
    )
    server.start()
    yield server.url
    server.stop()


@pytest.fixture(scope="class", autouse=True)
def _nats_url_on_class(request: pytest.FixtureRequest, nats_url: str) -> None:
    # The suites are unittest classes: they cannot take fixtures as arguments.
    if request.cls is not None:
        request.cls.nats_url = nats_url


def drop_streams(url: str, *streams: str) -> None:
    """Delete the named streams if they exist."""

    async def drop() -> None:
        nc = await connect(url)
        try:
            js = nc.jetstream()
            for name in streams:
                with contextlib.suppress(NotFoundError):
                    await js.delete_stream(name)
        finally:
            await nc.close()

    asyncio.run(drop())


def streams_of(stream: str) -> tuple[str, ...]:
    """Every stream the factory may create for an application stream ``stream``."""
    return (stream, f"{stream}_snapshots", f"KV_{stream}_tracking")


class _OnFreshStreams(TestCase):
    """A factory whose streams are new for each test and deleted after it."""

    nats_url: ClassVar[str]

    def setUp(self) -> None:
        super().setUp()
        self.stream = f"conformance_{uuid.uuid4().hex[:12]}"
        self.factory = JetStreamFactory(
            Environment("Conformance", {"NATS_URL": self.nats_url, "NATS_STREAM": self.stream})
        )

    def tearDown(self) -> None:
        self.factory.close()
        drop_streams(self.nats_url, *streams_of(self.stream))
        super().tearDown()


class TestAggregateRecorder(_OnFreshStreams, es_persistence.AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        return self.factory.aggregate_recorder()


class TestSnapshotRecorder(_OnFreshStreams, es_persistence.AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        return self.factory.aggregate_recorder(purpose="snapshots")


class TestApplicationRecorder(
    _OnFreshStreams, es_persistence.ApplicationRecorderTestCase[JetStreamApplicationRecorder]
):
    def create_recorder(self) -> JetStreamApplicationRecorder:
        return cast(JetStreamApplicationRecorder, self.factory.application_recorder())

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()


class TestProcessRecorderAsApplicationRecorder(
    _OnFreshStreams, es_persistence.ApplicationRecorderTestCase[JetStreamProcessRecorder]
):
    """A process recorder's stream also holds positions: its event reads must skip them."""

    def create_recorder(self) -> JetStreamProcessRecorder:
        return cast(JetStreamProcessRecorder, self.factory.process_recorder())

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()


class TestNonInterleavingNotificationIds(
    _OnFreshStreams, es_persistence.NonInterleavingNotificationIDsBaseCase
):
    def create_recorder(self) -> JetStreamApplicationRecorder:
        return cast(JetStreamApplicationRecorder, self.factory.application_recorder())


class TestTrackingRecorder(_OnFreshStreams, es_persistence.TrackingRecorderTestCase):
    def create_recorder(self) -> TrackingRecorder:
        return self.factory.tracking_recorder()


class TestProcessRecorder(_OnFreshStreams, es_persistence.ProcessRecorderTestCase):
    def create_recorder(self) -> ProcessRecorder:
        return self.factory.process_recorder()


class CustomTrackingRecorder(JetStreamTrackingRecorder):
    """A view's recorder, as a projection would subclass it."""


class TestInfrastructureFactory(es_persistence.InfrastructureFactoryTestCase[JetStreamFactory]):
    nats_url: ClassVar[str]

    def setUp(self) -> None:
        self.stream = f"factory_{uuid.uuid4().hex[:12]}"
        self.env = Environment(
            "FactoryTest",
            {
                "PERSISTENCE_MODULE": "services.eventstore",
                "NATS_URL": self.nats_url,
                "NATS_STREAM": self.stream,
            },
        )
        super().setUp()

    def tearDown(self) -> None:
        super().tearDown()
        drop_streams(self.nats_url, *streams_of(self.stream))

    def expected_factory_class(self) -> type[JetStreamFactory]:
        return JetStreamFactory

    def expected_aggregate_recorder_class(self) -> type[AggregateRecorder]:
        return JetStreamAggregateRecorder

    def expected_application_recorder_class(self) -> type[JetStreamApplicationRecorder]:
        return JetStreamApplicationRecorder

    def expected_tracking_recorder_class(self) -> type[JetStreamTrackingRecorder]:
        return JetStreamTrackingRecorder

    def tracking_recorder_subclass(self) -> type[JetStreamTrackingRecorder]:
        return CustomTrackingRecorder

    def expected_process_recorder_class(self) -> type[JetStreamProcessRecorder]:
        return JetStreamProcessRecorder


class _ApplicationOnNats(TestCase):
    """Applications configured through os.environ, as a deployment would be."""

    nats_url: ClassVar[str]
    application_streams: ClassVar[tuple[str, ...]]

    def setUp(self) -> None:
        super().setUp()
        patch = mock.patch.dict(
            os.environ, {"PERSISTENCE_MODULE": "services.eventstore", "NATS_URL": self.nats_url}
        )
        patch.start()
        self.addCleanup(patch.stop)
        # A developer's shell must not redirect these applications to a shared stream.
        for key in [k for k in os.environ if k.endswith("NATS_STREAM")]:
            del os.environ[key]
        self._drop()
        self.addCleanup(self._drop)

    def _drop(self) -> None:
        drop_streams(
            self.nats_url, *(name for stream in self.application_streams for name in streams_of(stream))
        )


class TestExampleApplication(_ApplicationOnNats, es_application.ExampleApplicationTestCase):
    expected_factory_topic = "eventstore.eventsourcing:JetStreamFactory"
    application_streams = ("BankAccounts",)


class TestApplication(_ApplicationOnNats, es_application.ApplicationTestCase):
    """The library's application tests, 100 threads contending for one aggregate included."""

    application_streams = ("Application", "MyApplication1", "MyApplication2")


class TestEventSourcedProjection(_ApplicationOnNats, es_projection.EventSourcedProjectionTestCase):
    """An application followed, through ``subscribe``, by a process application (Counters)."""

    application_streams = ("Application", "Counters")
