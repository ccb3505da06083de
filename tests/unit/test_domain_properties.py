"""Properties of the member aggregate over random histories of a few members.

Each example registers some members, then plays random commands through
``decide`` and ``evolve`` exactly as the service would (accepted decisions are
recorded, refused ones change nothing), with time moving forward by random
amounts across months and, now and then, a command claiming an earlier time.
Scheduled sends, automated follow-ups and their cancellations mix in, and now
and then the due work found by the service's own ``DueIndex`` is performed.
After every step the credit books must balance and no InMail is delivered
twice; after the whole history, rebuilding each member from its recorded events
must give the evolved state.
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.commands import (
    DUE_COMMANDS,
    AcknowledgeInMail,
    AnyCommand,
    AutomatedFollowUp,
    BlockMember,
    CancelFollowUp,
    CancelScheduledInMail,
    ChangeTier,
    ConnectMembers,
    DeclineInMail,
    MarkInMailRead,
    RecordReply,
    RefreshCredits,
    RegisterMember,
    SendBulkInMail,
    SendInMail,
    UpdatePreferences,
)
from contracts.events import (
    AnyEvent,
    CreditRefunded,
    CreditsForfeited,
    CreditsRefreshed,
    InMailScheduled,
    InMailSent,
    MemberRegistered,
    ScheduledInMailCancelled,
    TierChanged,
)
from contracts.policy import CURRENT_POLICY
from contracts.types import Tier, month_of, utc
from services.domain.decider import aggregate_of, decide
from services.domain.errors import DomainError
from services.domain.ids import registered_seq_of
from services.domain.rules import Context, Decision
from services.domain.state import Member, evolve, rebuild
from services.due.index import DueIndex
from services.reply_data import reply_data
from services.routing import reads_of, target_of

MEMBERS = ["m0", "m1", "m2", "m3"]
TIERS: list[Tier] = list(CURRENT_POLICY.tiers)
START = datetime(2026, 1, 3, 10, 0, tzinfo=UTC)
HOUR, DAY = 3600, 86400

who = st.integers(0, len(MEMBERS) - 1)
other = st.integers(1, len(MEMBERS) - 1)  # an offset from the member acting: never themself
pick = st.integers(0, 1000)
maybe_bool = st.none() | st.booleans()
rarely = st.sampled_from([False, False, False, False, True])
message = st.sampled_from(["ok"] * 8 + ["blank", "long"])
step_delay = st.one_of(
    st.just(0),
    st.integers(1, 6 * HOUR),
    st.integers(1, 6 * HOUR),
    st.integers(1, 10 * DAY),
    st.integers(1, 10 * DAY),
    st.integers(20 * DAY, 70 * DAY),
    st.integers(-2 * HOUR, -1),  # a command claiming a time before the latest event
)
send_step = st.tuples(st.just("send"), who, other, st.none(), message, st.booleans())
schedule_step = st.tuples(st.just("schedule"), who, other, st.integers(1, 5 * DAY), message, st.booleans())
respond_step = st.tuples(st.sampled_from(["read", "ack", "reply", "reply", "decline"]), pick, st.none())
command_steps = st.one_of(
    st.tuples(st.just("register"), who, st.sampled_from(TIERS), rarely, rarely),
    st.tuples(st.just("tier"), who, st.sampled_from(TIERS)),
    st.tuples(st.just("prefs"), who, maybe_bool, st.none() | rarely),
    st.tuples(st.just("connect"), who, other),
    st.tuples(st.just("block"), who, other),
    st.tuples(st.just("refresh"), who, st.integers(-3, 1)),
    send_step,
    send_step,
    st.tuples(st.just("burst"), who, other, st.integers(2, 12)),  # spends credits down to nothing
    st.tuples(st.just("send"), who, st.integers(0, len(MEMBERS) - 1), pick, message, rarely),  # follow-ups
    st.tuples(st.just("bulk"), who, st.sets(other, min_size=2, max_size=3), message),
    schedule_step,
    schedule_step,
    st.tuples(st.sampled_from(["cancel", "cancel_follow_up"]), pick),
    st.tuples(st.just("due"), pick),
    st.tuples(st.just("due"), pick),
    respond_step,
    respond_step,
    st.tuples(st.sampled_from(["read", "ack", "reply", "decline"]), pick, who),  # maybe not the recipient
)
steps = st.one_of(
    command_steps,
    command_steps,
    command_steps,
    command_steps,
    st.tuples(st.just("repeat"), pick),
    st.tuples(st.just("reuse"), pick, command_steps),  # another command under a used command_id
)
first_members = st.lists(st.tuples(st.sampled_from(TIERS), rarely, rarely), min_size=3,
                         max_size=len(MEMBERS))


@dataclass
class Books:
    """A member's credits, added up by the test from the events alone."""

    granted: int = 0
    spent: int = 0
    refunded: int = 0
    forfeited: int = 0
    months: set[str] = field(default_factory=set)

    @property
    def balance(self) -> int:
        return self.granted - self.spent + self.refunded - self.forfeited


