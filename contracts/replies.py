"""Replies: the envelope every command and query answers with, and the error codes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal

import msgspec

from contracts import admin, commands, queries
from contracts.events import FreeReason
from contracts.policy import CURRENT_POLICY
from contracts.types import InMailId, MemberId, Tier

ErrorCode = Literal[
    "INVALID_COMMAND",
    "INVALID_QUERY",
    "INVALID_TIME",
    "SUBJECT_TOO_LONG",
    "BODY_TOO_LONG",
    "EMPTY_MESSAGE",
    "MEMBER_EXISTS",
    "UNKNOWN_MEMBER",
    "UNKNOWN_INMAIL",
    "SELF_MESSAGE",
    "TIER_NOT_ALLOWED",
    "RECIPIENT_OPTED_OUT",
    "BLOCKED",
    "INSUFFICIENT_CREDITS",
    "NOT_RECIPIENT",
    "ALREADY_RESPONDED",
    "INVALID_FOLLOW_UP",
    "ALREADY_SENT",
    "BULK_SUSPENDED",
    "IDEMPOTENCY_CONFLICT",
    "MEMBER_ERASED",
    "PERSONAL_DATA_IN_CLEAR",
    "UNAVAILABLE",
]
"""The contract's codes, plus INVALID_QUERY (a malformed query; the contract lists codes
for commands only, and a query is not a command)."""

ERROR_MEANINGS: Mapping[ErrorCode, str] = MappingProxyType(
    {
        "INVALID_COMMAND": "The command is malformed: not a JSON object, a missing, unknown or "
        "mistyped field, or an id that is not 1-64 of A-Z a-z 0-9 _ -.",
        "INVALID_QUERY": "The query or operator request is malformed: not a JSON object, a missing, "
        "unknown or mistyped field, a value out of range, or a cursor this query did not give out.",
        "INVALID_TIME": "The command's occurred_at is earlier than the latest event it would follow, "
        "or than the registration of a member it names; or send_at is not after now or more than "
        "90 days ahead.",
        "SUBJECT_TOO_LONG": f"The subject is longer than {CURRENT_POLICY.subject_max_chars} characters.",
        "BODY_TOO_LONG": f"The body (of an InMail or a reply) is longer than "
        f"{CURRENT_POLICY.body_max_chars} characters.",
        "EMPTY_MESSAGE": "The subject or the body is empty or only whitespace.",
        "MEMBER_EXISTS": "A member with this member_id is already registered.",
        "UNKNOWN_MEMBER": "No member with this id is registered (or was, at the time the request names).",
        "UNKNOWN_INMAIL": "No InMail has this id.",
        "SELF_MESSAGE": "A member cannot send InMail to themself.",
        "TIER_NOT_ALLOWED": "The member's tier does not allow it: a charged InMail from the free tier, "
        "Open Profile on the free tier, a bulk or scheduled send outside the Recruiter tiers, or an "
        "automated follow-up outside the Recruiter tier.",
        "RECIPIENT_OPTED_OUT": "The recipient opted out of InMail and is not a connection of the sender.",
        "BLOCKED": "One of the two members blocked the other.",
        "INSUFFICIENT_CREDITS": "The sender has fewer credits than the InMail costs.",
        "NOT_RECIPIENT": "Only the InMail's recipient may mark it read, acknowledge it, reply or decline.",
        "ALREADY_RESPONDED": "The recipient already responded in a way that rules this out: a second "
        "reply, a decline after a reply, or a second decline.",
        "INVALID_FOLLOW_UP": "follow_up_of does not name an earlier InMail from the same sender to the "
        "same recipient that has no response and no follow-up yet (a planned automated one counts), "
        "or CancelFollowUp names an InMail without an automated follow-up.",
        "ALREADY_SENT": "The InMail (or automated follow-up) to cancel has already been sent.",
        "BULK_SUSPENDED": "The sender's bulk InMail is suspended by the response-rate floor; the "
        "message says until when.",
        "IDEMPOTENCY_CONFLICT": "The command_id was already used for a different command (another "
        "type or other fields); nothing was written. A retry must send the same command again.",
        "MEMBER_ERASED": "The command names a member who was erased (EraseMember): as the target, "
        "the sender, the recipient or the member acting.",
        "PERSONAL_DATA_IN_CLEAR": "EraseMember refused: the member's personal data sits in events "
        "written before encryption existed, in the clear, which destroying a key cannot forget; "
        "nothing was done.",
        "UNAVAILABLE": "The event store or a read model could not answer in time; nothing was recorded, "
        "so the same request (with the same command_id) is safe to retry.",
    }
)
"""Each error code in one sentence, as the reference page (docs/reference.md) shows it."""


class ErrorBody(msgspec.Struct, frozen=True):
    """What went wrong, for a program (code) and for a person (message)."""

    code: ErrorCode
    message: str


class Failure(msgspec.Struct, frozen=True, kw_only=True):
    """A refused command or query: nothing was written."""

    ok: Literal[False] = False
    error: ErrorBody


class CommandOk(msgspec.Struct, frozen=True, kw_only=True):
    """A command that succeeded; ``seq`` is the stream sequence of the last event recording it."""

    ok: Literal[True] = True
    data: Any
    seq: int


class QueryOk(msgspec.Struct, frozen=True, kw_only=True):
    """A query answer, as of the read model's position ``as_of_seq``."""

    ok: Literal[True] = True
    data: Any
    as_of_seq: int


