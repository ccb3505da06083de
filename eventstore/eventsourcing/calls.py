"""How the recorders call the store: on the bridge, with a time limit, failures as eventsourcing's.

eventsourcing expects its PEP 249 style errors (``IntegrityError``, ``OperationalError``,
...); what NATS, the store and the bridge raise is translated here, in one place.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Coroutine
from typing import Any, TypeVar

import nats.errors
from eventsourcing.persistence import (
    DatabaseError,
    IntegrityError,
    OperationalError,
    PersistenceError,
    ProgrammingError,
)
from nats.js.errors import BucketNotFoundError

from eventstore import (
    AppendRejected,
    EventStoreError,
    NatsUnreachable,
    StreamConfigMismatch,
    WrongExpectedVersion,
)
from eventstore.eventsourcing.bridge import BridgeClosed, NatsBridge

T = TypeVar("T")

MAX_ATTEMPTS = 5
"""Attempts at an insert that keeps meeting a conflict (a stale hint, another writer)."""
CALL_TIMEOUT = 60.0
"""A safety net over the store's own timeouts, so a caller never waits forever."""

FAILURES: tuple[type[Exception], ...] = (
    EventStoreError,
    NatsUnreachable,
    BridgeClosed,
    nats.errors.Error,
    TimeoutError,
    concurrent.futures.CancelledError,
)
"""What NATS, the store and the bridge raise; anything else is a bug and stays as it is."""


def call(bridge: NatsBridge, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the bridge and wait for it; failures become eventsourcing's errors."""
    try:
        return bridge.run(coro, timeout=CALL_TIMEOUT)
    except FAILURES as exc:
        raise translate(exc) from exc


def translate(exc: Exception) -> PersistenceError:
    """The eventsourcing (PEP 249 style) error for a failure of NATS, the store or the bridge."""
    if isinstance(exc, WrongExpectedVersion):
        return IntegrityError(str(exc))
    if isinstance(exc, StreamConfigMismatch | BucketNotFoundError):
        return ProgrammingError(str(exc))
    if isinstance(exc, AppendRejected):
        return DatabaseError(str(exc))
    if isinstance(exc, concurrent.futures.CancelledError):
        return OperationalError("the NATS bridge was closed while waiting for NATS")
    return OperationalError(f"{type(exc).__name__}: {exc}")