class World:
    """Every member's state and recorded events, as the service would keep them."""

    def __init__(self) -> None:
        self.states: dict[str, Member] = {}
        self.logs: dict[str, list[tuple[AnyEvent, int]]] = {}
        self.books: dict[str, Books] = {}
        self.by_registration: dict[int, str] = {}
        self.inmails: list[InMailSent] = []
        self.charged: set[str] = set()
        self.refunds: Counter[str] = Counter()
        self.delivered: Counter[str] = Counter()
        self.scheduled: dict[str, InMailScheduled] = {}
        self.cancelled: set[str] = set()
        self.due = DueIndex()
        self.answered: list[tuple[AnyCommand, int, msgspec.Struct]] = []
        self.seq = 0
        self.now = START
        self.commands = itertools.count(1)

    # Playing a step -----------------------------------------------------------------------

    def play(self, step: tuple[Any, ...], delay: int) -> None:
        at = self.now + timedelta(seconds=delay)
        self.now = max(self.now, at)
        if step[0] == "repeat":
            self.repeat(step[1], at)
            return
        if step[0] == "reuse":
            self.reuse(step[1], step[2], at)
            return
        if step[0] == "burst":
            _, sender, offset, count = step
            for _ in range(count):
                self.play(("send", sender, offset, None, "ok", False), delay=0)
            return
        if step[0] == "due":
            self.perform_due(at)
            return
        cmd = self.command(step)
        if cmd is not None:
            self.run(cmd, at)

    def command(self, step: tuple[Any, ...]) -> AnyCommand | None:
        kind, cid = step[0], f"c{next(self.commands)}"
        match step:
            case ("register", m, tier, open_profile, opt_out):
                return RegisterMember(command_id=cid, member_id=MEMBERS[m], display_name="M",
                                      email="m@example.com", tier=tier, open_profile=open_profile,
                                      inmail_opt_out=opt_out)
            case ("tier", m, tier):
                return ChangeTier(command_id=cid, member_id=MEMBERS[m], tier=tier)
            case ("prefs", m, open_profile, opt_out):
                return UpdatePreferences(command_id=cid, member_id=MEMBERS[m], open_profile=open_profile,
                                         inmail_opt_out=opt_out)
            case ("connect", a, offset):
                return ConnectMembers(command_id=cid, member_id=MEMBERS[a], other_member_id=peer(a, offset))
            case ("block", a, offset):
                return BlockMember(command_id=cid, member_id=MEMBERS[a], blocked_member_id=peer(a, offset))
            case ("refresh", m, offset):
                month = months_after(self.now, offset)
                return RefreshCredits(command_id=cid, member_id=MEMBERS[m], month=month)
            case ("send", a, b, follow_up, text, automated):
                original = None
                if follow_up is not None and self.inmails:
                    original = self.inmail(follow_up).inmail_id
                return SendInMail(command_id=cid, sender_id=MEMBERS[a], recipient_id=peer(a, b),
                                  follow_up_of=original, automated_follow_up=automated_follow_up(automated),
                                  **texts(text))
            case ("schedule", a, b, ahead, text, automated):
                return SendInMail(command_id=cid, sender_id=MEMBERS[a], recipient_id=peer(a, b),
                                  send_at=self.now + timedelta(seconds=ahead),
                                  automated_follow_up=automated_follow_up(automated), **texts(text))
            case ("cancel" | "cancel_follow_up", n):
                if not self.scheduled:
                    return None
                mail = list(self.scheduled.values())[n % len(self.scheduled)]
                kind_of = CancelScheduledInMail if kind == "cancel" else CancelFollowUp
                return kind_of(command_id=cid, inmail_id=mail.inmail_id, member_id=mail.sender_id)
            case ("bulk", a, recipients, text):
                return SendBulkInMail(command_id=cid, sender_id=MEMBERS[a],
                                      recipient_ids=[peer(a, r) for r in sorted(recipients)], **texts(text))
            case (_, inmail_pick, responder):
                if not self.inmails:
                    return None
                mail = self.inmail(inmail_pick)
                by = mail.recipient_id if responder is None else MEMBERS[responder]
                ids: dict[str, Any] = {"command_id": cid, "inmail_id": mail.inmail_id, "member_id": by}
                if kind == "read":
                    return MarkInMailRead(**ids)
                if kind == "ack":
                    return AcknowledgeInMail(**ids)
                if kind == "reply":
                    return RecordReply(**ids, body="Thanks")
                return DeclineInMail(**ids)
        raise AssertionError(step)

    def inmail(self, n: int) -> InMailSent:
        return self.inmails[n % len(self.inmails)]

    def decision(self, cmd: AnyCommand, at: datetime) -> tuple[Decision | None, DomainError | None]:
        target = self.states.get(self.target(cmd))
        others = {m: self.states.get(m) for m in reads_of(cmd)}
        ctx = Context(now=at, ids=(f"{cmd.command_id}-{n}" for n in itertools.count()))
        try:
            return decide(cmd, target, others, ctx), None
        except DomainError as refusal:
            return None, refusal

    def target(self, cmd: AnyCommand) -> str:
        target = target_of(cmd)
        if target is None:
            assert isinstance(cmd, MarkInMailRead | AcknowledgeInMail | RecordReply | DeclineInMail
                              | CancelScheduledInMail | CancelFollowUp)
            registered_seq = registered_seq_of(cmd.inmail_id)
            assert registered_seq is not None, cmd.inmail_id
            target = self.by_registration[registered_seq]
        return target

    def run(self, cmd: AnyCommand, at: datetime) -> None:
        before = copy.deepcopy(self.states)
        decision, refusal = self.decision(cmd, at)
        assert self.states == before, "decide changed the state it was given"
        again, refusal_again = self.decision(cmd, at)
        if refusal is not None:
            assert refusal_again is not None, "refusals are deterministic"
            assert refusal_again.code == refusal.code, "refusals are deterministic"
            return
        assert decision is not None and decision == again, "decisions are deterministic"
        target = self.target(cmd)
        # Due work found late is recorded at the member's latest time, never earlier.
        when = max(utc(at), before[target].last_event_at) if target in before else utc(at)
        for event in decision.events:
            assert aggregate_of(event) == target, "a decision writes only its target aggregate"
            assert event.command_id == cmd.command_id
            assert event.occurred_at == (when if isinstance(cmd, DUE_COMMANDS) else utc(at))
            self.record(event)
        reply = reply_data(self.states[target], cmd)
        if decision.events:
            self.answered.append((cmd, self.seq, reply))
        else:
            assert 0 < decision.existing_seq <= self.seq

    def perform_due(self, until: datetime) -> None:
        """Perform what the service's index finds due, each item at its due time, until none is."""
        for _ in range(200):
            item = next((found for m in self.due.members_due(until)
                         if (found := self.due.next_for(m, until)) is not None), None)
            if item is None:
                return
            before = self.seq
            self.run(item.command, item.due_at)
            assert self.seq > before, f"due work {item.key} wrote nothing"
            assert not self.due.is_pending(item.key), f"due work {item.key} is still pending"
        raise AssertionError("due work never ran out")

    def repeat(self, n: int, at: datetime) -> None:
        if not self.answered:
            return
        cmd, seq, reply = self.answered[n % len(self.answered)]
        decision, refusal = self.decision(cmd, at)
        assert refusal is None, f"a repeat was refused: {refusal!r}"
        assert decision == Decision.already(seq)
        assert reply_data(self.states[self.target(cmd)], cmd) == reply

    def reuse(self, n: int, step: tuple[Any, ...], at: datetime) -> None:
        """A new command under a command_id its target already recorded writes nothing."""
        cmd = self.command(step) if self.answered and step[0] not in ("burst", "due") else None
        if cmd is None:
            return
        used, _, _ = self.answered[n % len(self.answered)]
        cmd = msgspec.structs.replace(cmd, command_id=used.command_id)
        events_before = self.seq
        self.run(cmd, at)
        if self.target(cmd) == self.target(used):
            assert self.seq == events_before, "a used command_id wrote new events"

    # Recording an event, and what must hold after it ---------------------------------------------

    def record(self, event: AnyEvent) -> None:
        self.seq += 1
        self.due.apply(self.seq, event)
        owner = aggregate_of(event)
        state = self.states[owner] = evolve(self.states.get(owner), event, self.seq)
        self.logs.setdefault(owner, []).append((event, self.seq))
        books = self.books.setdefault(owner, Books())
        month = month_of(event.occurred_at)
        match event:
            case MemberRegistered():
                self.by_registration[self.seq] = owner
                books.granted += event.granted
                books.months.add(event.month)
            case CreditsRefreshed():
                books.granted += event.granted
                books.forfeited += event.forfeited
                books.months.add(event.month)
                assert state.balance <= CURRENT_POLICY.tier(event.tier).cap, "refreshed above the cap"
            case TierChanged():
                books.granted += event.granted
                assert month in books.months, "refresh before a tier change"
            case CreditsForfeited():
                books.forfeited += event.amount
                assert month in books.months, "refresh before a forfeit"
            case InMailSent():
                self.inmails.append(event)
                self.delivered[event.inmail_id] += 1
                assert self.delivered[event.inmail_id] == 1, "delivered twice"
                assert event.inmail_id not in self.cancelled, "delivered after it was cancelled"
                assert event.scheduled == (event.inmail_id in self.scheduled)
                if event.charged and not event.scheduled:
                    books.spent += 1
                    self.charged.add(event.inmail_id)
                    assert month in books.months, "refresh before a charged send"
            case InMailScheduled():
                self.scheduled[event.inmail_id] = event
                if event.charged:
                    books.spent += 1
                    self.charged.add(event.inmail_id)
                    assert month in books.months, "refresh before a charged send"
            case ScheduledInMailCancelled():
                assert event.inmail_id not in self.delivered, "cancelled after delivery"
                self.cancelled.add(event.inmail_id)
            case CreditRefunded():
                books.refunded += 1
                self.refunds[event.inmail_id] += 1
                assert self.refunds[event.inmail_id] == 1, "one refund per InMail"
                assert event.inmail_id in self.charged, "refunds only for charged InMail"
                assert (event.reason == "cancelled") == (event.inmail_id in self.cancelled)
                assert month in books.months, "refresh before a refund"
        assert state.balance >= 0
        assert state.balance == books.balance
        assert (state.granted, state.spent, state.refunded, state.forfeited) == (
            books.granted, books.spent, books.refunded, books.forfeited)

    def check_rebuild(self) -> None:
        for member_id, log in self.logs.items():
            assert rebuild(log) == self.states[member_id], f"rebuilding {member_id}"


