"""Executing commands: decode, route, load, decide, append, reply.

Transport-free: the command subscription in ``inmail.command_subscription`` hands raw bodies in
and send the bytes that come out. Every path ends in a reply envelope; no
exception escapes to the transport.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import secrets
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import msgspec

from contracts import replies
from contracts.admin import SkipEvent
from contracts.commands import (
    COMMANDS,
    AnyCommand,
    Command,
    InMailCommand,
    RegisterMember,
    RunDue,
)
from contracts.replies import CommandOk, Failure
from contracts.validation import explain
from eventstore import (
    AppendRejected,
    OutcomeUnknown,
    StoreUnavailable,
    StreamReplaced,
    WrongExpectedVersion,
)
from services import routing
from services.contacts import Contacts
from services.domain import errors
from services.domain.decider import decide
from services.domain.errors import DomainError
from services.domain.rules import Context
from services.domain.state import Member
from services.quarantine import skip_event
from services.reply_data import reply_data
from services.repository import Loaded, MemberRepository, Quarantined
from vault import MemberKeyErased

log = logging.getLogger("inmail.commands")

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The server's clock, in UTC."""
    return datetime.now(UTC)


def fresh_ids() -> Iterator[str]:
    """Unique ids for events and InMails: a random 96-bit process prefix and a counter.

    One system call for the whole process instead of one per id (the hot path mints two
    ids per SendInMail); the prefix keeps processes and restarts apart. Ids hold only
    ``[A-Za-z0-9_]``: ``-`` separates an InMail id's routing prefix.
    """
    prefix = secrets.token_urlsafe(12).replace("-", "_")
    for number in itertools.count(1):
        yield f"{prefix}{number:x}"


_KINDS: dict[str, type[msgspec.Struct]] = {kind.__name__: kind for kind in COMMANDS}
_KINDS[SkipEvent.__name__] = SkipEvent
_decoders = {name: msgspec.json.Decoder(kind) for name, kind in _KINDS.items()}


def decode_command(name: str, body: bytes) -> AnyCommand | RunDue | SkipEvent | Failure:
    """A command (or a ``SkipEvent`` request) from its subject's name and its body, or an
    INVALID_COMMAND failure saying in words what is wrong."""
    decoder = _decoders.get(name)
    if decoder is None:
        return replies.failure("INVALID_COMMAND", f"unknown command {name}")
    try:
        command: AnyCommand | RunDue | SkipEvent = decoder.decode(body)  # type: ignore[assignment]
    except msgspec.ValidationError as exc:
        return replies.failure("INVALID_COMMAND", explain(exc, _KINDS[name]))
    except msgspec.DecodeError as exc:
        return replies.failure("INVALID_COMMAND", f"the body is not valid JSON: {exc}")
    return command


@dataclass(frozen=True, slots=True)
class CommandSettings:
    """How commands are executed."""

    trust_client_time: bool = False
    max_attempts: int = 20
    """Optimistic-concurrency retries on fresh state before giving up with UNAVAILABLE."""


class DueRunner(Protocol):
    """What performs ``RunDue``: the due work runner (``services.due``)."""

    async def run_due(self, command: RunDue) -> CommandOk | Failure:
        """Perform everything due at or before ``command.until``, in due order."""
        ...


