"""The command a recorded decision answered, rebuilt from the events it wrote.

A decision's events carry everything its command asked for (a send's recipient,
subject, body, kind, template and follow-up plan; a reply's body; a refresh's
month), so the command can be asked again, of the same ``decide``, under another
policy. What a decision *derived* (refreshes due before a send, a refund, the
forfeit at a tier change) is left for the decision to derive again.

Enforcement (``ResponseRateAssessed``, ``BulkSuspensionEnded``) has no command
here: when it is due depends on the policy, so the what-if finds it in its own
history (``engine``). An operator's ``EventSkipped`` decides nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypedDict

from contracts.commands import (
    AcknowledgeInMail,
    AnyCommand,
    AutomatedFollowUp,
    BlockMember,
    CancelFollowUp,
    CancelScheduledInMail,
    ChangeTier,
    ConnectMembers,
    DeclineInMail,
    DeliverScheduledInMail,
    MarkInMailRead,
    RecordReply,
    RefreshCredits,
    RegisterMember,
    SendAutomatedFollowUp,
    SendBulkInMail,
    SendInMail,
    UpdatePreferences,
)
from contracts.events import (
    AnyEvent,
    CreditsRefreshed,
    FollowUpCancelled,
    FollowUpPlan,
    InMailAcknowledged,
    InMailDeclined,
    InMailRead,
    InMailReplied,
    InMailScheduled,
    InMailSent,
    MemberBlocked,
    MemberRegistered,
    MembersConnected,
    PreferencesUpdated,
    ScheduledInMailCancelled,
    TierChanged,
)
from contracts.personal import is_sealed

PLACEHOLDER_EMAIL = "member@example.invalid"
"""Emails are not in the events (they live in the members stream) and no rule reads one."""


class _Base(TypedDict):
    command_id: str
    occurred_at: datetime


def command_of(events: Sequence[AnyEvent]) -> AnyCommand | None:
    """The command whose decision recorded ``events`` (one decision: one aggregate, one
    command_id); None when the what-if does not decide it again."""
    first = events[0]
    base: _Base = {"command_id": first.command_id, "occurred_at": first.occurred_at}
    by_type = {type(event): event for event in events}
    if (registered := by_type.get(MemberRegistered)) is not None:
        assert isinstance(registered, MemberRegistered)
        return RegisterMember(
            **base,
            member_id=registered.member_id,
            display_name=registered.display_name,
            email=PLACEHOLDER_EMAIL,
            tier=registered.tier,
            open_profile=registered.open_profile,
            inmail_opt_out=registered.inmail_opt_out,
        )
    if (tier := by_type.get(TierChanged)) is not None:
        assert isinstance(tier, TierChanged)
        return ChangeTier(**base, member_id=tier.member_id, tier=tier.tier)
    if (scheduled := by_type.get(InMailScheduled)) is not None:
        assert isinstance(scheduled, InMailScheduled)
        return SendInMail(
            **base,
            sender_id=scheduled.sender_id,
            recipient_id=scheduled.recipient_id,
            subject=_text(scheduled.subject),
            body=_text(scheduled.body),
            kind=scheduled.kind,
            template_id=scheduled.template_id,
            follow_up_of=scheduled.follow_up_of,
            send_at=scheduled.send_at,
            automated_follow_up=_spec(scheduled.automated_follow_up),
        )
    sent = [event for event in events if isinstance(event, InMailSent)]
    if sent:
        return _send(sent, base)
    for event in events:
        match event:
            case ScheduledInMailCancelled(reason="sender_cancelled"):
                return CancelScheduledInMail(**base, inmail_id=event.inmail_id, member_id=event.sender_id)
            case ScheduledInMailCancelled():
                return DeliverScheduledInMail(**base, **_due_ids(event))
            case FollowUpCancelled(reason="sender_cancelled"):
                # Named by the InMail it follows: that finds it whether that one was delivered or
                # is still scheduled.
                return CancelFollowUp(**base, inmail_id=event.follow_up_of, member_id=event.sender_id)
            case FollowUpCancelled():
                return SendAutomatedFollowUp(**base, **_due_ids(event))
            case InMailReplied():
                return RecordReply(
                    **base, inmail_id=event.inmail_id, member_id=event.recipient_id, body=_text(event.body)
                )
            case InMailDeclined():
                reason = None if event.reason is None else _text(event.reason)
                recipient = event.recipient_id
                return DeclineInMail(**base, inmail_id=event.inmail_id, member_id=recipient, reason=reason)
            case InMailRead():
                return MarkInMailRead(**base, inmail_id=event.inmail_id, member_id=event.recipient_id)
            case InMailAcknowledged():
                return AcknowledgeInMail(**base, inmail_id=event.inmail_id, member_id=event.recipient_id)
            case PreferencesUpdated():
                return UpdatePreferences(
                    **base,
                    member_id=event.member_id,
                    open_profile=event.open_profile,
                    inmail_opt_out=event.inmail_opt_out,
                    email_notifications=event.email_notifications,
                )
            case MembersConnected():
                return ConnectMembers(
                    **base, member_id=event.member_id, other_member_id=event.other_member_id
                )
            case MemberBlocked():
                return BlockMember(
                    **base, member_id=event.member_id, blocked_member_id=event.blocked_member_id
                )
    refreshed = [event for event in events if isinstance(event, CreditsRefreshed)]
    if refreshed:
        return RefreshCredits(**base, member_id=refreshed[-1].member_id, month=refreshed[-1].month)
    return None


def is_send(cmd: AnyCommand) -> bool:
    """Whether a refusal of the command is a send the policy refuses (``refused``)."""
    return isinstance(cmd, SendInMail | SendBulkInMail)


def sends_in(cmd: AnyCommand) -> int:
    """How many InMails a send command asks for."""
    return len(cmd.recipient_ids) if isinstance(cmd, SendBulkInMail) else 1


def _send(sent: list[InMailSent], base: _Base) -> AnyCommand:
    first = sent[0]
    if first.scheduled:
        return DeliverScheduledInMail(**base, **_due_ids(first))
    if first.automated:
        return SendAutomatedFollowUp(**base, **_due_ids(first))
    if first.bulk:
        return SendBulkInMail(
            **base,
            sender_id=first.sender_id,
            recipient_ids=[event.recipient_id for event in sent],
            subject=_text(first.subject),
            body=_text(first.body),
            kind=first.kind,
            template_id=first.template_id,
            automated_follow_up=_spec(first.automated_follow_up),
        )
    return SendInMail(
        **base,
        sender_id=first.sender_id,
        recipient_id=first.recipient_id,
        subject=_text(first.subject),
        body=_text(first.body),
        kind=first.kind,
        template_id=first.template_id,
        follow_up_of=first.follow_up_of,
        automated_follow_up=_spec(first.automated_follow_up),
    )


class _DueIds(TypedDict):
    member_id: str
    inmail_id: str
    recipient_id: str


def _due_ids(event: InMailSent | ScheduledInMailCancelled | FollowUpCancelled) -> _DueIds:
    """Due work names the sender (whose aggregate it writes), the InMail and its recipient."""
    return {"member_id": event.sender_id, "inmail_id": event.inmail_id, "recipient_id": event.recipient_id}


def _spec(plan: FollowUpPlan | None) -> AutomatedFollowUp | None:
    if plan is None:
        return None
    return AutomatedFollowUp(after_days=plan.after_days, subject=_text(plan.subject), body=_text(plan.body))


SEALED_TEXT = "[sealed]"
"""What a sealed text is decided as: the log holds it encrypted (section 11), and a what-if
opens nothing, so limits on texts are checked only for texts recorded in the clear."""


def _text(value: str) -> str:
    return SEALED_TEXT if is_sealed(value) else value