def peer(member_index: int, offset: int) -> str:
    return MEMBERS[(member_index + offset) % len(MEMBERS)]


def months_after(moment: datetime, offset: int) -> str:
    index = moment.year * 12 + moment.month - 1 + offset
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def automated_follow_up(wanted: bool) -> AutomatedFollowUp | None:
    return AutomatedFollowUp(after_days=3, subject="Again", body="Any thoughts?") if wanted else None


def texts(kind: str) -> dict[str, Any]:
    if kind == "blank":
        return {"subject": "  ", "body": "Hello"}
    if kind == "long":
        return {"subject": "Hello", "body": "x" * (CURRENT_POLICY.body_max_chars + 1)}
    return {"subject": "Hello", "body": "A role for you"}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first_members, st.lists(st.tuples(steps, step_delay), min_size=15, max_size=60))
def test_random_histories_keep_the_books_balanced_and_rebuild_to_the_same_state(founders, history):
    """After every event: the balance is never negative and equals granted - spent + refunded -
    forfeited (added up from the events); a refresh leaves at most the cap; a month's refresh
    comes before its first credit movement; an InMail is refunded at most once, and only if
    charged. After every decision: decide left its input unchanged, decides the same again
    (a refusal with the same code), and wrote only to its target. A repeat answers with the
    original seq and reply; another command under a used command_id writes nothing. No InMail
    is delivered twice, nor after its cancellation, and only a cancelled one is refunded without
    a response; due work the index finds is performed, once. At the end, rebuilding each member
    from its recorded events gives the state evolved step by step.
    """
    world = World()
    for m, (tier, open_profile, opt_out) in enumerate(founders):
        paid = CURRENT_POLICY.tier(tier).paid
        world.play(("register", m, tier, open_profile and paid, opt_out), delay=0)
    assert len(world.states) == len(founders)
    for step, delay in history:
        world.play(step, delay)
    world.check_rebuild()
