"""Operator requests on ``inmail.admin.<Operation>``."""

from __future__ import annotations

from typing import Annotated

import msgspec


class Replay(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Rebuild read models from the stream: clear them and follow again from ``from_seq``."""

    names: list[str] | None = None
    """Projections to rebuild; all when absent."""
    from_seq: Annotated[int, msgspec.Meta(ge=1)] = 1


class ReplayStarted(msgspec.Struct, frozen=True):
    """The replay's target: done when every named projection reaches ``target_seq``."""

    names: list[str]
    from_seq: int
    target_seq: int


ADMIN_OPERATIONS: tuple[type[msgspec.Struct], ...] = (Replay,)
