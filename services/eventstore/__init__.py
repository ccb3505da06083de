"""``PERSISTENCE_MODULE=services.eventstore``: the contract's name for the eventsourcing module.

The persistence module lives in ``eventstore.eventsourcing``; this name stays importable
for applications configured with it (contract section 6). eventsourcing finds the factory
as the one concrete ``InfrastructureFactory`` subclass in this module's namespace.
"""

from eventstore.eventsourcing import (
    JetStreamAggregateRecorder,
    JetStreamApplicationRecorder,
    JetStreamFactory,
    JetStreamProcessRecorder,
    JetStreamTrackingRecorder,
)

__all__ = [
    "JetStreamAggregateRecorder",
    "JetStreamApplicationRecorder",
    "JetStreamFactory",
    "JetStreamProcessRecorder",
    "JetStreamTrackingRecorder",
]
