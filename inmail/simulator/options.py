"""What to simulate: the options of a run, their defaults and their validation."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final

ID_PREFIX_PATTERN: Final = re.compile(r"^[A-Za-z0-9_-]{1,24}\Z")
MONTH_PATTERN: Final = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])\Z")


@dataclass(frozen=True, slots=True)
class SimulationOptions:
    """What to simulate; the defaults make a demo that finishes in seconds."""

    members: int = 200
    months: int = 3
    start: str | None = None
    """Simulated start month, YYYY-MM; None: a year before now."""
    seed: int = 1
    concurrency: int = 64
    """Requests in flight at most, on one connection."""
    activity: float = 1.0
    """A multiplier on send volume (and so on everything that follows a send)."""
    id_prefix: str | None = None
    """Prefix of every id the run creates; None: a random one, so runs never collide."""
    progress: bool = False
    timeout: float = 10.0
    """Seconds to wait for one reply before retrying the command (same command_id)."""

    def validated(self) -> SimulationOptions:
        """These options with the defaults filled in; ValueError on a bad one."""
        if self.members < 2:
            raise ValueError("members must be at least 2")
        if self.months < 1:
            raise ValueError("months must be at least 1")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not self.activity >= 0:
            raise ValueError("activity must be 0 or more")
        start = self.start or default_start()
        if not MONTH_PATTERN.match(start):
            raise ValueError(f"start must be YYYY-MM: {start}")
        prefix = self.id_prefix or f"sim{secrets.token_hex(3)}"
        if not ID_PREFIX_PATTERN.match(prefix):
            raise ValueError(f"id prefix must be 1-24 of A-Z a-z 0-9 _ -: {prefix}")
        return replace(self, start=start, id_prefix=prefix)


def default_start(now: datetime | None = None) -> str:
    """The month a year before ``now`` (default: the current month), as YYYY-MM."""
    moment = now or datetime.now(UTC)
    return f"{moment.year - 1:04d}-{moment.month:02d}"
