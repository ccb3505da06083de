"""One notion of now per test: the service's clock and the test's own, moved together.

Time is data (DESIGN decision 6), and so it is in tests: a test either gives every
command its time, or lets them all take the service's clock and derives its own
times (a month to refresh, a window to expect) from that same clock. Mixing a fixed
time with the wall clock passes until the calendar reaches the fixed time, then fails
every day. ``at_any_time`` runs a test with the clock today, years ahead and years
back, so such a test fails on the day it is written, whichever day that is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest


@dataclass(frozen=True, slots=True)
class ShiftedClock:
    """The wall clock moved by ``offset``; a ``ServiceSettings.clock``."""

    offset: timedelta = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


SHIFTS: dict[str, timedelta] = {
    "today": timedelta(0),
    # Odd days on top of whole years: another year and another month of the year, so a
    # month or year that a test takes to be past (or to come) is not, in one of them.
    "3-years-ahead": timedelta(days=3 * 365 + 47),
    "2-years-back": -timedelta(days=2 * 365 + 73),
}

at_any_time = pytest.mark.parametrize("clock", list(SHIFTS.values()), ids=list(SHIFTS), indirect=True)
"""Run the test with its ``clock`` fixture at each of ``SHIFTS``."""


def at(moment: datetime) -> str:
    """A time as a command carries it (``occurred_at``, ``send_at``): ISO 8601 in UTC, with ``Z``."""
    return moment.isoformat().replace("+00:00", "Z")
