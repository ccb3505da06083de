"""One exception per broken rule; each maps to one contract error code."""

from __future__ import annotations

from typing import ClassVar

from contracts.replies import ErrorCode


class DomainError(Exception):
    """A command the rules refuse; nothing is written."""

    code: ClassVar[ErrorCode]


class InvalidCommand(DomainError):
    code = "INVALID_COMMAND"


class InvalidTime(DomainError):
    code = "INVALID_TIME"


class SubjectTooLong(DomainError):
    code = "SUBJECT_TOO_LONG"


class BodyTooLong(DomainError):
    code = "BODY_TOO_LONG"


class EmptyMessage(DomainError):
    code = "EMPTY_MESSAGE"


class MemberExists(DomainError):
    code = "MEMBER_EXISTS"


class UnknownMember(DomainError):
    code = "UNKNOWN_MEMBER"


class UnknownInMail(DomainError):
    code = "UNKNOWN_INMAIL"


class SelfMessage(DomainError):
    code = "SELF_MESSAGE"


class TierNotAllowed(DomainError):
    code = "TIER_NOT_ALLOWED"


class RecipientOptedOut(DomainError):
    code = "RECIPIENT_OPTED_OUT"


class Blocked(DomainError):
    code = "BLOCKED"


class InsufficientCredits(DomainError):
    code = "INSUFFICIENT_CREDITS"


class NotRecipient(DomainError):
    code = "NOT_RECIPIENT"


class AlreadyResponded(DomainError):
    code = "ALREADY_RESPONDED"


class InvalidFollowUp(DomainError):
    code = "INVALID_FOLLOW_UP"


class IdempotencyConflict(DomainError):
    code = "IDEMPOTENCY_CONFLICT"


class AlreadySent(DomainError):
    code = "ALREADY_SENT"


class BulkSuspended(DomainError):
    code = "BULK_SUSPENDED"


class MemberErased(DomainError):
    code = "MEMBER_ERASED"


class PersonalDataInClear(DomainError):
    code = "PERSONAL_DATA_IN_CLEAR"
