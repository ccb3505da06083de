"""Member aggregates loaded from and saved to the event store, with a cache of states.

The cache keeps each recently used member's state and version in memory, so a
command on a warm aggregate reads nothing before it appends: a stale state is
caught by optimistic concurrency on the append (and then caught up), and an
answer given without an append is double-checked by a catch-up read.

An event on a member's subject that cannot be read (an unknown type, invalid
fields) is quarantined: the member cannot be loaded past it, and its commands
answer ``UNAVAILABLE`` naming the sequence, until an operator records an
``EventSkipped`` for it. Loading then passes over the event, as every replay does.

Personal fields are sealed on their way in (``seal``, the key store's seam,
``vault.Sealer``): the events appended, and the state they are applied to, hold
tokens, never the clear text.

Two seams let the composition root observe appends without this side knowing
how: ``message_headers`` gives headers for the messages of an append (the trace
context of the command being handled), ``on_appended`` sees the events of every
append that succeeded (metrics).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from contracts import subjects
from contracts.events import AnyEvent, EventSkipped, decode_event, encode_event
from contracts.validation import explain_event
from eventstore import Appended, EventStore, NewMessage, StoredMessage, StoreUnavailable, StreamReplaced
from services.domain.ids import registered_seq_of
from services.domain.state import Member, evolve


class Quarantined(Exception):
    """A member's events hold one that cannot be read and that no operator has skipped yet."""

    def __init__(self, member_id: str, seq: int, error: str) -> None:
        self.member_id = member_id
        self.seq = seq
        super().__init__(
            f"member {member_id} cannot be served: the event at seq {seq} cannot be read ({error}) "
            f"and is quarantined; an operator can skip it with `inmail quarantine resolve {seq} --skip`"
        )


@dataclass(slots=True)
class Loaded:
    """A member's state (None: not registered) at a version (the subject's last sequence)."""

    member_id: str
    state: Member | None
    version: int


MessageHeaders = Callable[[], Mapping[str, str] | None]
"""Headers for the messages appended now (None: none), asked once per append."""
OnAppended = Callable[[Sequence[AnyEvent]], None]
"""Told the events of each append that succeeded."""


class Seal(Protocol):
    """Seals the personal fields of events about to be appended (``vault.Sealer``)."""

    async def seal_events(self, events: Sequence[AnyEvent]) -> list[AnyEvent]:
        """The events with their personal fields sealed."""
        ...


