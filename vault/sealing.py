"""Sealing personal fields on the way into a stream, opening them on the way out.

``Sealer.seal_events`` is the command side's seam: every event is sealed before
it is encoded and appended, so no stream, replica or subscriber ever sees those
fields in the clear. A field that already holds a token of the right member and
field (copied from an earlier event) is kept as it is; anything else, a string
that only looks like a token included, is sealed.

``Revealer`` is the read side's: it opens every token in an answer (a query's,
an event printed by ``inmail events``), and shows ``"[erased]"`` for a token whose
member's key is gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import msgspec

from contracts.events import AnyEvent, FollowUpPlan, MemberErased
from contracts.personal import ERASED, PERSONAL_FIELDS, PLAN_FIELDS, parse
from vault.cipher import CannotOpen, open_token, seal
from vault.keystore import KeyStore

E = TypeVar("E", bound=AnyEvent)

EVENT_PERSONAL_FIELDS = frozenset({"display_name", "subject", "body", "reason"})
"""What events may hold sealed: everything but the email, which only the members stream and the
recipient's own alerts carry."""


class Sealer:
    """Seals the personal fields of events, and destroys a member's key before their erasure is stored."""

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys

    async def seal_events(self, events: Sequence[AnyEvent]) -> list[AnyEvent]:
        """The events with every personal field sealed with its owner's key.

        A ``MemberErased`` destroys the member's key first: if the append then fails,
        the key is gone all the same and a retry of the erasure records it.
        """
        sealed: list[AnyEvent] = []
        for event in events:
            if isinstance(event, MemberErased):
                await self.keys.erase(event.member_id)
            sealed.append(await self._seal(event))
        return sealed

    async def seal_text(self, member_id: str, field: str, text: str) -> str:
        """One field sealed with the member's key (kept when it already is)."""
        dek = await self.keys.data_key_for_writing(member_id)
        parts = parse(text)
        if parts is not None and parts.member_id == member_id and parts.field == field:
            try:
                open_token(dek, text)
                return text
            except CannotOpen:
                pass
        return seal(dek, member_id, field, text)

    async def _seal(self, event: E) -> E:
        fields = PERSONAL_FIELDS.get(type(event).__name__)
        if not fields:
            return event
        changes: dict[str, Any] = {}
        owner = ""
        for attribute, field, owner_attribute in fields:
            owner = getattr(event, owner_attribute)
            value = getattr(event, attribute)
            if value is not None:
                changes[attribute] = await self.seal_text(owner, field, value)
        plan = getattr(event, "automated_follow_up", None)
        if isinstance(plan, FollowUpPlan):
            sender = getattr(event, "sender_id", owner)
            plan_changes = {a: await self.seal_text(sender, f, getattr(plan, a)) for a, f in PLAN_FIELDS}
            changes["automated_follow_up"] = msgspec.structs.replace(plan, **plan_changes)
        return msgspec.structs.replace(event, **changes)


class Revealer:
    """Opens tokens for an answer: the clear text, or ``"[erased]"`` once the key is gone."""

    def __init__(self, keys: KeyStore, *, fields: frozenset[str] | None = None) -> None:
        self.keys = keys
        self.fields = fields
        """The logical fields it may open (None: all); the others are shown as they are stored."""

    async def text(self, value: str) -> str:
        """One stored string, opened when it is a token."""
        parts = parse(value)
        if parts is None or (self.fields is not None and parts.field not in self.fields):
            return value
        dek = await self.keys.data_key(parts.member_id)
        if dek is None:
            return ERASED
        try:
            return open_token(dek, value)
        except CannotOpen:
            # A string shaped like a token that the key does not open was never sealed by
            # the service (nor can it tell anything): shown as stored.
            return value

    async def builtins(self, value: Any) -> Any:
        """A decoded JSON value (dicts, lists, strings, ...) with every token in it opened."""
        if isinstance(value, str):
            return await self.text(value)
        if isinstance(value, dict):
            return {key: await self.builtins(item) for key, item in value.items()}
        if isinstance(value, list):
            return [await self.builtins(item) for item in value]
        return value
