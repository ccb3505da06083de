"""The index of due work: a pure fold of the events stream into what is still to be done.

Rebuilt from sequence 1 at every start, so it holds nothing the log does not
say. An item appears with the event that makes it due (``InMailScheduled``, an
``InMailSent`` planning a follow-up, the InMail that brings a period to the
assessment minimum, a warning, a suspension) and goes with the event that
records its outcome. The fold also says which deliveries deserve an email
alert: the recipient's preferences as the stream stood at the delivery.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from contracts.events import (
    AnyEvent,
    BulkSuspensionEnded,
    FollowUpCancelled,
    InMailScheduled,
    InMailSent,
    MemberErased,
    MemberRegistered,
    PreferencesUpdated,
    ResponseRateAssessed,
    ScheduledInMailCancelled,
    Stage,
)
from contracts.policy import Policy, policy
from services.domain.enforcement import assessed_at, counts_towards_floor, period_start
from services.due import items
from services.due.items import DueItem

_STAGE_OUTCOMES: dict[Stage, str] = {"warned": "warned", "suspended": "suspended", "ok": "warning_ended"}
"""What an assessment that changed the stage did, by the stage it led to."""


@dataclass(frozen=True, slots=True)
class Alert:
    """An InMail delivered to a recipient who wants email alerts: what the alert needs."""

    seq: int
    inmail_id: str
    recipient_id: str
    registered_by: str
    """The command that registered the recipient: it names their email in the members stream."""
    sender_name: str
    subject: str
    sent_at: datetime


@dataclass(slots=True)
class _Member:
    display_name: str
    registered_by: str
    email_notifications: bool = True
    inmail_opt_out: bool = False
    erased: bool = False


@dataclass(slots=True)
class _Floor:
    """A sender's assessment periods so far: the first InMail and the current period's count."""

    first_sent_at: datetime
    period: datetime | None = None
    count: int = 0


class DueIndex:
    """Pending due work by key, in due order, and the members an alert needs."""

    def __init__(self, policies: Callable[[int], Policy] = policy) -> None:
        """``policies``: the policy of an event's version (a what-if replay judges by its own)."""
        self._policy = policies
        self.position = 0
        """The last stream sequence folded."""
        self._pending: dict[str, DueItem] = {}
        self._by_member: dict[str, set[str]] = {}
        self._heap: list[DueItem] = []
        self._members: dict[str, _Member] = {}
        self._floors: dict[str, _Floor] = {}
        self._watched: dict[str, str | None] = {}

    def apply(self, seq: int, event: AnyEvent) -> Alert | None:
        """Fold one event; the email alert its delivery deserves, if any."""
        self.position = seq
        match event:
            case MemberRegistered():
                self._members[event.member_id] = _Member(
                    event.display_name, event.command_id, inmail_opt_out=event.inmail_opt_out
                )
            case PreferencesUpdated() if event.member_id in self._members:
                member = self._members[event.member_id]
                member.email_notifications = event.email_notifications
                member.inmail_opt_out = event.inmail_opt_out
            case InMailScheduled():
                self._add(items.delivery(event.sender_id, event.inmail_id, event.recipient_id, event.send_at))
            case ScheduledInMailCancelled():
                self._resolve(items.delivery_key(event.inmail_id), "cancelled")
            case FollowUpCancelled():
                self._resolve(items.follow_up_key(event.inmail_id), "follow_up_cancelled")
            case InMailSent():
                return self._sent(seq, event)
            case ResponseRateAssessed():
                self._assessed(event)
            case BulkSuspensionEnded():
                self._resolve(items.end_of_suspension_key(event.member_id, event.since), "suspension_ended")
            case MemberErased():
                self._erased(event.member_id)
        return None

    def pending(self) -> int:
        """How many items are not performed yet."""
        return len(self._pending)

    def next_due(self) -> datetime | None:
        """When the earliest pending item is due."""
        while self._heap and self._heap[0].key not in self._pending:
            heapq.heappop(self._heap)
        return self._heap[0].due_at if self._heap else None

    def members_due(self, until: datetime) -> list[str]:
        """Members with an item due at or before ``until``, in the order their first one is due."""
        due = sorted(item for item in list(self._pending.values()) if item.due_at <= until)
        return list(dict.fromkeys(item.member_id for item in due))

    def next_for(self, member_id: str, until: datetime) -> DueItem | None:
        """A member's earliest pending item due at or before ``until``."""
        keys = self._by_member.get(member_id, ())
        due = [self._pending[key] for key in keys if self._pending[key].due_at <= until]
        return min(due, default=None)

    def is_pending(self, key: str) -> bool:
        """Whether an item is still to be done."""
        return key in self._pending

    def drop(self, key: str) -> None:
        """Forget an item without an event resolving it (a what-if replay that cannot perform it)."""
        self._resolve(key, "dropped")

    def watch(self, key: str) -> None:
        """Remember the outcome of an item when it is resolved (for ``outcome``)."""
        self._watched[key] = None

    def outcome(self, key: str) -> str | None:
        """What a watched item's resolving event did (and stop watching it)."""
        return self._watched.pop(key, None)

    def _sent(self, seq: int, event: InMailSent) -> Alert | None:
        if event.scheduled:
            self._resolve(items.delivery_key(event.inmail_id), "delivered")
        if event.automated:
            self._resolve(items.follow_up_key(event.inmail_id), "follow_up_sent")
        plan = event.automated_follow_up
        if plan is not None:
            due = event.occurred_at + timedelta(days=plan.after_days)
            self._add(items.follow_up(event.sender_id, plan.inmail_id, event.recipient_id, due))
        self._count(event, self._policy(event.policy))
        recipient = self._members.get(event.recipient_id)
        sender = self._members.get(event.sender_id)
        if (
            recipient is None
            or not recipient.email_notifications
            or recipient.inmail_opt_out
            or recipient.erased
        ):
            return None
        return Alert(
            seq=seq,
            inmail_id=event.inmail_id,
            recipient_id=event.recipient_id,
            registered_by=recipient.registered_by,
            sender_name=sender.display_name if sender else "",
            subject=event.subject,
            sent_at=event.occurred_at,
        )

    def _count(self, event: InMailSent, rules: Policy) -> None:
        """Count an InMail into its sender's period; at the minimum, the period is due for assessment."""
        floor = self._floors.get(event.sender_id)
        if floor is None:
            floor = self._floors[event.sender_id] = _Floor(event.occurred_at)
        if not counts_towards_floor(event.sender_tier, rules):
            return
        start = period_start(floor.first_sent_at, event.occurred_at, rules)
        if start != floor.period:
            floor.period, floor.count = start, 0
        floor.count += 1
        if floor.count == rules.enforcement.min_inmails:
            due = assessed_at(start, False, rules)
            self._add(items.assessment(event.sender_id, start, False, due))

    def _assessed(self, event: ResponseRateAssessed) -> None:
        self._resolve(
            items.assessment_key(event.member_id, event.period_start, event.warning_period),
            _STAGE_OUTCOMES[event.stage] if event.stage != event.previous_stage else "assessed",
        )
        if event.stage == event.previous_stage or event.since is None:
            return
        if event.stage == "warned":
            due = assessed_at(event.since, True, self._policy(event.policy))
            self._add(items.assessment(event.member_id, event.since, True, due))
        elif event.stage == "suspended" and event.until is not None:
            self._add(items.end_of_suspension(event.member_id, event.since, event.until))

    def _erased(self, member_id: str) -> None:
        """An erased member gets no alert, and no due work names them any more: every command
        naming them would answer MEMBER_ERASED (their own scheduled sends and follow-ups, the
        assessments of their periods, sends scheduled to them)."""
        if member_id in self._members:
            self._members[member_id].erased = True
        gone = [
            key
            for key, item in self._pending.items()
            if item.member_id == member_id or getattr(item.command, "recipient_id", None) == member_id
        ]
        for key in gone:
            self._resolve(key, "erased")

    def _add(self, item: DueItem) -> None:
        self._pending[item.key] = item
        self._by_member.setdefault(item.member_id, set()).add(item.key)
        heapq.heappush(self._heap, item)

    def _resolve(self, key: str, outcome: str) -> None:
        item = self._pending.pop(key, None)
        if item is None:
            return
        keys = self._by_member[item.member_id]
        keys.discard(key)
        if not keys:
            del self._by_member[item.member_id]
        if key in self._watched:
            self._watched[key] = outcome
