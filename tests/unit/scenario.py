"""given(events) / when(command) / then(events | error) for the member aggregate.

``Scenario`` keeps one state per member, evolved from the events given or
recorded, and decides commands against them as the service would. The event
factories below (``registered``, ``sent``, ...) write the "given" part of a
test in one line each.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import msgspec

from contracts.commands import AnyCommand, InMailCommand, RegisterMember, SendInMail
from contracts.events import (
    AnyEvent,
    CreditRefunded,
    FreeReason,
    InMailDeclined,
    InMailRead,
    InMailReplied,
    InMailSent,
    MemberBlocked,
    MemberRegistered,
    MembersConnected,
    PreferencesUpdated,
)
from contracts.policy import CURRENT_POLICY
from contracts.types import Tier, month_of
from services.domain.decider import aggregate_of, decide
from services.domain.errors import DomainError
from services.domain.rules import Context, Decision
from services.domain.state import Member, evolve
from services.reply_data import reply_data
from services.routing import reads_of, target_of

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)

E = TypeVar("E", bound=AnyEvent)


class Scenario:
    """A world of recorded events, a command at a time, and what it decided."""

    def __init__(self, first_seq: int = 1) -> None:
        self.states: dict[str, Member | None] = {}
        self.logs: dict[str, list[tuple[AnyEvent, int]]] = {}
        self.seq = first_seq - 1
        self.ids = (f"id{n}" for n in itertools.count(1))
        self.cmd: AnyCommand | None = None
        self.target_id = ""
        self.decision: Decision | None = None
        self.error: DomainError | None = None

    def given(self, *events: AnyEvent) -> Scenario:
        for event in events:
            self.seq += 1
            owner = aggregate_of(event)
            self.states[owner] = evolve(self.states.get(owner), event, self.seq)
            self.logs.setdefault(owner, []).append((event, self.seq))
        return self

    def when(self, cmd: AnyCommand, at: datetime = T0) -> Scenario:
        self.cmd, self.decision, self.error = cmd, None, None
        self.target_id = target_of(cmd) or self._sender_of(cmd)
        others = {m: self.states.get(m) for m in reads_of(cmd)}
        ctx = Context(now=at, ids=self.ids)
        try:
            self.decision = decide(cmd, self.states.get(self.target_id), others, ctx)
        except DomainError as exc:
            self.error = exc
        return self

    def then(self, *expected: dict[str, Any]) -> list[AnyEvent]:
        """Each expected dict is a subset of the fields of the event at that position."""
        assert self.error is None, f"refused: {self.error!r}"
        assert self.decision is not None
        produced = self.decision.events
        got = [msgspec.structs.asdict(e) | {"type": type(e).__name__} for e in produced]
        assert len(got) == len(expected), f"expected {len(expected)} events, got {got}"
        for want, have in zip(expected, got, strict=True):
            assert {k: have.get(k) for k in want} == want, have
        return produced

    def then_nothing_new(self, seq: int) -> None:
        assert self.error is None, f"refused: {self.error!r}"
        assert self.decision is not None and self.decision.events == []
        assert self.decision.existing_seq == seq

    def then_error(self, error: type[DomainError]) -> DomainError:
        assert self.error is not None, f"accepted: {self.decision}"
        assert type(self.error) is error, repr(self.error)
        return self.error

    def record(self) -> Scenario:
        """Apply what the last command decided, as the service would after appending it."""
        assert self.error is None, f"refused: {self.error!r}"
        assert self.decision is not None
        return self.given(*self.decision.events)

    def done(self, cmd: AnyCommand, at: datetime = T0) -> list[AnyEvent]:
        """A command that must be accepted, recorded: the setup steps of a test."""
        self.when(cmd, at).record()
        assert self.decision is not None
        return self.decision.events

    def decided(self, kind: type[E]) -> list[E]:
        """The events of one type the last command decided."""
        assert self.decision is not None, f"refused: {self.error!r}"
        return [e for e in self.decision.events if isinstance(e, kind)]

    def reply(self) -> msgspec.Struct:
        """The reply data of the last command, from the state recording it."""
        assert self.cmd is not None
        return reply_data(self.state(self.target_id), self.cmd)

    def state(self, member_id: str) -> Member:
        state = self.states.get(member_id)
        assert state is not None
        return state

    def _sender_of(self, cmd: AnyCommand) -> str:
        assert isinstance(cmd, InMailCommand)
        for owner, state in self.states.items():
            if state is not None and cmd.inmail_id in state.inmails:
                return owner
        return ""


def given(*events: AnyEvent) -> Scenario:
    return Scenario().given(*events)


# Commands used as setup -------------------------------------------------------


def register(member_id: str, tier: Tier = "premium_career", **fields: Any) -> RegisterMember:
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


# Given events -------------------------------------------------------------------

_given_ids = itertools.count(1)


def _meta(at: datetime) -> dict[str, Any]:
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
    return MemberRegistered(
        **_meta(at),
        member_id=member_id,
        display_name=member_id.title(),
        tier=tier,
        open_profile=open_profile,
        inmail_opt_out=inmail_opt_out,
        month=month_of(at),
        granted=CURRENT_POLICY.tier(tier).monthly_allotment,
    )


def preferences(
    member_id: str, *, open_profile: bool = False, inmail_opt_out: bool = False, at: datetime = T0
) -> PreferencesUpdated:
    return PreferencesUpdated(
        **_meta(at), member_id=member_id, open_profile=open_profile, inmail_opt_out=inmail_opt_out
    )


def connected(member_id: str, other_member_id: str, *, at: datetime = T0) -> MembersConnected:
    return MembersConnected(**_meta(at), member_id=member_id, other_member_id=other_member_id)


def blocked(member_id: str, blocked_member_id: str, *, at: datetime = T0) -> MemberBlocked:
    return MemberBlocked(**_meta(at), member_id=member_id, blocked_member_id=blocked_member_id)


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
) -> InMailSent:
    return InMailSent(
        **_meta(at),
        inmail_id=inmail_id,
        sender_id=sender,
        recipient_id=recipient,
        sender_tier=sender_tier,
        subject="A role for you",
        body="Would you like to talk?",
        kind="recruiter_outreach",
        charged=charged,
        free_reason=free_reason,
        follow_up_of=follow_up_of,
    )


def _ids_of(mail: InMailSent) -> dict[str, Any]:
    return {"inmail_id": mail.inmail_id, "sender_id": mail.sender_id, "recipient_id": mail.recipient_id}


def read(mail: InMailSent, *, at: datetime = T0) -> InMailRead:
    return InMailRead(**_meta(at), **_ids_of(mail))


def replied(mail: InMailSent, *, at: datetime = T0) -> InMailReplied:
    return InMailReplied(**_meta(at), **_ids_of(mail), body="Tell me more")


def declined(mail: InMailSent, *, at: datetime = T0) -> InMailDeclined:
    return InMailDeclined(**_meta(at), **_ids_of(mail))


def refunded(
    mail: InMailSent, response: InMailReplied | InMailDeclined, *, at: datetime = T0
) -> CreditRefunded:
    return CreditRefunded(
        **_meta(at),
        member_id=mail.sender_id,
        inmail_id=mail.inmail_id,
        response_event_id=response.event_id,
    )
