"""The what-if fold: the recorded history, and the same history decided again under another policy.

Fed the recorded events in stream order, it keeps two states per member side by
side. The *recorded* one evolves the recorded events. For the *what-if* one,
each recorded decision (the events one command wrote to one aggregate) is
turned back into its command (``commands.command_of``) and decided again by the
service's own ``decide``, at the recorded time, with a ``Context`` carrying the
other policy; the events *that* decision makes evolve the what-if state. No
rule is written twice: refreshes, grants, forfeits, refunds and refusals all
come from the same decision modules as in the service.

Two things keep the two histories comparable:

- An InMail the what-if sends takes the id the recorded one got, so later
  commands naming it (its read receipt, reply, follow-up, delivery) find it. An
  InMail the what-if refused is absent from its history, and so is everything
  that followed it (its responses and follow-ups are refused as unknown, not
  counted again).
- When an assessment is due depends on the policy (its periods, its minimum,
  its warnings), so the what-if finds its own due assessments and ends of
  suspensions in its own history with the service's due-work index
  (``services.due.index``), and performs a member's items due by the time of
  that member's next recorded decision, and at the end everything due by the
  last recorded event. Recorded assessments are not decided again.

Pure: no I/O, no clock; ``inmail.ops.whatif`` reads the stream and feeds it.
"""

from __future__ import annotations

import contextlib
import itertools
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime

import msgspec

from contracts.commands import AnyCommand, RefreshCredits
from contracts.events import (
    AnyEvent,
    BulkSuspensionEnded,
    CreditsRefreshed,
    FollowUpCancelled,
    InMailScheduled,
    InMailSent,
    MemberRegistered,
    ResponseRateAssessed,
)
from contracts.policy import Policy
from contracts.whatif import WhatIfReport
from services.domain.decider import aggregate_of, decide
from services.domain.errors import DomainError
from services.domain.rules import Context
from services.domain.state import Member, evolve
from services.due.index import DueIndex
from services.routing import reads_of
from services.whatif.recorded import command_of, is_send, sends_in
from services.whatif.report import compare

_DUE_KINDS = ("assessment", "end_suspension")


