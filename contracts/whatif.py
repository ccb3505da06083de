"""What ``inmail whatif --json`` prints (CONTRACT section 10): the recorded history against the
same history decided again under another policy, per member (only those that differ) and in total.

Every measure is ``{"recorded": x, "whatif": y}``. ``balance`` is the balance after the last
event; ``charged``, ``refunded`` and ``forfeited`` count credits over the whole history;
``refused`` counts recorded sends the policy refuses (and automated follow-ups cancelled for lack
of credits); ``stage`` is the enforcement stage after the last event, and in the total the number
of members at each stage.
"""

from __future__ import annotations

import msgspec

from contracts.events import Stage

MEASURES = ("balance", "charged", "refunded", "forfeited", "refused", "stage")
"""The measures, in the order they are reported."""


class Compared(msgspec.Struct, frozen=True):
    """One number as recorded and as the other policy would have made it."""

    recorded: int
    whatif: int


class StageCompared(msgspec.Struct, frozen=True):
    """A member's enforcement stage as recorded and under the other policy."""

    recorded: Stage
    whatif: Stage


class StagesCompared(msgspec.Struct, frozen=True):
    """How many members are at each stage, as recorded and under the other policy."""

    recorded: dict[Stage, int]
    whatif: dict[Stage, int]


class MemberDifference(msgspec.Struct, frozen=True, kw_only=True):
    """A member whose measures differ under the other policy (all six measures are listed)."""

    member_id: str
    balance: Compared
    charged: Compared
    refunded: Compared
    forfeited: Compared
    refused: Compared
    stage: StageCompared

    def differs(self) -> bool:
        """Whether any measure differs."""
        return any(
            getattr(self, name).recorded != getattr(self, name).whatif for name in MEASURES
        )


class Totals(msgspec.Struct, frozen=True, kw_only=True):
    """The measures summed over the members reported on (every member, or the one asked for)."""

    balance: Compared
    charged: Compared
    refunded: Compared
    forfeited: Compared
    refused: Compared
    stage: StagesCompared


class WhatIfReport(msgspec.Struct, frozen=True, kw_only=True):
    """``{"members": [...], "total": {...}}``: members in id order, only those that differ."""

    members: list[MemberDifference]
    total: Totals
