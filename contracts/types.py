"""Field types shared by commands, events and queries: ids, tiers, kinds, times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec


def _whole(pattern: str) -> str:
    """``pattern`` with its ``$`` meaning the very end of the value.

    msgspec checks patterns with Python's ``re``, where ``$`` also matches just
    before a final newline, so ``"alice\\n"`` would pass as an id (and become a
    broken subject token). The lookahead refuses that and means the same in the
    JSON Schema (ECMA 262) dialect the AsyncAPI document uses.
    """
    return pattern.removesuffix("$") + r"(?!\n)$"


ID_PATTERN = _whole(r"^[A-Za-z0-9_-]{1,64}$")
"""The contract's id pattern, safe with ``re.match`` as well as in JSON Schema."""

Id = Annotated[
    str,
    msgspec.Meta(
        pattern=ID_PATTERN, description="an id: 1 to 64 characters, each a letter, a digit, '_' or '-'"
    ),
]
"""Member ids and every other id: they become NATS subject tokens.

Each constrained type's description is the rule in words: the AsyncAPI document
shows it, and a value that breaks it is refused with it (``contracts.validation``).
"""

MemberId = Id
InMailId = Id
CommandId = Id
TemplateId = Id

Tier = Literal[
    "free",
    "premium_career",
    "premium_business",
    "sales_navigator",
    "recruiter_lite",
    "recruiter",
]

InMailKind = Literal[
    "recruiter_outreach",
    "talent_pipeline",
    "sales_prospecting",
    "employer_branding",
    "event_invitation",
]

Month = Annotated[
    str,
    msgspec.Meta(
        pattern=_whole(r"^[0-9]{4}-(0[1-9]|1[0-2])$"), description="a month written YYYY-MM, e.g. 2026-01"
    ),
]

Time = Annotated[
    datetime,
    msgspec.Meta(tz=True, description="a time in RFC 3339 with its offset, e.g. 2026-11-29T13:00:00Z"),
]
"""An aware datetime; naive times are refused so no one guesses a time zone."""

DisplayName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Email = Annotated[
    str,
    msgspec.Meta(
        pattern=_whole(r"^[^@\s]+@[^@\s]+$"),
        max_length=320,
        description="an email address (name@domain, without spaces) of at most 320 characters",
    ),
]


def utc(moment: datetime) -> datetime:
    """The same instant in UTC (the only zone the contract speaks)."""
    return moment.astimezone(UTC)


def month_of(moment: datetime) -> str:
    """The calendar month (UTC) of an instant, as YYYY-MM."""
    moment = utc(moment)
    return f"{moment.year:04d}-{moment.month:02d}"


def month_start(month: str) -> datetime:
    """The first instant of a YYYY-MM month, in UTC."""
    year, mon = month.split("-")
    return datetime(int(year), int(mon), 1, tzinfo=UTC)


def next_month(month: str) -> str:
    """The month after a YYYY-MM month."""
    year, mon = (int(part) for part in month.split("-"))
    return f"{year + mon // 12:04d}-{mon % 12 + 1:02d}"
