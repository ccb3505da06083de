"""Events: what happened, recorded in JetStream stream ``INMAIL_EVENTS``.

Every event has ``type``, ``event_id`` (also its ``Nats-Msg-Id``), ``occurred_at``
(fixed when it was decided), the ``command_id`` that caused it with the
``fingerprint`` of that command's payload, the ``policy`` version it was decided
under, and the ids it concerns. Amounts a rule produced
(credits granted, forfeited, charged) are stored, never recomputed, so a replay
reproduces history under the policy that decided it.

Events never forbid unknown fields: an older reader keeps reading newer events.
New fields get defaults; field types never change; a renamed or reshaped type
is upcast on read (``decode_event``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import msgspec

from contracts.types import InMailId, InMailKind, MemberId, Tier, Time

FreeReason = Literal["connection", "open_profile"]
ScheduleCancelReason = Literal["sender_cancelled", "blocked", "opted_out", "responded"]
FollowUpCancelReason = Literal[
    "responded", "insufficient_credits", "blocked", "opted_out", "sender_cancelled"
]
RefundReason = Literal["response", "cancelled"]
Stage = Literal["ok", "warned", "suspended"]


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Fields every event carries."""

    event_id: str
    occurred_at: Time
    command_id: str
    policy: int = 1
    fingerprint: str = ""
    """What the command asked for, hashed: a repeat of its command_id asking for something else
    is refused. Empty in events recorded before it was kept."""


class MemberRegistered(Event, tag=True, frozen=True):
    """A member joined; records the first month's grant (that month's refresh)."""

    member_id: MemberId
    display_name: str
    tier: Tier
    open_profile: bool
    inmail_opt_out: bool
    month: str
    granted: int


class TierChanged(Event, tag=True, frozen=True):
    """A new tier and its allotment; the old balance was forfeited just before."""

    member_id: MemberId
    old_tier: Tier
    tier: Tier
    month: str
    granted: int


class PreferencesUpdated(Event, tag=True, frozen=True):
    """The member's preferences as they are now."""

    member_id: MemberId
    open_profile: bool
    inmail_opt_out: bool
    email_notifications: bool = True


class MembersConnected(Event, tag=True, frozen=True):
    """A 1st-degree connection, both ways, recorded on the member who asked."""

    member_id: MemberId
    other_member_id: MemberId


class MemberBlocked(Event, tag=True, frozen=True):
    """``member_id`` blocked ``blocked_member_id``: no InMail either way from now on."""

    member_id: MemberId
    blocked_member_id: MemberId


class CreditsRefreshed(Event, tag=True, frozen=True):
    """A month's allotment added; ``forfeited`` is what the cap cut off."""

    member_id: MemberId
    month: str
    tier: Tier
    granted: int
    forfeited: int


class CreditsForfeited(Event, tag=True, frozen=True):
    """Credits taken away outside a refresh (the old balance at a tier change)."""

    member_id: MemberId
    amount: int
    reason: Literal["tier_change"]


class FollowUpPlan(msgspec.Struct, frozen=True, kw_only=True):
    """An automated follow-up planned with an InMail: due ``after_days`` after its delivery."""

    inmail_id: InMailId
    """The follow-up's own id, fixed when it is planned."""
    after_days: int
    subject: str
    body: str


class InMailSent(Event, tag=True, frozen=True):
    """An InMail went out (entered the inboxes); a charged one spent one of the sender's credits,
    here or, for a ``scheduled`` one, when it was scheduled (``InMailScheduled``)."""

    inmail_id: InMailId
    sender_id: MemberId
    recipient_id: MemberId
    sender_tier: Tier
    subject: str
    body: str
    kind: InMailKind
    charged: bool
    template_id: str | None = None
    follow_up_of: InMailId | None = None
    free_reason: FreeReason | None = None
    bulk: bool = False
    scheduled: bool = False
    """Delivered at its ``send_at``: its credit was taken by the InMailScheduled before it."""
    automated: bool = False
    """An automated follow-up, sent by the service."""
    automated_follow_up: FollowUpPlan | None = None


class InMailScheduled(Event, tag=True, frozen=True):
    """An InMail accepted for delivery at ``send_at``; a charged one spent its credit now."""

    inmail_id: InMailId
    sender_id: MemberId
    recipient_id: MemberId
    sender_tier: Tier
    subject: str
    body: str
    kind: InMailKind
    charged: bool
    send_at: Time
    template_id: str | None = None
    follow_up_of: InMailId | None = None
    free_reason: FreeReason | None = None
    automated_follow_up: FollowUpPlan | None = None


class ScheduledInMailCancelled(Event, tag=True, frozen=True):
    """A scheduled InMail will not be delivered; a charged one is refunded by the next event."""

    inmail_id: InMailId
    sender_id: MemberId
    recipient_id: MemberId
    reason: ScheduleCancelReason


