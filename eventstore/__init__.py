"""The JetStream event store: appends with optimistic concurrency, atomic batches, reads, follow.

Generic: it knows streams, subjects and messages, nothing of InMail. It imports
nothing else of ours, and not ``eventsourcing``: the library's persistence module
lives in ``eventstore.eventsourcing`` and loads only when asked for.
"""

from eventstore.connection import NatsUnreachable, connect, seed_urls
from eventstore.errors import (
    AppendRejected,
    EventStoreError,
    OutcomeUnknown,
    StoreUnavailable,
    StreamConfigMismatch,
    StreamReplaced,
    WrongExpectedVersion,
)
from eventstore.follow import stop_if_cancelled
from eventstore.identity import Followed, first_kept, identity_of, replacement, replacements, watch
from eventstore.interface import EventStore
from eventstore.jetstream import JetStreamEventStore
from eventstore.memory import InMemoryEventStore
from eventstore.messages import Appended, NewMessage, StoredMessage, Write
from eventstore.spec import StreamSpec
from eventstore.wire import MAX_BATCH

__all__ = [
    "MAX_BATCH",
    "AppendRejected",
    "Appended",
    "EventStore",
    "EventStoreError",
    "Followed",
    "InMemoryEventStore",
    "JetStreamEventStore",
    "NatsUnreachable",
    "NewMessage",
    "OutcomeUnknown",
    "StoreUnavailable",
    "StoredMessage",
    "StreamConfigMismatch",
    "StreamReplaced",
    "StreamSpec",
    "Write",
    "WrongExpectedVersion",
    "connect",
    "first_kept",
    "identity_of",
    "replacement",
    "replacements",
    "seed_urls",
    "stop_if_cancelled",
    "watch",
]
