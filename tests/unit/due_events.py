"""Given events and commands of due work (section 8 and 9), beside ``scenario``'s.

The due commands are the ones the service gives itself; their command ids here
are plain, the runner derives its own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from contracts.commands import (
    AssessResponseRate,
    AutomatedFollowUp,
    CancelFollowUp,
    CancelScheduledInMail,
    DeliverScheduledInMail,
    EndBulkSuspension,
    SendAutomatedFollowUp,
)
from contracts.events import (
    CreditRefunded,
    FollowUpCancelled,
    FollowUpCancelReason,
    FollowUpPlan,
    FreeReason,
    InMailScheduled,
    ScheduleCancelReason,
    ScheduledInMailCancelled,
)
from contracts.types import Tier
from tests.unit.scenario import NEW, T0, meta


def scheduled(
    sender: str,
    recipient: str,
    inmail_id: str,
    *,
    send_at: datetime,
    at: datetime = T0,
    charged: bool = True,
    free_reason: FreeReason | None = None,
    sender_tier: Tier = "recruiter",
    follow_up_of: str | None = None,
    automated_follow_up: FollowUpPlan | None = None,
) -> InMailScheduled:
    """A send accepted for ``send_at``, as ``send(..., send_at=...)`` would have recorded it."""
    return InMailScheduled(
        **meta(at),
        inmail_id=inmail_id,
        sender_id=sender,
        recipient_id=recipient,
        sender_tier=sender_tier,
        subject="A role for you",
        body="Would you like to talk?",
        kind="recruiter_outreach",
        charged=charged,
        free_reason=free_reason,
        send_at=send_at,
        follow_up_of=follow_up_of,
        automated_follow_up=automated_follow_up,
    )


def schedule_cancelled(mail: InMailScheduled, reason: ScheduleCancelReason) -> ScheduledInMailCancelled:
    """The cancellation a decision records (header filled in by ``then``)."""
    return ScheduledInMailCancelled(
        **meta(T0), inmail_id=mail.inmail_id, sender_id=mail.sender_id, recipient_id=mail.recipient_id,
        reason=reason,
    )


def cancel_refund(mail: InMailScheduled) -> CreditRefunded:
    """The credit back for a cancelled scheduled InMail; names the cancellation, as ``then`` fills in."""
    return CreditRefunded(
        **meta(T0), member_id=mail.sender_id, inmail_id=mail.inmail_id, response_event_id=NEW,
        reason="cancelled",
    )


def plan(inmail_id: str = NEW, *, after_days: int = 7) -> FollowUpPlan:
    return FollowUpPlan(inmail_id=inmail_id, after_days=after_days, subject="Following up",
                        body="Any thoughts?")


def follow_up_spec(after_days: int = 7, **fields: Any) -> AutomatedFollowUp:
    fields = {"subject": "Following up", "body": "Any thoughts?"} | fields
    return AutomatedFollowUp(after_days=after_days, **fields)


def follow_up_cancelled(
    follow_up_id: str, original_id: str, reason: FollowUpCancelReason, *, sender: str = "rec",
    recipient: str = "bob",
) -> FollowUpCancelled:
    return FollowUpCancelled(
        **meta(T0), inmail_id=follow_up_id, follow_up_of=original_id, sender_id=sender,
        recipient_id=recipient, reason=reason,
    )


def deliver(mail: InMailScheduled, command_id: str = "due-deliver") -> DeliverScheduledInMail:
    return DeliverScheduledInMail(
        command_id=command_id, member_id=mail.sender_id, inmail_id=mail.inmail_id,
        recipient_id=mail.recipient_id,
    )


def send_follow_up(follow_up_id: str, recipient: str = "bob", command_id: str = "due-follow-up",
                   sender: str = "rec") -> SendAutomatedFollowUp:
    return SendAutomatedFollowUp(
        command_id=command_id, member_id=sender, inmail_id=follow_up_id, recipient_id=recipient
    )


def cancel_scheduled(
    inmail_id: str, member_id: str = "rec", command_id: str = "cancel"
) -> CancelScheduledInMail:
    return CancelScheduledInMail(command_id=command_id, inmail_id=inmail_id, member_id=member_id)


def cancel_follow_up(inmail_id: str, member_id: str = "rec", command_id: str = "cancel-fu") -> CancelFollowUp:
    return CancelFollowUp(command_id=command_id, inmail_id=inmail_id, member_id=member_id)


def assess(start: datetime, *, warning: bool = False, member_id: str = "rec",
           command_id: str | None = None) -> AssessResponseRate:
    """An assessment, its command id derived from the period as the runner's are."""
    command_id = command_id or f"due-assess-{start:%Y%m%d}-{'w' if warning else 'p'}"
    return AssessResponseRate(
        command_id=command_id, member_id=member_id, period_start=start, warning_period=warning
    )


def end_suspension(
    since: datetime, member_id: str = "rec", command_id: str | None = None
) -> EndBulkSuspension:
    command_id = command_id or f"due-end-{since:%Y%m%d}"
    return EndBulkSuspension(command_id=command_id, member_id=member_id, since=since)
