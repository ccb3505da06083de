"""The store's typed errors: what a caller can tell apart and act on."""

from __future__ import annotations


class EventStoreError(Exception):
    """Base of the store's typed errors."""


class WrongExpectedVersion(EventStoreError):
    """Another writer appended to the aggregate first: reload and decide again."""

    def __init__(self, subject: str, expected: int, actual: int | None) -> None:
        self.subject = subject
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{subject}: expected version {expected}, actual {'unknown' if actual is None else actual}"
        )


class StoreUnavailable(EventStoreError):
    """The store could not be reached; nothing was written."""


class OutcomeUnknown(StoreUnavailable):
    """The append may or may not have been stored, and the store stayed out of reach."""


class AppendRejected(EventStoreError):
    """The server refused the append for a reason other than concurrency."""

    def __init__(self, err_code: int, description: str) -> None:
        self.err_code = err_code
        super().__init__(f"JetStream refused the append ({err_code}): {description}")


class StreamConfigMismatch(EventStoreError):
    """The stream exists with a configuration this store cannot use."""


class StreamReplaced(EventStoreError):
    """The stream is not the one this store was following (deleted and created again, purged):
    nothing more is appended to it until the operator starts over deliberately."""
