"""Commands: what other services ask of InMail Broker, on ``inmail.cmd.<Command>``.

Decoding is the first validation: a body that is not JSON, not an object, has a
missing, unknown or mistyped field, or an id that does not match the contract
pattern never reaches the domain. Length rules (subject and body) are left to
the domain, which answers them with their own error codes.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from contracts.policy import CURRENT_POLICY
from contracts.types import (
    CommandId,
    DisplayName,
    Email,
    InMailId,
    InMailKind,
    MemberId,
    Month,
    TemplateId,
    Tier,
    Time,
)

Reason = Annotated[str, msgspec.Meta(max_length=500)]

FollowUpDays = Annotated[
    int,
    msgspec.Meta(
        ge=CURRENT_POLICY.scheduling.follow_up_min_days,
        le=CURRENT_POLICY.scheduling.follow_up_max_days,
        description="days after delivery",
    ),
]

BulkRecipients = Annotated[
    list[MemberId],
    msgspec.Meta(
        min_length=CURRENT_POLICY.bulk_min_recipients,
        max_length=CURRENT_POLICY.bulk_max_recipients,
    ),
]


class AutomatedFollowUp(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A follow-up sent by itself ``after_days`` after delivery unless the recipient responded."""

    after_days: FollowUpDays = CURRENT_POLICY.scheduling.follow_up_default_days
    """Days after delivery (3-28)."""
    subject: str
    """The follow-up's subject, within the policy's limits like any InMail's."""
    body: str
    """The follow-up's body, within the policy's limits like any InMail's."""


