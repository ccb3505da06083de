"""Operator requests on ``inmail.admin.<Operation>``."""

from __future__ import annotations

from typing import Annotated

import msgspec


class Replay(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Rebuild read models from the stream: clear them and follow again from ``from_seq``."""

    names: list[str] | None = None
    """Projections to rebuild; all when absent."""
    from_seq: Annotated[int, msgspec.Meta(ge=1)] = 1
    new_stream: bool = False
    """Confirms rebuilding from a stream other than the one the read models followed (deleted
    and created again, or purged): what they hold of the old one is then gone for good."""


class ReplayStarted(msgspec.Struct, frozen=True):
    """The replay's target: done when every named projection reaches ``target_seq``."""

    names: list[str]
    from_seq: int
    target_seq: int


class SkipEvent(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Record that the quarantined event at ``seq`` is skipped, so its member is served again."""

    seq: Annotated[int, msgspec.Meta(ge=1)]
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    operator: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    """Who decided it, for the record."""


class Reveal(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Open sealed personal fields (as ``inmail events`` prints them): each value's clear text,
    ``"[erased]"`` where its member's key was destroyed; emails are never opened here."""

    values: Annotated[list[str], msgspec.Meta(max_length=1000)]
    """Stored strings: tokens (``enc1:…``) are opened, anything else comes back as it is."""


class Revealed(msgspec.Struct, frozen=True):
    """The values of a ``Reveal``, in its order, opened."""

    values: list[str]


class OpenAlert(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Open the sealed fields of email alerts (``email``, ``sender_name``, ``subject``) for the mail
    service (the ``notifier`` role, alone allowed): ``"[erased]"`` where a member was erased."""

    values: Annotated[list[str], msgspec.Meta(max_length=1000)]
    """Fields of alerts as stored: tokens (``enc1:…``) are opened, anything else comes back as it is."""


ALERT_OPERATIONS: tuple[type[msgspec.Struct], ...] = (OpenAlert,)
"""Requests of the mail service, on ``inmail.alerts.<Operation>``: no other role may send them."""

READ_OPERATIONS: tuple[type[msgspec.Struct], ...] = (Replay, Reveal)
"""Answered by every read-side instance (each rebuilds its own read models)."""

WRITE_OPERATIONS: tuple[type[msgspec.Struct], ...] = (SkipEvent,)
"""Answered by one command-side instance: they write events, and only the service does."""

ADMIN_OPERATIONS: tuple[type[msgspec.Struct], ...] = READ_OPERATIONS + WRITE_OPERATIONS
