"""The event store as the command side uses it, whatever holds the events.

``JetStreamEventStore`` is the real one; ``InMemoryEventStore`` keeps the same
promises in a process's memory, for tests that exercise the command side's
whole loop without a server.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from eventstore.messages import Appended, NewMessage, StoredMessage


class EventStore(Protocol):
    """Appends with optimistic concurrency per subject, and reads by subject or sequence.

    A subject's last stream sequence is its aggregate's version. ``append`` raises
    ``WrongExpectedVersion`` when the subject has moved past ``expected_version``,
    writes several messages all or none, and stores a message whose ``msg_id`` it
    has seen within the duplicate window only once.
    """

    replaced: str | None
    """Why the stream can no longer be trusted (it was replaced under the store); None while it
    can. Set once, never cleared: appends then raise ``StreamReplaced``."""

    async def append(
        self, subject: str, messages: Sequence[NewMessage], expected_version: int
    ) -> Appended:
        """Append messages to one subject at ``expected_version``, all or none."""
        ...

    async def read_subject(
        self, subject: str, *, after: int = 0, limit: int | None = None
    ) -> list[StoredMessage]:
        """A subject's messages with sequence > ``after``, oldest first."""
        ...

    async def last_seq_of(self, subject: str) -> int:
        """The sequence of the last message on ``subject`` (0 when there is none)."""
        ...

    async def get(self, seq: int) -> StoredMessage | None:
        """One message by stream sequence, or None when there is none."""
        ...

    async def confirmed_last_seq_of(self, subject: str) -> int:
        """``last_seq_of`` as the stream's leader holds it: the reads above may be answered by a
        replica that does not hold yet what the leader acknowledged. For answers that no append
        checks (a refusal, "nothing there")."""
        ...

    async def confirmed_get(self, seq: int) -> StoredMessage | None:
        """``get`` as the stream's leader holds it."""
        ...
