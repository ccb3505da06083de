"""A refusal is never decided on a replica that lags the stream's leader.

On an R3 stream any replica answers a direct get, and a replica applies an entry only
once it learns that the entry is committed: for a moment after an acknowledgement it
may not hold what the leader acknowledged. A write decided on such a read is caught by
optimistic concurrency; a refusal writes nothing, so it is confirmed against the leader.
"""

from __future__ import annotations

from collections.abc import Sequence

from contracts.commands import RecordReply
from contracts.replies import CommandOk, Failure
from eventstore import InMemoryEventStore, StoredMessage
from services.executor import CommandExecutor, CommandSettings
from services.repository import MemberRepository
from tests.unit.scenario import T0, InMemoryContacts, register, send


class LaggingReplica(InMemoryEventStore):
    """Reads answered by a replica that holds nothing after ``holds_up_to`` for the next ``reads``
    reads (then it has caught up); the ``confirmed_*`` reads are the leader's, always current."""

    def __init__(self) -> None:
        super().__init__()
        self.holds_up_to: int | None = None
        self.reads = 0

    def lag(self, holds_up_to: int, reads: int) -> None:
        self.holds_up_to, self.reads = holds_up_to, reads

    def _held(self, messages: Sequence[StoredMessage]) -> list[StoredMessage]:
        if self.holds_up_to is None:
            return list(messages)
        self.reads -= 1
        held = [m for m in messages if m.seq <= self.holds_up_to]
        if self.reads <= 0:
            self.holds_up_to = None
        return held

    async def read_subject(
        self, subject: str, *, after: int = 0, limit: int | None = None
    ) -> list[StoredMessage]:
        return self._held(await super().read_subject(subject, after=after, limit=limit))

    async def last_seq_of(self, subject: str) -> int:
        held = self._held(await super().read_subject(subject))
        return held[-1].seq if held else 0

    async def get(self, seq: int) -> StoredMessage | None:
        found = await super().get(seq)
        held = self._held([found] if found is not None else [])
        return held[0] if held else None


def process(store: InMemoryEventStore, *, replica_wait: float = 2.0) -> CommandExecutor:
    """A service process of its own (its own cache) on the shared store."""
    return CommandExecutor(
        MemberRepository(store, replica_wait=replica_wait),
        InMemoryContacts(),
        CommandSettings(trust_client_time=True),
    )


async def sent_inmail(store: LaggingReplica) -> tuple[str, int]:
    """alice sends bob an InMail through one process: its id and the sequence it was stored at."""
    first = process(store)
    for member_id in ("alice", "bob"):
        assert isinstance(await first.execute(register(member_id, occurred_at=T0)), CommandOk)
    sent = await first.execute(send("alice", "bob", "s1", occurred_at=T0))
    assert isinstance(sent, CommandOk), sent
    return sent.data.inmail_id, sent.seq


def reply_to(inmail_id: str) -> RecordReply:
    return RecordReply(command_id="r1", inmail_id=inmail_id, member_id="bob", body="Yes", occurred_at=T0)


async def test_a_reply_read_on_a_replica_without_the_inmail_yet_is_recorded_not_refused() -> None:
    store = LaggingReplica()
    inmail_id, seq = await sent_inmail(store)
    # The replica answering the other process's reads holds nothing yet, not even alice's
    # registration (the InMail's routing prefix), for its next few reads.
    store.lag(holds_up_to=0, reads=4)

    replied = await process(store).execute(reply_to(inmail_id))

    assert isinstance(replied, CommandOk), replied
    assert replied.data.refunded and replied.seq > seq


async def test_a_replica_that_stays_behind_makes_the_command_unavailable_never_a_refusal() -> None:
    store = LaggingReplica()
    inmail_id, seq = await sent_inmail(store)
    store.lag(holds_up_to=seq - 1, reads=1_000_000)

    answer = await process(store, replica_wait=0.05).execute(reply_to(inmail_id))

    assert isinstance(answer, Failure) and answer.error.code == "UNAVAILABLE", answer
    assert "leader" in answer.error.message and "nothing was recorded" in answer.error.message
    assert await store.last_seq() == seq


async def test_after_a_conflict_the_write_that_conflicted_is_read_before_deciding_again() -> None:
    store = LaggingReplica()
    await sent_inmail(store)
    cached = CommandExecutor(
        MemberRepository(store), InMemoryContacts(), CommandSettings(trust_client_time=True, max_attempts=2)
    )
    assert isinstance(await cached.execute(send("alice", "bob", "s2", occurred_at=T0)), CommandOk)
    other = await process(store).execute(send("alice", "bob", "s3", occurred_at=T0))
    assert isinstance(other, CommandOk)
    # The replica misses the other process's send for a while: a catch-up that asked it would
    # decide on the stale state again, conflict again, and run out of attempts.
    store.lag(holds_up_to=other.seq - 1, reads=5)

    again = await cached.execute(send("alice", "bob", "s4", occurred_at=T0))

    assert isinstance(again, CommandOk), again
    assert again.data.credits_left == 1
