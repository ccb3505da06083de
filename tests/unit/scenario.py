"""given(events) / when(command) / then(events | error), through the command side's own loop.

``given`` appends events to an ``InMemoryEventStore`` as if the service had
recorded them. ``when`` runs a command through the real ``CommandExecutor`` and
``MemberRepository`` over that store (route, load, decide, append, reply), with
trusted client time: the command happens ``at`` the time given. ``then``
compares what it recorded with the expected events, whole.

Expected events are the contract's Structs, so a misspelt field fails at
construction and under mypy. Their header is filled in from the command (its
time, its command_id, the policy, the event id it minted): start one with
``**HEADER``, or build it with the factories below. An id the decision mints
(an InMail's) is written ``NEW`` and taken from the recorded event.

An InMail id in a given event routes like a minted one: the base-36 stream
sequence of its sender's registration, a dash, anything (``"1-m1"``: an InMail
of the member registered first).
"""

from __future__ import annotations

import asyncio
import itertools
import weakref
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import msgspec

from contracts import subjects
from contracts.admin import SkipEvent
from contracts.commands import AnyCommand, RegisterMember, SendInMail
from contracts.events import (
    AnyEvent,
    CreditRefunded,
    CreditsRefreshed,
    FollowUpPlan,
    FreeReason,
    InMailAcknowledged,
    InMailDeclined,
    InMailRead,
    InMailReplied,
    InMailSent,
    MemberBlocked,
    MemberRegistered,
    MembersConnected,
    PreferencesUpdated,
    decode_event,
    encode_event,
)
from contracts.policy import CURRENT_POLICY
from contracts.replies import CommandOk, Failure
from contracts.types import InMailKind, Tier, month_of, utc
from eventstore import InMemoryEventStore, NewMessage
from services.domain.decider import aggregate_of
from services.domain.errors import DomainError
from services.domain.ids import inmail_id_prefix
from services.domain.rules import Header, fingerprint
from services.domain.state import Member
from services.executor import CommandExecutor, CommandSettings
from services.repository import MemberRepository

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)

NEW = "<minted>"
"""An id the decision mints: ``then`` takes it from the recorded event."""

HEADER: Header = {"event_id": NEW, "occurred_at": T0, "command_id": NEW, "policy": 0, "fingerprint": NEW}
"""The header of an expected event; ``then`` fills it in from the command."""

R = TypeVar("R")
E = TypeVar("E", bound=AnyEvent)


class InMemoryContacts:
    """The ``Contacts`` seam in memory: emails by member and registering command."""

    def __init__(self) -> None:
        self.emails: dict[tuple[str, str], str] = {}

    async def record(self, command: RegisterMember) -> None:
        self.emails[command.member_id, command.command_id] = command.email

    async def email_of(self, member_id: str, registered_by: str) -> str | None:
        return self.emails.get((member_id, registered_by))


