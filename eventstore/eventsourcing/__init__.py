"""An eventsourcing persistence module on top of the JetStream event store.

``PERSISTENCE_MODULE=services.eventstore`` (the contract's name) or
``eventstore.eventsourcing`` makes any ``eventsourcing.Application`` keep its events
in JetStream. eventsourcing finds the factory by looking for the one
concrete ``InfrastructureFactory`` subclass in this module's namespace, so exactly one
may be defined or imported here (``JetStreamFactory``).

Environment (each key also read with the application's prefix, ``BANKACCOUNTS_NATS_URL``):

- ``NATS_URL``: the server, default ``nats://127.0.0.1:4222``.
- ``NATS_CREDS``: a NATS credentials file, for a server that requires authentication.
- ``NATS_STREAM``: the events stream; default: the application's name, with every
  character outside ``[A-Za-z0-9_-]`` replaced by ``_``. Snapshots go to
  ``<stream>_snapshots``, a tracking recorder's positions to the KV bucket
  ``<stream>_tracking``.
- ``NATS_STREAM_REPLICAS``: replicas of the streams and bucket created, default 1.
- ``CREATE_TABLE`` (the library's key): ``no`` skips creating missing streams.
"""

from __future__ import annotations

import re

from eventsourcing import persistence
from eventsourcing.utils import Environment, EnvType, resolve_topic, strtobool

from eventstore.eventsourcing.bridge import NatsBridge
from eventstore.eventsourcing.layout import is_valid_stream_name
from eventstore.eventsourcing.recorders import (
    JetStreamAggregateRecorder,
    JetStreamApplicationRecorder,
    JetStreamProcessRecorder,
)
from eventstore.eventsourcing.tracking import JetStreamTrackingRecorder

__all__ = [
    "JetStreamAggregateRecorder",
    "JetStreamApplicationRecorder",
    "JetStreamFactory",
    "JetStreamProcessRecorder",
    "JetStreamTrackingRecorder",
]

_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_-]")


class JetStreamFactory(persistence.InfrastructureFactory[JetStreamTrackingRecorder]):
    """Recorders on NATS JetStream, sharing one connection on one background loop thread."""

    NATS_URL = "NATS_URL"
    NATS_CREDS = "NATS_CREDS"
    NATS_STREAM = "NATS_STREAM"
    NATS_STREAM_REPLICAS = "NATS_STREAM_REPLICAS"
    CREATE_TABLE = "CREATE_TABLE"
    DEFAULT_URL = "nats://127.0.0.1:4222"

    aggregate_recorder_class = JetStreamAggregateRecorder
    application_recorder_class = JetStreamApplicationRecorder
    tracking_recorder_class = JetStreamTrackingRecorder
    process_recorder_class = JetStreamProcessRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        replicas = self.env.get(self.NATS_STREAM_REPLICAS) or "1"
        if not replicas.isdigit() or int(replicas) < 1:
            raise OSError(f"{self.NATS_STREAM_REPLICAS} must be a positive integer, not {replicas!r}")
        self.replicas = int(replicas)
        # Nothing connects yet: the bridge starts its thread and connection on first use.
        self.bridge = NatsBridge(
            self.env.get(self.NATS_URL) or self.DEFAULT_URL,
            name=f"eventsourcing:{self.env.name or 'factory'}",
            creds=self.env.get(self.NATS_CREDS) or None,
        )

    def stream_name(self, purpose: str = "events") -> str:
        """The stream for ``purpose``: the application's own for events, a sibling otherwise."""
        explicit = self.env.get(self.NATS_STREAM)
        if explicit:
            if not is_valid_stream_name(explicit):
                raise OSError(
                    f"{self.NATS_STREAM}={explicit!r} is not a usable stream name "
                    "(1-200 characters of A-Z, a-z, 0-9, _ and -)"
                )
            base = explicit
        elif self.env.name:
            base = _NOT_IN_NAME.sub("_", self.env.name)[:200]
        else:
            raise OSError(
                f"no stream name: set {self.NATS_STREAM} or construct the factory "
                "with an application name"
            )
        return base if purpose == "events" else f"{base}_{_NOT_IN_NAME.sub('_', purpose)}"[:200]

    def aggregate_recorder(self, purpose: str = "events") -> persistence.AggregateRecorder:
        """A recorder of ``purpose`` (``events``, ``snapshots``) on its own stream."""
        return self.aggregate_recorder_class(
            self.bridge,
            self.stream_name(purpose),
            replicas=self.replicas,
            create_stream=self._create(),
        )

    def application_recorder(self) -> persistence.ApplicationRecorder:
        """The application's recorder: its events on its stream."""
        topic = self.env.get(self.APPLICATION_RECORDER_TOPIC)
        recorder_class: type[JetStreamApplicationRecorder] = (
            resolve_topic(topic) if topic else self.application_recorder_class
        )
        assert issubclass(recorder_class, JetStreamApplicationRecorder)
        return recorder_class(
            self.bridge, self.stream_name(), replicas=self.replicas, create_stream=self._create()
        )

    def tracking_recorder(
        self, tracking_recorder_class: type[JetStreamTrackingRecorder] | None = None
    ) -> JetStreamTrackingRecorder:
        """Positions in upstream applications, in the KV bucket ``<stream>_tracking``."""
        if tracking_recorder_class is None:
            topic = self.env.get(self.TRACKING_RECORDER_TOPIC)
            tracking_recorder_class = resolve_topic(topic) if topic else self.tracking_recorder_class
        assert tracking_recorder_class is not None
        assert issubclass(tracking_recorder_class, JetStreamTrackingRecorder)
        return tracking_recorder_class(
            self.bridge,
            self.stream_name("tracking"),
            replicas=self.replicas,
            create_bucket=self._create(),
        )

    def process_recorder(self) -> persistence.ProcessRecorder:
        """Events and upstream positions, written together, on the application's stream."""
        topic = self.env.get(self.PROCESS_RECORDER_TOPIC)
        recorder_class: type[JetStreamProcessRecorder] = (
            resolve_topic(topic) if topic else self.process_recorder_class
        )
        assert issubclass(recorder_class, JetStreamProcessRecorder)
        return recorder_class(
            self.bridge, self.stream_name(), replicas=self.replicas, create_stream=self._create()
        )

    def close(self) -> None:
        """Close the connection and stop the loop thread."""
        self.bridge.close()

    def _create(self) -> bool:
        return bool(strtobool(self.env.get(self.CREATE_TABLE) or "yes"))