# Command reply data ---------------------------------------------------------


class MemberRegisteredData(msgspec.Struct, frozen=True):
    member_id: MemberId
    credits_left: int


class TierChangedData(msgspec.Struct, frozen=True):
    member_id: MemberId
    tier: Tier
    credits_left: int


class MemberData(msgspec.Struct, frozen=True):
    member_id: MemberId


class ConnectedData(msgspec.Struct, frozen=True):
    member_id: MemberId
    other_member_id: MemberId


class BlockedData(msgspec.Struct, frozen=True):
    member_id: MemberId
    blocked_member_id: MemberId


class RefreshedData(msgspec.Struct, frozen=True):
    member_id: MemberId
    month: str
    credits_left: int


class SentData(msgspec.Struct, frozen=True):
    inmail_id: InMailId
    charged: bool
    free_reason: FreeReason | None
    credits_left: int
    scheduled_for: datetime | None = None


class BulkSentData(msgspec.Struct, frozen=True):
    inmail_ids: list[InMailId]
    credits_left: int


class InMailData(msgspec.Struct, frozen=True):
    inmail_id: InMailId


class RespondedData(msgspec.Struct, frozen=True):
    inmail_id: InMailId
    refunded: bool


class SkippedData(msgspec.Struct, frozen=True):
    """A quarantined event the operator skipped: the member whose events it held up."""

    member_id: MemberId
    skipped_seq: int


class CancelledData(msgspec.Struct, frozen=True):
    inmail_id: InMailId
    refunded: bool
    credits_left: int


class RunDueData(msgspec.Struct, frozen=True):
    performed: int
    """Due work items this request performed (none that were already done)."""
    outcomes: dict[str, int] = {}
    """What they did, by outcome: ``delivered``, ``cancelled`` (scheduled sends),
    ``follow_up_sent``, ``follow_up_cancelled``, ``assessed`` (stage unchanged), ``warned``,
    ``suspended``, ``warning_ended``, ``suspension_ended``."""


REPLY_DATA: Mapping[type[msgspec.Struct], type[msgspec.Struct]] = MappingProxyType(
    {
        commands.RegisterMember: MemberRegisteredData,
        commands.ChangeTier: TierChangedData,
        commands.UpdatePreferences: MemberData,
        commands.ConnectMembers: ConnectedData,
        commands.BlockMember: BlockedData,
        commands.RefreshCredits: RefreshedData,
        commands.SendInMail: SentData,
        commands.SendBulkInMail: BulkSentData,
        commands.MarkInMailRead: InMailData,
        commands.AcknowledgeInMail: InMailData,
        commands.RecordReply: RespondedData,
        commands.DeclineInMail: RespondedData,
        commands.CancelScheduledInMail: CancelledData,
        commands.CancelFollowUp: InMailData,
        commands.RunDue: RunDueData,
        commands.EraseMember: MemberData,
        queries.Health: queries.HealthData,
        queries.Inbox: queries.InboxPage,
        queries.CreditBalance: queries.CreditBalanceData,
        queries.CreditLedger: queries.LedgerPage,
        queries.ResponseStats: queries.ResponseStatsData,
        queries.EnforcementStatus: queries.EnforcementStatusData,
        admin.Replay: admin.ReplayStarted,
        admin.Reveal: admin.Revealed,
        admin.OpenAlert: admin.Revealed,
        admin.SkipEvent: SkippedData,
    }
)
"""What ``data`` holds in the success reply to each command, query and operator request."""


_encoder = msgspec.json.Encoder()


def encode(reply: CommandOk | QueryOk | Failure) -> bytes:
    """The JSON bytes of a reply."""
    return _encoder.encode(reply)


def failure(code: ErrorCode, message: str) -> Failure:
    """A failure reply."""
    return Failure(error=ErrorBody(code, message))