class CommandExecutor:
    """Runs commands against the member aggregates; safe for many concurrent commands."""

    due: DueRunner | None = None
    """Set by the composition root when this process runs the due work."""

    def __init__(
        self,
        repository: MemberRepository,
        contacts: Contacts,
        settings: CommandSettings | None = None,
        *,
        clock: Clock = system_clock,
        ids: Iterator[str] | None = None,
    ) -> None:
        self.repository = repository
        self.contacts = contacts
        self.settings = settings or CommandSettings()
        self.clock = clock
        self.ids = ids or fresh_ids()
        self.others_write = False
        """Whether another process was seen writing the members this one serves (a conflict).
        From then on a cached state is checked for newer events before deciding: with the
        queue group spreading one member's commands over processes, a cached state is stale
        about every other command, and reading a subject's last sequence costs far less than
        an append that conflicts (measured with two processes on a cluster,
        ``docs/benchmarks.md``). A lone process never conflicts and never pays the read."""

    async def handle_raw(self, name: str, body: bytes) -> bytes:
        """Decode and execute a command (or a ``SkipEvent``); the encoded reply envelope."""
        decoded = decode_command(name, body)
        if isinstance(decoded, Failure):
            return replies.encode(decoded)
        if isinstance(decoded, SkipEvent):
            return replies.encode(await self.skip(decoded))
        return replies.encode(await self.execute(decoded))

    async def execute(self, command: AnyCommand | RunDue) -> CommandOk | Failure:
        """Execute one command; raises only ``OutcomeUnknown`` (then no reply is sent)."""
        if isinstance(command, RunDue):
            return await self._answer(RunDue.__name__, lambda: self._run_due(command))
        return await self._answer(type(command).__name__, lambda: self._execute(command))

    async def skip(self, request: SkipEvent) -> CommandOk | Failure:
        """Record that a quarantined event is skipped (``services.quarantine``), at the server's time."""
        return await self._answer(
            SkipEvent.__name__, lambda: skip_event(self.repository, request, self.clock(), next(self.ids))
        )

    async def _answer(
        self, name: str, outcome: Callable[[], Awaitable[CommandOk | Failure]]
    ) -> CommandOk | Failure:
        """The reply to a request that may write: every error becomes one, never a traceback."""
        try:
            self.repository.check_stream()
            return await outcome()
        except DomainError as exc:
            return replies.failure(exc.code, str(exc))
        except OutcomeUnknown:
            # Never claim "nothing recorded" when it may have been: the caller's timeout
            # and a retry with the same command_id settle it.
            raise
        except StoreUnavailable as exc:
            return replies.failure(
                "UNAVAILABLE", f"{exc}; nothing was recorded, retry with the same command_id"
            )
        except Quarantined as exc:
            return replies.failure("UNAVAILABLE", f"{exc}; nothing was recorded")
        except MemberKeyErased as exc:
            # Erased between the decision and the sealing of what it wrote: nothing is written
            # with a key that no longer exists, and none is made again.
            return replies.failure("MEMBER_ERASED", f"{exc}; nothing was recorded")
        except StreamReplaced as exc:
            # Not "nothing was recorded": the append that revealed it may have landed on the
            # new stream, which no one follows until the operator starts over.
            return replies.failure(
                "UNAVAILABLE",
                f"{exc}; no command is acknowledged until the operator starts over "
                "(`inmail serve --new-stream`)",
            )
        except Exception:
            log.exception("%s failed", name)
            return replies.failure("UNAVAILABLE", "internal error; nothing was recorded")

    async def _run_due(self, command: RunDue) -> CommandOk | Failure:
        if not self.settings.trust_client_time:
            return replies.failure(
                "INVALID_COMMAND",
                "RunDue needs trusted client time (inmail serve --trust-client-time); "
                "otherwise the server's clock performs due work",
            )
        if self.due is None:
            return replies.failure("UNAVAILABLE", "due work does not run in this service process")
        return await self.due.run_due(command)

    async def _execute(self, command: AnyCommand) -> CommandOk | Failure:
        """Route, then load, decide, append and reply; again on fresh state after a conflict."""
        target_id = routing.target_of(command)
        if target_id is None:
            target_id = await self._sender_of(command)
        reads = routing.reads_of(command)
        async with self.repository.lock(target_id):
            for attempt in range(self.settings.max_attempts):
                fresh = attempt > 0 or self.others_write
                loaded = await self.repository.load(target_id, fresh=fresh)
                others = await self.repository.load_many(reads)
                outcome = await self._attempt(command, loaded, others)
                if outcome is not None:
                    return outcome
                # Another process wrote first; spread the retries so they do not collide again.
                await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
        return replies.failure("UNAVAILABLE", "too much contention on this member; retry later")

    async def _attempt(
        self, command: AnyCommand, loaded: Loaded, others: Mapping[str, Member | None]
    ) -> CommandOk | Failure | None:
        """One decision and append; None when the state was stale and the caller must retry."""
        version = loaded.version
        try:
            decision = decide(command, loaded.state, others, self._context(command, loaded))
        except DomainError:
            # A refusal appends nothing, so no version check guards it: it is answered only when
            # decided on the latest state of every member it read, as the stream's leader holds it
            # (on R3, reads may come from a replica that lags what the leader acknowledged).
            if await self.repository.confirm([loaded.member_id, *others]):
                return None
            raise
        if not decision.events:
            if await self.repository.confirm([loaded.member_id, *others]):
                return None
            assert loaded.state is not None
            return CommandOk(data=reply_data(loaded.state, command), seq=decision.existing_seq)
        if isinstance(command, RegisterMember):
            await self.contacts.record(command)
        try:
            appended = await self.repository.append(loaded, decision.events, version)
        except WrongExpectedVersion as conflict:
            # Another process wrote first: read up to what it wrote before deciding again.
            self.others_write = True
            await self.repository.catch_up_to(loaded, conflict.actual)
            return None
        except AppendRejected as exc:
            log.error("append refused for %s: %s", loaded.member_id, exc)
            return replies.failure("UNAVAILABLE", "the event store refused the write; nothing was recorded")
        assert loaded.state is not None
        return CommandOk(data=reply_data(loaded.state, command), seq=appended.last_seq)

    async def _sender_of(self, command: AnyCommand) -> str:
        """The member whose aggregate holds the InMail a command names: its sender."""
        if not isinstance(command, InMailCommand):
            raise TypeError(f"{type(command).__name__} names neither a member nor an InMail")
        sender = await self.repository.sender_of(command.inmail_id)
        if sender is None:
            raise errors.UnknownInMail(f"unknown InMail {command.inmail_id}")
        return sender

    def _context(self, command: Command, loaded: Loaded) -> Context:
        if self.settings.trust_client_time and command.occurred_at is not None:
            now = command.occurred_at.astimezone(UTC)
        else:
            # The server's clock, never behind the member's latest event: a clock that
            # steps back must not make a command look earlier than what it follows.
            now = self.clock()
            if loaded.state is not None and now < loaded.state.last_event_at:
                now = loaded.state.last_event_at
        return Context(now=now, ids=self.ids)
