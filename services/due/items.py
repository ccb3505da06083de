"""What one piece of due work is: when it is due, which member's it is, the command performing it."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import msgspec

from contracts.commands import (
    AssessResponseRate,
    DeliverScheduledInMail,
    DueCommand,
    EndBulkSuspension,
    SendAutomatedFollowUp,
)

Kind = Literal["end_suspension", "assessment", "delivery", "follow_up"]

_TIE_ORDER: dict[Kind, int] = {"end_suspension": 0, "assessment": 1, "delivery": 2, "follow_up": 3}
"""Among items of one member due at the same instant: a suspension ends before the next
assessment looks at the stage, and a delivery goes before a follow-up that might count it."""

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")


@dataclass(frozen=True, slots=True, order=True)
class DueItem:
    """One piece of due work; items sort in due order (ties in a fixed order, then by key)."""

    due_at: datetime
    tie: int
    key: str
    """Unique among all items: what the item is about."""
    kind: Kind = field(compare=False)
    member_id: str = field(compare=False)
    command: DueCommand = field(compare=False)
    """The command performing it, without ``occurred_at``."""

    def stamped(self) -> DueCommand:
        """The command happening at the item's due time (trusted client time)."""
        return msgspec.structs.replace(self.command, occurred_at=self.due_at)


def delivery_key(inmail_id: str) -> str:
    return f"deliver-{inmail_id}"


def follow_up_key(follow_up_id: str) -> str:
    return f"follow-up-{follow_up_id}"


def assessment_key(member_id: str, start: datetime, warning_period: bool) -> str:
    return f"assess-{'warning' if warning_period else 'period'}-{start:%Y%m%d}-{member_id}"


def end_of_suspension_key(member_id: str, since: datetime) -> str:
    return f"unsuspend-{since:%Y%m%d}-{member_id}"


def delivery(sender_id: str, inmail_id: str, recipient_id: str, send_at: datetime) -> DueItem:
    """Deliver (or cancel) a scheduled InMail at ``send_at``."""
    return _item(
        "delivery",
        send_at,
        delivery_key(inmail_id),
        sender_id,
        lambda command_id: DeliverScheduledInMail(
            command_id=command_id, member_id=sender_id, inmail_id=inmail_id, recipient_id=recipient_id
        ),
    )


def follow_up(sender_id: str, follow_up_id: str, recipient_id: str, due_at: datetime) -> DueItem:
    """Send (or cancel) an automated follow-up at ``due_at``."""
    return _item(
        "follow_up",
        due_at,
        follow_up_key(follow_up_id),
        sender_id,
        lambda command_id: SendAutomatedFollowUp(
            command_id=command_id, member_id=sender_id, inmail_id=follow_up_id, recipient_id=recipient_id
        ),
    )


def assessment(member_id: str, start: datetime, warning_period: bool, due_at: datetime) -> DueItem:
    """Assess a period (or a warning period) starting at ``start``."""
    return _item(
        "assessment",
        due_at,
        assessment_key(member_id, start, warning_period),
        member_id,
        lambda command_id: AssessResponseRate(
            command_id=command_id, member_id=member_id, period_start=start, warning_period=warning_period
        ),
    )


def end_of_suspension(member_id: str, since: datetime, until: datetime) -> DueItem:
    """End the suspension that began at ``since``, at ``until``."""
    return _item(
        "end_suspension",
        until,
        end_of_suspension_key(member_id, since),
        member_id,
        lambda command_id: EndBulkSuspension(command_id=command_id, member_id=member_id, since=since),
    )


def command_id_of(key: str) -> str:
    """The command id of an item: the same in every instance, so its receipt dedupes them."""
    readable = f"due-{key}"
    if _ID.match(readable):
        return readable
    return f"due-{hashlib.sha256(key.encode()).hexdigest()[:48]}"


def _item(
    kind: Kind, due_at: datetime, key: str, member_id: str, make: Callable[[str], DueCommand]
) -> DueItem:
    return DueItem(due_at, _TIE_ORDER[kind], key, kind, member_id, make(command_id_of(key)))