class WhatIf:
    """Feed it the recorded events (``apply``), then ``finish`` it and ask for its ``report``."""

    def __init__(self, rules: Policy) -> None:
        self.policy = rules
        self.recorded: dict[str, Member] = {}
        self.whatif: dict[str, Member] = {}
        self.refused_recorded: Counter[str] = Counter()
        self.refused_whatif: Counter[str] = Counter()
        self.events = 0
        """Recorded events folded."""
        self.last_at: datetime | None = None
        """The time of the latest recorded event: the what-if's due work is done up to it."""
        self._ids: Iterator[str] = (f"whatif{n}" for n in itertools.count(1))
        self._due = DueIndex(policies=lambda _version: rules)
        self._group: list[AnyEvent] = []
        self._seqs: list[int] = []
        self._key: tuple[str, str] = ("", "")
        self._last_seq = 0

    def apply(self, seq: int, event: AnyEvent) -> None:
        """Fold one recorded event (in stream order)."""
        key = (aggregate_of(event), event.command_id)
        if self._group and key != self._key:
            self._flush()
        self._key = key
        self._group.append(event)
        self._seqs.append(seq)
        self._last_seq = seq
        self.events += 1
        if self.last_at is None or event.occurred_at > self.last_at:
            self.last_at = event.occurred_at

    def finish(self) -> None:
        """The last decision, then the what-if's due work up to the last recorded event."""
        if self._group:
            self._flush()
        if self.last_at is not None:
            for member_id in self._due.members_due(self.last_at):
                self._perform_due(member_id, self.last_at, self._last_seq)

    def report(self, member_id: str | None = None) -> WhatIfReport:
        """Every member (or one) compared, listing those that differ, and the total."""
        members = sorted(self.recorded.keys() | self.whatif.keys()) if member_id is None else [member_id]
        recorded, whatif = self.refused_recorded, self.refused_whatif
        return compare(
            [(m, self.recorded.get(m), self.whatif.get(m), recorded[m], whatif[m]) for m in members]
        )

    def _flush(self) -> None:
        events, seqs = self._group, self._seqs
        self._group, self._seqs = [], []
        member_id = self._key[0]
        self._evolve_recorded(member_id, events, seqs)
        self._perform_due(member_id, events[0].occurred_at, seqs[0])
        cmd = command_of(events)
        if cmd is not None:
            self._decide_again(member_id, cmd, events, seqs[-1])
        self._refresh_as_recorded(member_id, events, seqs[-1])

    def _decide_again(self, member_id: str, cmd: AnyCommand, recorded: Sequence[AnyEvent], seq: int) -> None:
        others = {other: self.whatif.get(other) for other in reads_of(cmd)}
        ctx = Context(now=recorded[0].occurred_at, ids=self._ids, policy=self.policy)
        try:
            decision = decide(cmd, self.whatif.get(member_id), others, ctx)
        except DomainError:
            if is_send(cmd):
                self.refused_whatif[member_id] += sends_in(cmd)
            return
        decided = decision.events
        if is_send(cmd):
            decided = _with_recorded_ids(decided, recorded)
        self._evolve_whatif(member_id, decided, seq)

    def _refresh_as_recorded(self, member_id: str, recorded: Sequence[AnyEvent], seq: int) -> None:
        """Refresh the what-if member when the recorded decision did, if its own did not.

        A month's refresh is recorded lazily, with the first credit movement of the month
        (or the monthly scheduler's command). Where the what-if has no such movement (a send
        it refused, a response it does not refund), it still refreshes at the same moment as
        the recorded history, so the cap applies to balances at the same times on both sides.
        """
        months = [event.month for event in recorded if isinstance(event, CreditsRefreshed)]
        state = self.whatif.get(member_id)
        if not months or state is None or state.last_refreshed_month >= max(months):
            return
        refresh = RefreshCredits(
            command_id=f"whatif-refresh-{max(months)}", member_id=member_id, month=max(months)
        )
        self._decide_again(member_id, refresh, recorded, seq)

    def _evolve_recorded(self, member_id: str, events: Sequence[AnyEvent], seqs: Sequence[int]) -> None:
        state = self.recorded.get(member_id)
        for event, seq in zip(events, seqs, strict=True):
            if state is None and not isinstance(event, MemberRegistered):
                continue  # an operator's skip of a registration no one could read
            state = evolve(state, event, seq)
            if _refused_follow_up(event):
                self.refused_recorded[member_id] += 1
        if state is not None:
            self.recorded[member_id] = state

    def _evolve_whatif(self, member_id: str, events: Sequence[AnyEvent], seq: int) -> None:
        state = self.whatif.get(member_id)
        for event in events:
            state = evolve(state, event, seq)
            if _refused_follow_up(event):
                self.refused_whatif[member_id] += 1
            match event:
                case InMailSent():
                    # Only enforcement is found in the what-if's own history: deliveries and
                    # follow-ups follow the recorded ones.
                    self._due.apply(seq, msgspec.structs.replace(event, automated_follow_up=None))
                case ResponseRateAssessed() | BulkSuspensionEnded():
                    self._due.apply(seq, event)
        if state is not None:
            self.whatif[member_id] = state

    def _perform_due(self, member_id: str, until: datetime, seq: int) -> None:
        """The member's what-if assessments and ends of suspension due by ``until``, in due order."""
        while (item := self._due.next_for(member_id, until)) is not None:
            events: list[AnyEvent] = []
            if item.kind in _DUE_KINDS:
                ctx = Context(now=item.due_at, ids=self._ids, policy=self.policy)
                # Refused (its member no longer in the state it was due for): nothing to record.
                with contextlib.suppress(DomainError):
                    events = decide(item.stamped(), self.whatif.get(member_id), {}, ctx).events
            self._evolve_whatif(member_id, events, seq)
            if self._due.is_pending(item.key):
                self._due.drop(item.key)


def _refused_follow_up(event: AnyEvent) -> bool:
    return isinstance(event, FollowUpCancelled) and event.reason == "insufficient_credits"


def _with_recorded_ids(decided: list[AnyEvent], recorded: Sequence[AnyEvent]) -> list[AnyEvent]:
    """A send decided again, its InMails (and their planned follow-ups) under the recorded ids."""
    originals = iter([event for event in recorded if isinstance(event, InMailSent | InMailScheduled)])
    renamed: list[AnyEvent] = []
    for event in decided:
        if isinstance(event, InMailSent | InMailScheduled):
            original = next(originals)
            plan, recorded_plan = event.automated_follow_up, original.automated_follow_up
            if plan is not None and recorded_plan is not None:
                plan = msgspec.structs.replace(plan, inmail_id=recorded_plan.inmail_id)
            event = msgspec.structs.replace(event, inmail_id=original.inmail_id, automated_follow_up=plan)
        renamed.append(event)
    return renamed
