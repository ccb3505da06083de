"""Executing commands: decode, load, decide, append, reply.

Transport-free: the FastStream handlers in ``inmail.app`` hand raw bodies in
and send the bytes that come out. Every path ends in a reply envelope; no
exception escapes to the transport.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from contracts import replies
from contracts.commands import COMMANDS, AnyCommand, Command, RegisterMember
from contracts.replies import CommandOk, Failure
from eventstore import (
    AppendRejected,
    OutcomeUnknown,
    StoreUnavailable,
    WrongExpectedVersion,
)
from services.contacts import ContactBook
from services.domain import member
from services.domain.errors import DomainError
from services.repository import Loaded, MemberRepository

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


_decoders = {cls.__name__: msgspec.json.Decoder(cls) for cls in COMMANDS}


def decode_command(name: str, body: bytes) -> AnyCommand | Failure:
    """A command from its subject's name and its body, or an INVALID_COMMAND failure."""
    decoder = _decoders.get(name)
    if decoder is None:
        return replies.failure("INVALID_COMMAND", f"unknown command {name}")
    try:
        command: AnyCommand = decoder.decode(body)  # type: ignore[assignment]
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return replies.failure("INVALID_COMMAND", _explain(exc))
    return command


def _explain(exc: Exception) -> str:
    text = str(exc)
    if isinstance(exc, msgspec.DecodeError) and "malformed" in text.lower():
        return f"body is not valid JSON: {text}"
    if text.startswith("Expected `object`"):
        return "body must be a JSON object"
    return text


@dataclass(frozen=True, slots=True)
class CommandSettings:
    """How commands are executed."""

    trust_client_time: bool = False
    max_attempts: int = 20
    """Optimistic-concurrency retries on fresh state before giving up with UNAVAILABLE."""


class CommandExecutor:
    """Runs commands against the member aggregates; safe for many concurrent commands."""

    def __init__(
        self,
        repository: MemberRepository,
        contacts: ContactBook,
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

    async def handle_raw(self, name: str, body: bytes) -> bytes:
        """Decode and execute a command; the encoded reply envelope."""
        decoded = decode_command(name, body)
        if isinstance(decoded, Failure):
            return replies.encode(decoded)
        return replies.encode(await self.execute(decoded))

    async def execute(self, command: AnyCommand) -> CommandOk | Failure:
        """Execute one command; raises only ``OutcomeUnknown`` (then no reply is sent)."""
        try:
            return await self._execute(command)
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
        except Exception:
            log.exception("command %s failed", type(command).__name__)
            return replies.failure("UNAVAILABLE", "internal error; nothing was recorded")

    async def _execute(self, command: AnyCommand) -> CommandOk | Failure:
        target_id = member.target_of(command)
        if target_id is None:
            inmail_id: str = getattr(command, "inmail_id", "")
            target_id = await self.repository.sender_of(inmail_id)
            if target_id is None:
                return replies.failure("UNKNOWN_INMAIL", f"unknown InMail {inmail_id}")
        async with self.repository.lock(target_id):
            for attempt in range(self.settings.max_attempts):
                loaded = await self.repository.load(target_id, fresh=attempt > 0)
                outcome = await self._attempt(command, loaded, checked=attempt > 0)
                if outcome is not None:
                    return outcome
                # Another process wrote first; spread the retries so they do not collide again.
                await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
        return replies.failure("UNAVAILABLE", "too much contention on this member; retry later")

    async def _attempt(
        self, command: AnyCommand, loaded: Loaded, *, checked: bool
    ) -> CommandOk | Failure | None:
        """One decision and append; None when the state was stale and the caller must retry."""
        others = await self.repository.load_many(member.reads_of(command))
        version = loaded.version
        try:
            decision = member.decide(command, loaded.state, others, self._context(command, loaded))
        except DomainError:
            # A refusal appends nothing, so no version check guards it: make sure it was
            # decided on the latest state before answering.
            if not checked and await self.repository.catch_up(loaded):
                return None
            raise
        if not decision.events:
            if not checked and await self.repository.catch_up(loaded):
                return None
            assert loaded.state is not None
            return CommandOk(data=member.reply_data(loaded.state, command), seq=decision.existing_seq)
        if isinstance(command, RegisterMember):
            await self.contacts.record(command)
        try:
            appended = await self.repository.append(loaded, decision.events, version)
        except WrongExpectedVersion:
            return None
        except AppendRejected as exc:
            log.error("append refused for %s: %s", loaded.member_id, exc)
            return replies.failure("UNAVAILABLE", "the event store refused the write; nothing was recorded")
        assert loaded.state is not None
        return CommandOk(data=member.reply_data(loaded.state, command), seq=appended.last_seq)

    def _context(self, command: Command, loaded: Loaded) -> member.Context:
        if self.settings.trust_client_time and command.occurred_at is not None:
            now = command.occurred_at.astimezone(UTC)
        else:
            # The server's clock, never behind the member's latest event: a clock that
            # steps back must not make a command look earlier than what it follows.
            now = self.clock()
            if loaded.state is not None and now < loaded.state.last_event_at:
                now = loaded.state.last_event_at
        return member.Context(now=now, ids=self.ids)
