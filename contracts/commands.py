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

BulkRecipients = Annotated[
    list[MemberId],
    msgspec.Meta(
        min_length=CURRENT_POLICY.bulk_min_recipients,
        max_length=CURRENT_POLICY.bulk_max_recipients,
    ),
]


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
    """Open Profile (paid tiers only) and InMail opt-out; an absent field is unchanged."""

    member_id: MemberId
    open_profile: bool | None = None
    inmail_opt_out: bool | None = None


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
    """One InMail."""

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


class SendBulkInMail(Command, tag=True, frozen=True):
    """One InMail per recipient, all or nothing; Recruiter tiers only."""

    sender_id: MemberId
    recipient_ids: BulkRecipients
    """Distinct members."""
    subject: str
    body: str
    kind: InMailKind = "recruiter_outreach"
    template_id: TemplateId | None = None

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


MemberCommand = RegisterMember | ChangeTier | UpdatePreferences | ConnectMembers | BlockMember
CreditCommand = RefreshCredits
SendCommand = SendInMail | SendBulkInMail
InMailCommand = MarkInMailRead | AcknowledgeInMail | RecordReply | DeclineInMail
AnyCommand = MemberCommand | CreditCommand | SendCommand | InMailCommand

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
)
"""Every command of the contract; its class name is its subject token."""
