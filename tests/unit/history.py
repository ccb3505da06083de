"""A hand-built history: commands decided by the service's own pure ``decide`` and recorded in order.

Each command is routed as the executor routes it (its target aggregate, the members it
reads), decided at the time given under the history's policy, and its events evolve the
states and are recorded with consecutive stream sequences, as the service would append
them. What-if tests replay ``recorded``; policy tests look at the events' ``policy``.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from contracts.commands import AnyCommand
from contracts.events import AnyEvent
from contracts.policy import POLICY_V1, Policy
from services.domain.decider import aggregate_of, decide
from services.domain.errors import DomainError
from services.domain.ids import registered_seq_of
from services.domain.rules import Context
from services.domain.state import Member, evolve
from services.routing import reads_of, target_of

JAN_5 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def day(n: float) -> datetime:
    """``n`` days after 5 January 2026, 09:00 UTC."""
    return JAN_5 + timedelta(days=n)


class History:
    """Members' states and the events recorded so far, as (seq, event)."""

    def __init__(self, rules: Policy = POLICY_V1) -> None:
        self.rules = rules
        self.states: dict[str, Member] = {}
        self.recorded: list[tuple[int, AnyEvent]] = []
        self._ids = (f"id{n}" for n in itertools.count(1))
        self._by_registration: dict[int, str] = {}

    def do(self, cmd: AnyCommand, at: datetime) -> list[AnyEvent]:
        """Decide a command that must be accepted; record and return its events."""
        target = self._target(cmd)
        others = {other: self.states.get(other) for other in reads_of(cmd)}
        ctx = Context(now=at, ids=self._ids, policy=self.rules)
        events = decide(cmd, self.states.get(target), others, ctx).events
        for event in events:
            seq = len(self.recorded) + 1
            member_id = aggregate_of(event)
            self.states[member_id] = evolve(self.states.get(member_id), event, seq)
            if self.states[member_id].registered_seq == seq:
                self._by_registration[seq] = member_id
            self.recorded.append((seq, event))
        return events

    def refused(self, cmd: AnyCommand, at: datetime) -> DomainError:
        """Decide a command that must be refused; nothing is recorded."""
        target = self._target(cmd)
        others = {other: self.states.get(other) for other in reads_of(cmd)}
        try:
            decide(cmd, self.states.get(target), others, Context(now=at, ids=self._ids, policy=self.rules))
        except DomainError as exc:
            return exc
        raise AssertionError(f"{type(cmd).__name__} was accepted")

    def _target(self, cmd: AnyCommand) -> str:
        target = target_of(cmd)
        if target is not None:
            return target
        seq = registered_seq_of(getattr(cmd, "inmail_id", ""))
        assert seq is not None, cmd
        return self._by_registration[seq]
