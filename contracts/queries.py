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
    """The stream sequence the answer must include: it waits until the read model applied it."""


class Health(Query, frozen=True):
    """Is the service up, and how far is each projection."""


class Inbox(Query, frozen=True):
    """A member's received or sent InMails, newest first; or the scheduled ones, latest due first."""

    member_id: MemberId
    box: Literal["received", "sent", "scheduled"]
    status: InMailStatus | None = None
    """Only InMails in this status."""
    limit: Limit = 50
    before: Cursor | None = None
    """The previous page's ``next``."""


class CreditBalance(Query, frozen=True):
    """A member's credits now, or as they were at ``at``."""

    member_id: MemberId
    at: Time | None = None
    """The balance as it was at this time (default: now)."""


class CreditLedger(Query, frozen=True):
    """Every credit movement of a member, newest first."""

    member_id: MemberId
    limit: Limit = 50
    before: Cursor | None = None
    """The previous page's ``next``."""


class ResponseStats(Query, frozen=True):
    """Response rates over the InMails matching every given filter."""

    sender_id: MemberId | None = None
    tier: Tier | None = None
    kind: InMailKind | None = None
    template_id: TemplateId | None = None
    since: Time | None = None
    """InMails sent at or after this time."""
    until: Time | None = None
    """InMails sent before this time."""


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


class Dependency(msgspec.Struct, frozen=True, kw_only=True):
    """A stream or bucket the service needs, as JetStream reported it for this answer."""

    kind: Literal["stream", "bucket"]
    reachable: bool
    """It exists and JetStream answered for it."""
    replicas: int = 0
    """As configured on the server."""
    replicas_wanted: int = 0
    """As the service was told to create it (``--replicas``)."""
    replicas_current: int = 0
    """The leader and the replicas that are up to date with it."""
    leader: str | None = None
    last_seq: int = 0
    problem: str | None = None
    """Why it keeps the service from ``ok`` (also under ``HealthData.problems``, by name)."""


class QuarantinedEvent(msgspec.Struct, frozen=True):
    """An event the read models could not read and passed over; its member's commands wait."""

    seq: int
    subject: str
    error: str


class HealthData(msgspec.Struct, frozen=True):
    """``ok`` only when commands of every kind can succeed now and every projection runs."""

    status: Literal["ok", "degraded", "starting"]
    """``degraded`` when a projection stopped (see ``problems``); ``starting`` until caught up."""
    stream_seq: int
    """The last sequence of ``INMAIL_EVENTS``."""
    projections: dict[str, int]
    """Each projection's position: the last stream sequence it applied."""
    problems: dict[str, str] = {}
    """Projection, stream or bucket name -> what is wrong with it."""
    dependencies: dict[str, Dependency] = {}
    """Stream or bucket name -> its state; every one the service needs."""
    lag: dict[str, int] = {}
    """Projection name -> events of the stream it has not applied yet; absent when unknown
    (the stream unreachable, or behind the projection)."""
    quarantined: list[QuarantinedEvent] = []
    """Events not skipped yet by an operator (``inmail quarantine resolve SEQ --skip``), oldest first."""
    clear_text_until_seq: int | None = None
    """When ``INMAIL_EVENTS`` was written before encryption existed: the last sequence that may hold
    personal data in the clear (names, texts; section 11). Those events are never rewritten, and
    erasing a member registered there is refused (``PERSONAL_DATA_IN_CLEAR``). None: none."""


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
    """The cursor of the next page (its ``before``); null on the last page."""


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
    """The stream sequence of the event that moved the credits."""
    occurred_at: datetime
    delta: int
    """Credits added (positive) or taken away (negative)."""
    balance_after: int
    reason: LedgerReason
    inmail_id: str | None = None
    response_event_id: str | None = None


class LedgerPage(msgspec.Struct, frozen=True):
    entries: list[LedgerEntry]
    next: str | None
    """The cursor of the next page (its ``before``); null on the last page."""


class ResponseStatsData(msgspec.Struct, frozen=True):
    sent: int
    charged: int
    read: int
    replied: int
    declined: int
    responded: int
    """Replied or declined, counted once per InMail."""
    responded_30d: int
    """First response within the policy's statistics window of sending."""
    refunded: int
    response_rate: float
    """``responded / sent``, free InMails included; 0.0 when nothing matches."""
    response_rate_30d: float
    """``responded_30d / sent``."""
    read_rate: float
    """``read / sent``."""


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