class Scenario:
    """Recorded events, one command at a time through the executor, and what it recorded."""

    def __init__(self) -> None:
        self.store = InMemoryEventStore()
        self.contacts = InMemoryContacts()
        self.executor = CommandExecutor(
            MemberRepository(self.store),
            self.contacts,
            CommandSettings(trust_client_time=True),
            ids=(f"id{n}" for n in itertools.count(1)),
        )
        self.cmd: AnyCommand | None = None
        self.at = T0
        self.outcome: CommandOk | Failure | None = None
        self.recorded: list[AnyEvent] = []
        self._loop = asyncio.new_event_loop()
        weakref.finalize(self, self._loop.close)

    def given(self, *events: AnyEvent) -> Scenario:
        """Record events as the service would have, each on its aggregate's subject."""
        for event in events:
            subject = subjects.member_events(aggregate_of(event))
            if isinstance(event, InMailSent):
                [registration] = self._run(self.store.read_subject(subject, limit=1))
                prefix = inmail_id_prefix(registration.seq)
                assert event.inmail_id.startswith(f"{prefix}-"), f"{event.sender_id}'s InMail ids: {prefix}-…"
            version = self._run(self.store.last_seq_of(subject))
            self._run(self.store.append(subject, [NewMessage(event.event_id, encode_event(event))], version))
        return self

    def given_unreadable(self, member_id: str, body: bytes) -> int:
        """A message on a member's subject that is no event this code can read; its sequence."""
        subject = subjects.member_events(member_id)
        version = self._run(self.store.last_seq_of(subject))
        appended = self._run(self.store.append(subject, [NewMessage(f"raw{version}", body)], version))
        return appended.last_seq

    def skip(self, seq: int) -> CommandOk | Failure:
        """An operator's ``inmail quarantine resolve SEQ --skip``, as the service executes it."""
        before = self._run(self.store.last_seq())
        outcome = self._run(self.executor.skip(SkipEvent(seq=seq, reason="unreadable", operator="ops")))
        after = self._run(self.store.last_seq())
        self.recorded = [self._event_at(seq) for seq in range(before + 1, after + 1)]
        return outcome

    def when(self, cmd: AnyCommand, at: datetime = T0) -> Scenario:
        """Execute a command happening ``at``; remember its reply and the events it recorded."""
        self.cmd, self.at = msgspec.structs.replace(cmd, occurred_at=at), at
        before = self._run(self.store.last_seq())
        self.outcome = self._run(self.executor.execute(self.cmd))
        after = self._run(self.store.last_seq())
        self.recorded = [self._event_at(seq) for seq in range(before + 1, after + 1)]
        return self

    def then(self, *expected: AnyEvent) -> list[AnyEvent]:
        """The command was accepted and recorded exactly ``expected``; returns what it recorded."""
        self._accepted()
        pairs = itertools.zip_longest(expected, self.recorded)
        filled = [self._as_recorded(want, got) for want, got in pairs]
        assert self.recorded == filled, _differences(self.recorded, filled)
        return self.recorded

    def then_nothing_new(self, seq: int | None) -> None:
        """Accepted, writing nothing: its effect is already recorded at ``seq``."""
        ok = self._accepted()
        assert self.recorded == []
        assert ok.seq == seq

    def then_error(self, error: type[DomainError]) -> Failure:
        """Refused with the error's code, writing nothing."""
        assert isinstance(self.outcome, Failure), f"accepted: {self.outcome}, recorded {self.recorded}"
        assert self.outcome.error.code == error.code, self.outcome.error
        assert self.recorded == []
        return self.outcome

    def then_unavailable(self) -> Failure:
        """Answered UNAVAILABLE (the store, not the rules, stood in the way), writing nothing."""
        assert isinstance(self.outcome, Failure), f"accepted: {self.outcome}, recorded {self.recorded}"
        assert self.outcome.error.code == "UNAVAILABLE", self.outcome.error
        assert self.recorded == []
        return self.outcome

    def done(self, cmd: AnyCommand, at: datetime = T0) -> list[AnyEvent]:
        """A command that must be accepted: the setup steps of a test. Returns what it recorded."""
        self.when(cmd, at)._accepted()
        return self.recorded

    def recorded_of(self, kind: type[E]) -> list[E]:
        """The events of one type the last command recorded."""
        return [event for event in self.recorded if isinstance(event, kind)]

    @property
    def reply(self) -> Any:
        """The reply data of the last command."""
        return self._accepted().data

    def state(self, member_id: str) -> Member:
        """A member's state rebuilt from every event recorded for them, as a process starting
        afresh loads it (passing over the events an operator skipped)."""
        state = self._run(MemberRepository(self.store).load(member_id)).state
        assert state is not None, f"{member_id} is not registered"
        return state

    def evolved(self, member_id: str) -> Member:
        """A member's state as the service holds it: evolved event by event as it appended them."""
        state = self._run(self.executor.repository.load(member_id, fresh=False)).state
        assert state is not None, f"{member_id} is not registered"
        return state

    def _accepted(self) -> CommandOk:
        assert isinstance(self.outcome, CommandOk), f"refused: {self.outcome}"
        return self.outcome

    def _as_recorded(self, want: AnyEvent | None, got: AnyEvent | None) -> AnyEvent | None:
        if want is None:
            return None
        assert self.cmd is not None
        minted: dict[str, Any] = {}
        if type(got) is type(want):
            minted = {name: getattr(got, name) for name in want.__struct_fields__
                      if name not in HEADER and getattr(want, name) == NEW}
        return msgspec.structs.replace(
            want,
            event_id=got.event_id if got is not None else NEW,
            occurred_at=utc(self.at),
            command_id=self.cmd.command_id,
            policy=CURRENT_POLICY.version,
            fingerprint=fingerprint(self.cmd),
            **minted,
        )

    def _event_at(self, seq: int) -> AnyEvent:
        stored = self._run(self.store.get(seq))
        assert stored is not None
        return decode_event(stored.data)

    def _run(self, step: Coroutine[Any, Any, R]) -> R:
        return self._loop.run_until_complete(step)


def _differences(recorded: list[AnyEvent], expected: list[AnyEvent | None]) -> str:
    """Where two event lists differ, position by position, field by field."""
    lines = []
    for position, (got, want) in enumerate(itertools.zip_longest(recorded, expected)):
        if got == want:
            continue
        if got is None or want is None or type(got) is not type(want):
            lines.append(f"[{position}] recorded {got!r}\n    expected {want!r}")
            continue
        for name in want.__struct_fields__:
            if getattr(got, name) != getattr(want, name):
                lines.append(f"[{position}] {type(want).__name__}.{name}: recorded "
                             f"{getattr(got, name)!r}, expected {getattr(want, name)!r}")
    return "\n".join(lines)


def given(*events: AnyEvent) -> Scenario:
    """A new scenario with these events recorded."""
    return Scenario().given(*events)


# Commands -----------------------------------------------------------------------


