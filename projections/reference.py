"""A small reference fold of the events, for ``inmail verify``: independent of the projections.

It computes, straight from events and without any SQL, what the read models
must say: every member's tier and credit totals, every sender's response
counts, pending scheduled InMails and follow-ups and enforcement stage, and
which deliveries deserve an email alert. It shares nothing with the projections
but the event contracts and the policy, so a bug in one is unlikely to hide in
the other.

Like a read model rebuilt from a later sequence, it leaves out events about
members or InMails it never saw registered or sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from contracts.events import (
    AnyEvent,
    BulkSuspensionEnded,
    CreditRefunded,
    CreditsForfeited,
    CreditsRefreshed,
    FollowUpCancelled,
    InMailDeclined,
    InMailRead,
    InMailReplied,
    InMailScheduled,
    InMailSent,
    MemberErased,
    MemberRegistered,
    PreferencesUpdated,
    ResponseRateAssessed,
    ScheduledInMailCancelled,
    Stage,
    TierChanged,
)
from contracts.policy import policy
from contracts.types import Tier


@dataclass(slots=True)
class MemberCredits:
    """What CreditBalance must answer for one member."""

    tier: Tier
    policy: int
    balance: int = 0
    granted: int = 0
    spent: int = 0
    refunded: int = 0
    forfeited: int = 0


@dataclass(slots=True)
class SenderCounts:
    """What ResponseStats filtered by one sender must count."""

    sent: int = 0
    charged: int = 0
    read: int = 0
    replied: int = 0
    declined: int = 0
    responded: int = 0
    responded_30d: int = 0
    refunded: int = 0


@dataclass(slots=True)
class StageView:
    """What EnforcementStatus must answer for one member (times as events recorded them)."""

    stage: Stage = "ok"
    since: datetime | None = None
    until: datetime | None = None
    period_start: datetime | None = None
    sent: int | None = None
    responded: int | None = None


@dataclass(slots=True)
class _Recipient:
    wants_alerts: bool = True
    opted_out: bool = False


@dataclass(slots=True)
class _Sent:
    sender_id: str
    sent_at: datetime
    policy: int
    charged: bool
    read: bool = False
    replied: bool = False
    declined: bool = False
    first_response: datetime | None = None
    refunded: bool = False


@dataclass(slots=True)
class ReferenceFold:
    """Members' credits and InMails' fates, folded from events in stream order."""

    members: dict[str, MemberCredits] = field(default_factory=dict)
    inmails: dict[str, _Sent] = field(default_factory=dict)
    stages: dict[str, StageView] = field(default_factory=dict)
    scheduled: dict[str, set[str]] = field(default_factory=dict)
    """Sender -> ids of the scheduled InMails and automated follow-ups still pending."""
    alerts: set[str] = field(default_factory=set)
    """InMails whose delivery deserves an email alert."""
    recipients: dict[str, _Recipient] = field(default_factory=dict)
    last_seq: int = 0

    def apply(self, seq: int, event: AnyEvent) -> None:
        """Fold one event."""
        self.last_seq = seq
        self._fold_automation(event)
        match event:
            case MemberRegistered():
                self.members[event.member_id] = MemberCredits(
                    event.tier, event.policy, balance=event.granted, granted=event.granted
                )
                self.stages[event.member_id] = StageView()
                self.recipients[event.member_id] = _Recipient(opted_out=event.inmail_opt_out)
            case CreditsRefreshed() if event.member_id in self.members:
                member = self.members[event.member_id]
                member.balance += event.granted - event.forfeited
                member.granted += event.granted
                member.forfeited += event.forfeited
                member.policy = event.policy
            case CreditsForfeited() if event.member_id in self.members:
                member = self.members[event.member_id]
                member.balance -= event.amount
                member.forfeited += event.amount
                member.policy = event.policy
            case TierChanged() if event.member_id in self.members:
                member = self.members[event.member_id]
                member.tier = event.tier
                member.balance += event.granted
                member.granted += event.granted
                member.policy = event.policy
            case InMailSent():
                self.inmails[event.inmail_id] = _Sent(
                    event.sender_id, event.occurred_at, event.policy, event.charged
                )
                # A delivery from a schedule: its credit went when it was scheduled.
                if event.charged and not event.scheduled:
                    self._spend(event.sender_id, event.policy)
            case InMailScheduled() if event.charged:
                self._spend(event.sender_id, event.policy)
            case InMailRead() if event.inmail_id in self.inmails:
                self.inmails[event.inmail_id].read = True
            case InMailReplied() | InMailDeclined() if event.inmail_id in self.inmails:
                sent = self.inmails[event.inmail_id]
                if isinstance(event, InMailReplied):
                    sent.replied = True
                else:
                    sent.declined = True
                if sent.first_response is None:
                    sent.first_response = event.occurred_at
            case CreditRefunded():
                if event.inmail_id in self.inmails and event.reason == "response":
                    self.inmails[event.inmail_id].refunded = True
                if event.member_id in self.members:
                    member = self.members[event.member_id]
                    cost = policy(event.policy).inmail_cost
                    member.balance += cost
                    member.refunded += cost
                    member.policy = event.policy

    def _spend(self, sender_id: str, version: int) -> None:
        if sender_id in self.members:
            member = self.members[sender_id]
            cost = policy(version).inmail_cost
            member.balance -= cost
            member.spent += cost
            member.policy = version

    def _fold_automation(self, event: AnyEvent) -> None:
        """Scheduled work, enforcement stages and email alerts."""
        match event:
            case InMailScheduled():
                self.scheduled.setdefault(event.sender_id, set()).add(event.inmail_id)
            case ScheduledInMailCancelled() | FollowUpCancelled():
                self.scheduled.get(event.sender_id, set()).discard(event.inmail_id)
            case InMailSent():
                pending = self.scheduled.setdefault(event.sender_id, set())
                pending.discard(event.inmail_id)
                if event.automated_follow_up is not None:
                    pending.add(event.automated_follow_up.inmail_id)
                recipient = self.recipients.get(event.recipient_id)
                if recipient is not None and recipient.wants_alerts and not recipient.opted_out:
                    self.alerts.add(event.inmail_id)
            case MemberErased() if event.member_id in self.recipients:
                # An erased member gets no alert from then on (section 14).
                self.recipients[event.member_id].wants_alerts = False
            case PreferencesUpdated() if event.member_id in self.recipients:
                recipient = self.recipients[event.member_id]
                recipient.wants_alerts, recipient.opted_out = event.email_notifications, event.inmail_opt_out
            case ResponseRateAssessed() if event.member_id in self.stages:
                self.stages[event.member_id] = StageView(
                    event.stage, event.since, event.until, event.period_start, event.sent, event.responded
                )
            case BulkSuspensionEnded() if event.member_id in self.stages:
                view = self.stages[event.member_id]
                view.stage, view.since, view.until = "ok", event.until, None

    def senders(self) -> dict[str, SenderCounts]:
        """Response counts per sender, over every InMail folded."""
        counts: dict[str, SenderCounts] = {}
        for sent in self.inmails.values():
            c = counts.setdefault(sent.sender_id, SenderCounts())
            c.sent += 1
            c.charged += sent.charged
            c.read += sent.read
            c.replied += sent.replied
            c.declined += sent.declined
            c.refunded += sent.refunded
            if sent.first_response is not None:
                c.responded += 1
                window = policy(sent.policy).stats_response_window
                c.responded_30d += sent.first_response - sent.sent_at <= window
        return counts
