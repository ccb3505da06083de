"""An event store in memory, keeping JetStream's promises where the command side relies on them.

One global sequence across subjects, starting at 1; a subject's last sequence
is its version; a stale expected version raises ``WrongExpectedVersion``;
several messages are appended all or none; a message id seen within the
duplicate window is not stored again: sent again at the current version, a
single message answers with the sequence it was stored at and a batch holding
one is refused, as JetStream does.
``tests/integration/test_memory_store_matches_jetstream.py`` runs the same
assertions against both stores.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from eventstore.errors import AppendRejected, StreamReplaced, WrongExpectedVersion
from eventstore.messages import Appended, NewMessage, StoredMessage
from eventstore.wire import BATCH_DUPLICATE, MAX_BATCH


class InMemoryEventStore:
    """The ``EventStore`` interface on a list; for tests and single-process tools."""

    def __init__(
        self, *, duplicate_window: float = 120.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.duplicate_window = duplicate_window
        self.clock = clock
        self.replaced: str | None = None
        self._messages: list[StoredMessage] = []
        self._by_subject: dict[str, list[StoredMessage]] = {}
        self._msg_ids: dict[str, tuple[int, float]] = {}

    async def append(
        self, subject: str, messages: Sequence[NewMessage], expected_version: int
    ) -> Appended:
        """Append messages to one subject at ``expected_version``, all or none."""
        if self.replaced is not None:
            raise StreamReplaced(self.replaced)
        if not messages:
            raise ValueError("nothing to append")
        if len(messages) > MAX_BATCH:
            raise ValueError(f"an atomic append holds at most {MAX_BATCH} messages, got {len(messages)}")
        # JetStream checks the expected version first, then looks for duplicates.
        actual = self._last_seq_of(subject)
        if actual != expected_version:
            raise WrongExpectedVersion(subject, expected_version, actual)
        now = self.clock()
        stored_at = [self._stored_seq(message.msg_id, now) for message in messages]
        if len(messages) == 1 and stored_at[0] is not None:
            return Appended((stored_at[0],))
        if any(seq is not None for seq in stored_at):
            raise AppendRejected(BATCH_DUPLICATE, "batch holds a duplicate message id")
        on_subject = self._by_subject.setdefault(subject, [])
        for message in messages:
            stored = StoredMessage(
                seq=len(self._messages) + 1,
                subject=subject,
                data=message.data,
                headers={"Nats-Msg-Id": message.msg_id, **(message.headers or {})},
            )
            self._messages.append(stored)
            on_subject.append(stored)
            self._msg_ids[message.msg_id] = (stored.seq, now)
        return Appended(tuple(range(len(self._messages) - len(messages) + 1, len(self._messages) + 1)))

    async def read_subject(
        self, subject: str, *, after: int = 0, limit: int | None = None
    ) -> list[StoredMessage]:
        """A subject's messages with sequence > ``after``, oldest first."""
        found = [message for message in self._by_subject.get(subject, ()) if message.seq > after]
        return found if limit is None else found[:limit]

    async def last_seq_of(self, subject: str) -> int:
        """The sequence of the last message on ``subject`` (0 when there is none)."""
        return self._last_seq_of(subject)

    async def get(self, seq: int) -> StoredMessage | None:
        """One message by stream sequence, or None beyond the end."""
        return self._messages[seq - 1] if 0 < seq <= len(self._messages) else None

    async def confirmed_last_seq_of(self, subject: str) -> int:
        """One copy: what it holds is what its leader holds."""
        return self._last_seq_of(subject)

    async def confirmed_get(self, seq: int) -> StoredMessage | None:
        """One copy: what it holds is what its leader holds."""
        return self._messages[seq - 1] if 0 < seq <= len(self._messages) else None

    async def last_seq(self) -> int:
        """The last sequence over every subject (0 when empty)."""
        return len(self._messages)

    def _last_seq_of(self, subject: str) -> int:
        on_subject = self._by_subject.get(subject)
        return on_subject[-1].seq if on_subject else 0

    def _stored_seq(self, msg_id: str, now: float) -> int | None:
        seen = self._msg_ids.get(msg_id)
        if seen is None or now - seen[1] >= self.duplicate_window:
            return None
        return seen[0]