class MemberRepository:
    """Load, cache and append member aggregates; one lock per member within this process."""

    def __init__(
        self,
        store: EventStore,
        *,
        cache_size: int = 200_000,
        message_headers: MessageHeaders | None = None,
        on_appended: OnAppended | None = None,
        replica_wait: float = 2.0,
        seal: Seal | None = None,
    ) -> None:
        self.store = store
        self.seal = seal
        self.cache_size = cache_size
        self.replica_wait = replica_wait
        """Seconds ``confirm`` waits for the replica answering reads to hold what the leader holds."""
        self.message_headers = message_headers
        self.on_appended = on_appended
        self._cache: OrderedDict[str, Loaded] = OrderedDict()
        self._locks: dict[str, _Lock] = {}
        self._senders: dict[int, str] = {}

    async def load(self, member_id: str, *, fresh: bool = True) -> Loaded:
        """A member's state; ``fresh`` reads any events newer than the cached version."""
        loaded = self._cache.get(member_id)
        if loaded is None:
            loaded = Loaded(member_id, None, 0)
            fresh = True
        else:
            self._cache.move_to_end(member_id)
        if fresh:
            await self.catch_up(loaded)
        self._remember(loaded)
        return loaded

    async def load_many(self, member_ids: Sequence[str]) -> dict[str, Member | None]:
        """Fresh states of members a decision only reads, fetched concurrently."""
        if len(member_ids) == 1:
            # The common case (a SendInMail's recipient): no gather and its tasks.
            only = await self.load(member_ids[0])
            return {only.member_id: only.state}
        ids = list(dict.fromkeys(member_ids))
        loaded = await asyncio.gather(*(self.load(member_id) for member_id in ids))
        return {item.member_id: item.state for item in loaded}

    async def catch_up(self, loaded: Loaded) -> bool:
        """Apply events newer than the loaded version; True when there were any.

        A cached member is most often up to date: ask for its last sequence first (the
        server answers from its per-subject index) and read only when something is
        newer. Reading "from the version on" makes the server scan the stream's blocks
        after that version, even when there is nothing to find.
        """
        subject = subjects.member_events(loaded.member_id)
        if loaded.version and await self.store.last_seq_of(subject) <= loaded.version:
            return False
        return await self._read_newer(loaded)

    async def confirm(self, member_ids: Sequence[str]) -> bool:
        """Bring each member's state up to what the stream's leader holds; True when one was behind.

        Reads may be answered by a replica that does not hold yet what the leader acknowledged
        a moment ago (to this process or to another): an answer that no append checks, a
        refusal or a no-op, is given only on states as new as the leader's. The replica catches
        up within milliseconds; one that does not within ``replica_wait`` makes the command
        ``UNAVAILABLE`` (nothing was recorded), never a wrong refusal.
        """
        behind = False
        for member_id in dict.fromkeys(member_ids):
            loaded = self._cache.get(member_id) or Loaded(member_id, None, 0)
            leader = await self.store.confirmed_last_seq_of(subjects.member_events(member_id))
            if leader > loaded.version:
                behind = True
                await self.catch_up_to(loaded, leader)
        return behind

    async def catch_up_to(self, loaded: Loaded, seq: int | None) -> None:
        """Read the member's events up to ``seq`` (a version the leader reported: a conflict's
        actual version), waiting up to ``replica_wait`` for the replica answering reads to hold
        them; without a reported version, up to what the leader holds now.

        After a conflict, a plain catch-up may ask a replica that lags the very write that
        conflicted, find nothing newer, and decide on the same stale state again.
        """
        if seq is None:
            await self.confirm([loaded.member_id])
            return
        deadline = asyncio.get_running_loop().time() + self.replica_wait
        while loaded.version < seq:
            await self._read_newer(loaded)
            if loaded.version >= seq:
                break
            if asyncio.get_running_loop().time() > deadline:
                raise StoreUnavailable(
                    f"the replica answering reads holds member {loaded.member_id}'s events up to seq "
                    f"{loaded.version}, the stream's leader up to {seq}"
                )
            await asyncio.sleep(0.005)
        self._remember(loaded)

    async def _read_newer(self, loaded: Loaded) -> bool:
        """Apply whatever the store returns after the loaded version; True when it returned any."""
        subject = subjects.member_events(loaded.member_id)
        stored = await self.store.read_subject(subject, after=loaded.version)
        readable, unreadable = _readable(loaded.member_id, stored)
        for event, seq in readable:
            _apply(loaded, event, seq)
        if unreadable is not None:
            raise unreadable
        return bool(stored)

    def check_stream(self) -> None:
        """Refuse to go on when the stream was replaced under the store: no command is answered
        from a history that is not the one the service recorded."""
        if self.store.replaced is not None:
            raise StreamReplaced(self.store.replaced)

    async def append(self, loaded: Loaded, events: Sequence[AnyEvent], expected_version: int) -> Appended:
        """Append a decision's events at the version it was decided on, then apply them.

        ``expected_version`` is captured with the decision, not read after it: a
        concurrent catch-up may move ``loaded`` on while the append is in flight.
        """
        if self.seal is not None:
            events = await self.seal.seal_events(events)
        headers = self.message_headers() if self.message_headers is not None else None
        messages = [NewMessage(event.event_id, encode_event(event), headers) for event in events]
        appended = await self.store.append(
            subjects.member_events(loaded.member_id), messages, expected_version
        )
        for event, seq in zip(events, appended.seqs, strict=True):
            _apply(loaded, event, seq)
        if self.on_appended is not None:
            self.on_appended(events)
        return appended

    def lock(self, member_id: str) -> _Lock:
        """Serialise this process's commands on one member; other processes rely on OCC."""
        lock = self._locks.get(member_id)
        if lock is None:
            lock = self._locks[member_id] = _Lock(member_id, self._locks)
        return lock

    async def sender_of(self, inmail_id: str) -> str | None:
        """The member whose aggregate holds an InMail, from the routing prefix of its id."""
        registered_seq = registered_seq_of(inmail_id)
        if registered_seq is None:
            return None
        sender = self._senders.get(registered_seq)
        if sender is None:
            # "No such InMail" is a refusal: confirmed with the leader before it is believed.
            message = await self.store.get(registered_seq) or await self.store.confirmed_get(registered_seq)
            if message is None or not message.subject.startswith(subjects.MEMBER_EVENTS_PREFIX):
                return None
            sender = subjects.member_of_subject(message.subject)
            # A registration sequence never changes owner: safe to keep for good.
            self._senders[registered_seq] = sender
        return sender

    def cached(self) -> int:
        """How many member states are held in memory."""
        return len(self._cache)

    def _remember(self, loaded: Loaded) -> None:
        self._cache[loaded.member_id] = loaded
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)


Readable = list[tuple[AnyEvent | None, int]]
"""Events with their sequences, None for an unreadable event an operator skipped."""


def _readable(member_id: str, stored: Sequence[StoredMessage]) -> tuple[Readable, Quarantined | None]:
    """The events of ``stored`` up to the first unreadable one not skipped, and that one if any.

    An unreadable event is skipped only by an ``EventSkipped`` after it, which a load
    meets in the same read: a load stops just short of an unreadable event (keeping
    what came before), so the next one reads it again, and the skip once there is one.
    """
    decoded: list[tuple[AnyEvent | str, int]] = []
    skipped: set[int] = set()
    for message in stored:
        try:
            event: AnyEvent | str = decode_event(message.data)
        except Exception as exc:
            event = explain_event(message.data, exc).splitlines()[0]
        if isinstance(event, EventSkipped):
            skipped.add(event.seq)
        decoded.append((event, message.seq))
    readable: Readable = []
    for item, seq in decoded:
        if not isinstance(item, str):
            readable.append((item, seq))
        elif seq in skipped:
            readable.append((None, seq))
        else:
            return readable, Quarantined(member_id, seq, item)
    return readable, None


def _apply(loaded: Loaded, event: AnyEvent | None, seq: int) -> None:
    # Readers catch up a shared state while a writer's append is in flight; whoever
    # comes second skips what the first already applied, so nothing applies twice.
    if seq > loaded.version:
        # A skipped event, and the record of its skip, move the version and nothing else.
        if event is not None and not isinstance(event, EventSkipped):
            loaded.state = evolve(loaded.state, event, seq)
        loaded.version = seq


class _Lock:
    """A per-member lock that removes itself from the table when its last user leaves."""

    __slots__ = ("lock", "member_id", "table", "users")

    def __init__(self, member_id: str, table: dict[str, _Lock]) -> None:
        self.lock = asyncio.Lock()
        self.member_id = member_id
        self.table = table
        self.users = 0

    async def __aenter__(self) -> None:
        self.users += 1
        try:
            await self.lock.acquire()
        except BaseException:
            self._leave()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self.lock.release()
        self._leave()

    def _leave(self) -> None:
        self.users -= 1
        if self.users == 0:
            del self.table[self.member_id]