def register(member_id: str, tier: Tier = "premium_career", **fields: Any) -> RegisterMember:
    """The one way tests build a registration: display name and email follow from the id."""
    fields = {"command_id": f"reg-{member_id}"} | fields
    return RegisterMember(
        member_id=member_id,
        display_name=member_id.title(),
        email=f"{member_id}@example.com",
        tier=tier,
        **fields,
    )


def send(sender: str, recipient: str, command_id: str = "send", **fields: Any) -> SendInMail:
    fields = {"subject": "A role for you", "body": "Would you like to talk?"} | fields
    return SendInMail(command_id=command_id, sender_id=sender, recipient_id=recipient, **fields)


# Events ---------------------------------------------------------------------------

_given_ids = itertools.count(1)


def meta(at: datetime) -> dict[str, Any]:
    n = next(_given_ids)
    return {"event_id": f"ev{n}", "occurred_at": at, "command_id": f"given{n}"}


def registered(
    member_id: str,
    tier: Tier = "premium_career",
    *,
    at: datetime = T0,
    open_profile: bool = False,
    inmail_opt_out: bool = False,
) -> MemberRegistered:
    """A member registered ``at``, with what ``register`` would have recorded."""
    return MemberRegistered(
        **meta(at),
        member_id=member_id,
        display_name=member_id.title(),
        tier=tier,
        open_profile=open_profile,
        inmail_opt_out=inmail_opt_out,
        month=month_of(at),
        granted=CURRENT_POLICY.tier(tier).monthly_allotment,
    )


def refreshed(
    member_id: str,
    month: str,
    *,
    granted: int,
    forfeited: int = 0,
    tier: Tier = "premium_career",
    at: datetime = T0,
) -> CreditsRefreshed:
    return CreditsRefreshed(
        **meta(at), member_id=member_id, month=month, tier=tier, granted=granted, forfeited=forfeited
    )


def preferences(
    member_id: str,
    *,
    open_profile: bool = False,
    inmail_opt_out: bool = False,
    email_notifications: bool = True,
    at: datetime = T0,
) -> PreferencesUpdated:
    return PreferencesUpdated(
        **meta(at), member_id=member_id, open_profile=open_profile, inmail_opt_out=inmail_opt_out,
        email_notifications=email_notifications,
    )


def connected(member_id: str, other_member_id: str, *, at: datetime = T0) -> MembersConnected:
    return MembersConnected(**meta(at), member_id=member_id, other_member_id=other_member_id)


def blocked(member_id: str, blocked_member_id: str, *, at: datetime = T0) -> MemberBlocked:
    return MemberBlocked(**meta(at), member_id=member_id, blocked_member_id=blocked_member_id)


def sent(
    sender: str,
    recipient: str,
    inmail_id: str,
    *,
    at: datetime = T0,
    charged: bool = True,
    free_reason: FreeReason | None = None,
    follow_up_of: str | None = None,
    sender_tier: Tier = "premium_career",
    subject: str = "A role for you",
    body: str = "Would you like to talk?",
    kind: InMailKind = "recruiter_outreach",
    template_id: str | None = None,
    bulk: bool = False,
    scheduled: bool = False,
    automated: bool = False,
    automated_follow_up: FollowUpPlan | None = None,
) -> InMailSent:
    """An InMail as ``send`` would have recorded it (the same subject and body by default)."""
    return InMailSent(
        **meta(at),
        inmail_id=inmail_id,
        sender_id=sender,
        recipient_id=recipient,
        sender_tier=sender_tier,
        subject=subject,
        body=body,
        kind=kind,
        charged=charged,
        free_reason=free_reason,
        follow_up_of=follow_up_of,
        template_id=template_id,
        bulk=bulk,
        scheduled=scheduled,
        automated=automated,
        automated_follow_up=automated_follow_up,
    )


def _ids_of(mail: InMailSent) -> dict[str, Any]:
    return {"inmail_id": mail.inmail_id, "sender_id": mail.sender_id, "recipient_id": mail.recipient_id}


def read(mail: InMailSent, *, at: datetime = T0) -> InMailRead:
    return InMailRead(**meta(at), **_ids_of(mail))


def acknowledged(mail: InMailSent, *, at: datetime = T0) -> InMailAcknowledged:
    return InMailAcknowledged(**meta(at), **_ids_of(mail))


def replied(mail: InMailSent, *, body: str = "Tell me more", at: datetime = T0) -> InMailReplied:
    return InMailReplied(**meta(at), **_ids_of(mail), body=body)


def declined(mail: InMailSent, *, reason: str | None = None, at: datetime = T0) -> InMailDeclined:
    return InMailDeclined(**meta(at), **_ids_of(mail), reason=reason)


def refunded(mail: InMailSent, response_event_id: str, *, at: datetime = T0) -> CreditRefunded:
    return CreditRefunded(
        **meta(at),
        member_id=mail.sender_id,
        inmail_id=mail.inmail_id,
        response_event_id=response_event_id,
    )