class Command(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", forbid_unknown_fields=True):
    """Every command: an idempotency key and, with trusted client time, when it happened."""

    command_id: CommandId
    """Chosen by the client; the same id again returns the original reply and writes nothing."""
    occurred_at: Time | None = None
    """Honoured only when the service trusts client time (``--trust-client-time``)."""


class RegisterMember(Command, tag=True, frozen=True):
    """A new member; the first month's credits are granted."""

    member_id: MemberId
    display_name: DisplayName
    email: Email
    tier: Tier
    open_profile: bool = False
    inmail_opt_out: bool = False


class ChangeTier(Command, tag=True, frozen=True):
    """A new tier: the old balance is forfeited, the new tier's allotment granted."""

    member_id: MemberId
    tier: Tier


class UpdatePreferences(Command, tag=True, frozen=True):
    """Open Profile (paid tiers only), InMail opt-out and email alerts; an absent field is unchanged."""

    member_id: MemberId
    open_profile: bool | None = None
    inmail_opt_out: bool | None = None
    email_notifications: bool | None = None


class ConnectMembers(Command, tag=True, frozen=True):
    """A 1st-degree connection, both ways."""

    member_id: MemberId
    other_member_id: MemberId

    def __post_init__(self) -> None:
        if self.member_id == self.other_member_id:
            raise ValueError("a member cannot connect to themself - at `$.other_member_id`")


class BlockMember(Command, tag=True, frozen=True):
    """Neither member can message the other from then on."""

    member_id: MemberId
    blocked_member_id: MemberId

    def __post_init__(self) -> None:
        if self.member_id == self.blocked_member_id:
            raise ValueError("a member cannot block themself - at `$.blocked_member_id`")


class RefreshCredits(Command, tag=True, frozen=True):
    """The monthly refresh of one member for one month; idempotent per member and month."""

    member_id: MemberId
    month: Month


class SendInMail(Command, tag=True, frozen=True):
    """One InMail, now or (Recruiter tiers) at ``send_at``; charged when accepted."""

    sender_id: MemberId
    recipient_id: MemberId
    subject: str
    """Within the policy's limits, or ``SUBJECT_TOO_LONG`` / ``EMPTY_MESSAGE``."""
    body: str
    """Within the policy's limits, or ``BODY_TOO_LONG`` / ``EMPTY_MESSAGE``."""
    kind: InMailKind = "recruiter_outreach"
    template_id: TemplateId | None = None
    """The message template the sender used, so statistics can compare templates."""
    follow_up_of: InMailId | None = None
    """An earlier InMail to the same recipient with no response and no follow-up yet."""
    send_at: Time | None = None
    """Deliver it then (Recruiter tiers): after now, at most 90 days ahead; charged now."""
    automated_follow_up: AutomatedFollowUp | None = None
    """A follow-up sent by itself when the recipient has not responded (Recruiter)."""


class SendBulkInMail(Command, tag=True, frozen=True):
    """One InMail per recipient, all or nothing; Recruiter tiers only."""

    sender_id: MemberId
    recipient_ids: BulkRecipients
    """Distinct members."""
    subject: str
    body: str
    kind: InMailKind = "recruiter_outreach"
    template_id: TemplateId | None = None
    automated_follow_up: AutomatedFollowUp | None = None
    """One per InMail, sent by itself to each recipient who has not responded (Recruiter)."""

    def __post_init__(self) -> None:
        if len(set(self.recipient_ids)) != len(self.recipient_ids):
            raise ValueError("recipients must be distinct - at `$.recipient_ids`")


class MarkInMailRead(Command, tag=True, frozen=True):
    """The recipient's read receipt, recorded once."""

    inmail_id: InMailId
    member_id: MemberId


class AcknowledgeInMail(Command, tag=True, frozen=True):
    """The recipient's explicit acknowledgement, recorded once."""

    inmail_id: InMailId
    member_id: MemberId


class RecordReply(Command, tag=True, frozen=True):
    """The recipient's reply; refunds a charged InMail within the refund window."""

    inmail_id: InMailId
    member_id: MemberId
    body: str


class DeclineInMail(Command, tag=True, frozen=True):
    """The recipient's decline ("not interested"); refunds like a reply."""

    inmail_id: InMailId
    member_id: MemberId
    reason: Reason | None = None


class CancelScheduledInMail(Command, tag=True, frozen=True):
    """The sender calls off a scheduled InMail before delivery; its credit comes back."""

    inmail_id: InMailId
    member_id: MemberId


class CancelFollowUp(Command, tag=True, frozen=True):
    """The sender calls off the automated follow-up of an InMail (named by either one's id)."""

    inmail_id: InMailId
    member_id: MemberId


class EraseMember(Command, tag=True, frozen=True):
    """Forget a member (section 11): their data key is destroyed, so their display name, email
    and the texts they wrote read as "[erased]" everywhere; numbers stay as they are."""

    member_id: MemberId


class RunDue(Command, tag=True, frozen=True):
    """Trusted client time only: perform, in due order, every due work item due at or before ``until``."""

    until: Time


# Due work: commands the service gives itself, never accepted on a subject. Their command
# ids derive from the item, so every instance performing one converges on one effect.


class DeliverScheduledInMail(Command, tag=True, frozen=True):
    """A scheduled InMail is due: deliver it, or cancel it (and refund) when it may not go."""

    member_id: MemberId
    inmail_id: InMailId
    recipient_id: MemberId


class SendAutomatedFollowUp(Command, tag=True, frozen=True):
    """An automated follow-up is due: send it, or cancel it saying why."""

    member_id: MemberId
    inmail_id: InMailId
    """The follow-up's own id, planned with the InMail it follows."""
    recipient_id: MemberId


class AssessResponseRate(Command, tag=True, frozen=True):
    """An assessment period (or a warning period) of a sender is due for assessment."""

    member_id: MemberId
    period_start: Time
    warning_period: bool = False


class EndBulkSuspension(Command, tag=True, frozen=True):
    """A sender's bulk suspension has run its time."""

    member_id: MemberId
    since: Time


MemberCommand = RegisterMember | ChangeTier | UpdatePreferences | ConnectMembers | BlockMember | EraseMember
CreditCommand = RefreshCredits
SendCommand = SendInMail | SendBulkInMail
InMailCommand = (
    MarkInMailRead | AcknowledgeInMail | RecordReply | DeclineInMail | CancelScheduledInMail | CancelFollowUp
)
"""Commands naming an InMail, not its sender: they route by the InMail id's prefix."""
DueCommand = DeliverScheduledInMail | SendAutomatedFollowUp | AssessResponseRate | EndBulkSuspension
AnyCommand = MemberCommand | CreditCommand | SendCommand | InMailCommand | DueCommand
"""Every command a member aggregate decides (``RunDue`` is the due work runner's)."""

COMMANDS: tuple[type[Command], ...] = (
    RegisterMember,
    ChangeTier,
    UpdatePreferences,
    ConnectMembers,
    BlockMember,
    RefreshCredits,
    SendInMail,
    SendBulkInMail,
    MarkInMailRead,
    AcknowledgeInMail,
    RecordReply,
    DeclineInMail,
    CancelScheduledInMail,
    CancelFollowUp,
    RunDue,
    EraseMember,
)
"""Every command of the contract; its class name is its subject token."""

DUE_COMMANDS: tuple[type[Command], ...] = (
    DeliverScheduledInMail,
    SendAutomatedFollowUp,
    AssessResponseRate,
    EndBulkSuspension,
)
"""The service's own commands for due work: not on any subject."""
