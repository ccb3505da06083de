"""Queries on ``inmail.query.<Query>`` and the shapes of their answers.

Every query may carry ``min_seq``: the answer waits (up to 5 s, then
``UNAVAILABLE``) until the read model has applied that stream sequence.
No answer carries any member's email.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from contracts.events import FreeReason, Stage
from contracts.types import InMailKind, MemberId, TemplateId, Tier, Time

Limit = Annotated[int, msgspec.Meta(ge=1, le=200)]
Cursor = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Seq = Annotated[int, msgspec.Meta(ge=0)]

InMailStatus = Literal["sent", "read", "replied", "declined", "scheduled", "cancelled"]
LedgerReason = Literal["refresh", "send", "refund", "forfeit", "tier_change", "cancelled"]


class Query(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every query: optionally, the stream sequence the answer must include."""

    min_seq: Seq | None = None


class Health(Query, frozen=True):
    """Is the service up, and how far is each projection."""


class Inbox(Query, frozen=True):
    """A member's received or sent InMails, newest first; or the scheduled ones, latest due first."""

    member_id: MemberId
    box: Literal["received", "sent", "scheduled"]
    status: InMailStatus | None = None
    limit: Limit = 50
    before: Cursor | None = None


class CreditBalance(Query, frozen=True):
    """A member's credits now, or as they were at ``at``."""

    member_id: MemberId
    at: Time | None = None


class CreditLedger(Query, frozen=True):
    """Every credit movement of a member, newest first."""

    member_id: MemberId
    limit: Limit = 50
    before: Cursor | None = None


class ResponseStats(Query, frozen=True):
    """Response rates over the InMails matching every given filter."""

    sender_id: MemberId | None = None
    tier: Tier | None = None
    kind: InMailKind | None = None
    template_id: TemplateId | None = None
    since: Time | None = None
    until: Time | None = None


class EnforcementStatus(Query, frozen=True):
    """A sender's stage under the response-rate floor and the latest assessment behind it."""

    member_id: MemberId


QUERIES: tuple[type[Query], ...] = (
    Health,
    Inbox,
    CreditBalance,
    CreditLedger,
    ResponseStats,
    EnforcementStatus,
)


# Answers ---------------------------------------------------------------------


class HealthData(msgspec.Struct, frozen=True):
    status: Literal["ok", "degraded", "starting"]
    stream_seq: int
    projections: dict[str, int]
    problems: dict[str, str] = {}


class InboxItem(msgspec.Struct, frozen=True):
    inmail_id: str
    sender_id: str
    sender_name: str
    recipient_id: str
    recipient_name: str
    subject: str
    body: str
    kind: InMailKind
    status: InMailStatus
    charged: bool
    refunded: bool
    follow_up_of: str | None
    sent_at: datetime
    read_at: datetime | None
    acknowledged_at: datetime | None
    responded_at: datetime | None
    free_reason: FreeReason | None = None
    template_id: str | None = None
    scheduled_for: datetime | None = None
    """When a scheduled InMail or an automated follow-up is (or was) due; ``sent_at`` holds the
    same time until it is sent."""
    cancelled_reason: str | None = None


class InboxPage(msgspec.Struct, frozen=True):
    items: list[InboxItem]
    next: str | None


class CreditBalanceData(msgspec.Struct, frozen=True):
    member_id: str
    tier: Tier
    balance: int
    monthly_allotment: int
    cap: int
    granted: int
    spent: int
    refunded: int
    forfeited: int


class LedgerEntry(msgspec.Struct, frozen=True, omit_defaults=True):
    seq: int
    occurred_at: datetime
    delta: int
    balance_after: int
    reason: LedgerReason
    inmail_id: str | None = None
    response_event_id: str | None = None


class LedgerPage(msgspec.Struct, frozen=True):
    entries: list[LedgerEntry]
    next: str | None


class ResponseStatsData(msgspec.Struct, frozen=True):
    sent: int
    charged: int
    read: int
    replied: int
    declined: int
    responded: int
    responded_30d: int
    refunded: int
    response_rate: float
    response_rate_30d: float
    read_rate: float


class EnforcementStatusData(msgspec.Struct, frozen=True):
    """Stage ``ok`` and nulls before any assessment; ``rate`` and ``threshold`` are fractions."""

    stage: Stage
    since: datetime | None
    until: datetime | None
    period_start: datetime | None
    period_end: datetime | None
    sent: int | None
    responded: int | None
    rate: float | None
    threshold: float | None
