"""Replies: the envelope every command and query answers with, and the error codes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from contracts.events import FreeReason
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
    "UNAVAILABLE",
]
"""The contract's codes, plus INVALID_QUERY (a malformed query; the contract lists codes
for commands only, and a query is not a command)."""


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


_encoder = msgspec.json.Encoder()


def encode(reply: CommandOk | QueryOk | Failure) -> bytes:
    """The JSON bytes of a reply."""
    return _encoder.encode(reply)


def failure(code: ErrorCode, message: str) -> Failure:
    """A failure reply."""
    return Failure(error=ErrorBody(code, message))
