"""A small reference fold of the events, for ``inmail verify``: independent of the projections.

It computes, straight from events and without any SQL, what the read models
must say: every member's tier and credit totals, and every sender's response
counts. It shares nothing with the projections but the event contracts and the
policy, so a bug in one is unlikely to hide in the other.

Like a read model rebuilt from a later sequence, it leaves out events about
members or InMails it never saw registered or sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from contracts.events import (
    AnyEvent,
    CreditRefunded,
    CreditsForfeited,
    CreditsRefreshed,
    InMailDeclined,
    InMailRead,
    InMailReplied,
    InMailSent,
    MemberRegistered,
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
    last_seq: int = 0

    def apply(self, seq: int, event: AnyEvent) -> None:
        """Fold one event."""
        self.last_seq = seq
        match event:
            case MemberRegistered():
                self.members[event.member_id] = MemberCredits(
                    event.tier, event.policy, balance=event.granted, granted=event.granted
                )
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
                if event.charged and event.sender_id in self.members:
                    member = self.members[event.sender_id]
                    cost = policy(event.policy).inmail_cost
                    member.balance -= cost
                    member.spent += cost
                    member.policy = event.policy
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
                if event.inmail_id in self.inmails:
                    self.inmails[event.inmail_id].refunded = True
                if event.member_id in self.members:
                    member = self.members[event.member_id]
                    cost = policy(event.policy).inmail_cost
                    member.balance += cost
                    member.refunded += cost
                    member.policy = event.policy

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