class FollowUpCancelled(Event, tag=True, frozen=True):
    """An automated follow-up will not be sent, and why."""

    inmail_id: InMailId
    """The follow-up's own id."""
    follow_up_of: InMailId
    sender_id: MemberId
    recipient_id: MemberId
    reason: FollowUpCancelReason


class InMailRead(Event, tag=True, frozen=True):
    """The recipient opened the InMail (first time only)."""

    inmail_id: InMailId
    sender_id: MemberId
    recipient_id: MemberId


class InMailAcknowledged(Event, tag=True, frozen=True):
    """The recipient acknowledged the InMail (first time only)."""

    inmail_id: InMailId
    sender_id: MemberId
    recipient_id: MemberId


class InMailReplied(Event, tag=True, frozen=True):
    """The recipient replied."""

    inmail_id: InMailId
    sender_id: MemberId
    recipient_id: MemberId
    body: str


class InMailDeclined(Event, tag=True, frozen=True):
    """The recipient declined ("not interested")."""

    inmail_id: InMailId
    sender_id: MemberId
    recipient_id: MemberId
    reason: str | None = None


class CreditRefunded(Event, tag=True, frozen=True):
    """The sender got the credit of a charged InMail back: earned by a response, or because a
    scheduled InMail was cancelled (``response_event_id`` then names the cancellation)."""

    member_id: MemberId
    inmail_id: InMailId
    response_event_id: str
    reason: RefundReason = "response"


class ResponseRateAssessed(Event, tag=True, frozen=True):
    """An assessment of a sender's response rate over a period, and the stage it leads to.

    ``stage`` differs from ``previous_stage`` when the assessment changed it; ``since`` and
    ``until`` are the resulting stage's (None for ``ok`` since registration; ``until`` None
    for ``ok``).
    """

    member_id: MemberId
    period_start: Time
    period_end: Time
    warning_period: bool
    sent: int
    responded: int
    rate: float
    threshold: float
    min_inmails: int
    previous_stage: Stage
    stage: Stage
    since: Time | None = None
    until: Time | None = None


class BulkSuspensionEnded(Event, tag=True, frozen=True):
    """A bulk suspension ran its time: the stage is ``ok`` again from ``until``."""

    member_id: MemberId
    since: Time
    until: Time


class EventSkipped(Event, tag=True, frozen=True):
    """An operator chose to skip an event on this member's subject that cannot be read.

    The event at ``seq`` stays in the stream (events are never changed or deleted);
    loading the member and every replay pass over it from then on.
    """

    member_id: MemberId
    seq: int
    reason: str
    operator: str


class MemberErased(Event, tag=True, frozen=True):
    """The member was forgotten (section 11): their data key was destroyed before this was recorded.

    Their personal fields, sealed with that key in every event before this one, read as
    ``"[erased]"`` from now on; their credits, counts and statistics stay as they were.
    """

    member_id: MemberId


AnyEvent = (
    MemberRegistered
    | TierChanged
    | PreferencesUpdated
    | MembersConnected
    | MemberBlocked
    | CreditsRefreshed
    | CreditsForfeited
    | InMailSent
    | InMailRead
    | InMailAcknowledged
    | InMailReplied
    | InMailDeclined
    | CreditRefunded
    | EventSkipped
    | InMailScheduled
    | ScheduledInMailCancelled
    | FollowUpCancelled
    | ResponseRateAssessed
    | BulkSuspensionEnded
    | MemberErased
)

EVENT_TYPES: tuple[type[Event], ...] = (
    MemberRegistered,
    TierChanged,
    PreferencesUpdated,
    MembersConnected,
    MemberBlocked,
    CreditsRefreshed,
    CreditsForfeited,
    InMailSent,
    InMailRead,
    InMailAcknowledged,
    InMailReplied,
    InMailDeclined,
    CreditRefunded,
    EventSkipped,
    InMailScheduled,
    ScheduledInMailCancelled,
    FollowUpCancelled,
    ResponseRateAssessed,
    BulkSuspensionEnded,
    MemberErased,
)

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

UPCASTERS: dict[str, Upcaster] = {}
"""Old event type name -> a function turning its stored body into a current one.

Empty under policy v1. When an event type is reshaped, register the old shape's
name here (and keep the old name readable): stored events are never rewritten.
"""

_decoder = msgspec.json.Decoder(AnyEvent)
_encoder = msgspec.json.Encoder()


def encode_event(event: Event) -> bytes:
    """The JSON body of an event as stored in the stream."""
    return _encoder.encode(event)


def decode_event(data: bytes) -> AnyEvent:
    """An event from its stored body, upcasting older shapes."""
    try:
        return _decoder.decode(data)
    except msgspec.ValidationError:
        raw = msgspec.json.decode(data)
        upcast = UPCASTERS.get(raw.get("type", "")) if isinstance(raw, dict) else None
        if upcast is None:
            raise
        upcasted: AnyEvent = msgspec.convert(upcast(raw), AnyEvent)
        return upcasted
