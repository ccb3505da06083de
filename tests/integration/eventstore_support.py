"""What the event store's integration tests share: events with fresh ids, subjects, versions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import msgspec

from eventstore import JetStreamEventStore, NewMessage, StoredMessage


def new_event(label: str = "event") -> NewMessage:
    """An event with a fresh id; the label travels in the payload so tests can tell events apart."""
    return NewMessage(msg_id=str(uuid.uuid4()), data=msgspec.json.encode({"label": label}))


def ids(messages: Sequence[StoredMessage]) -> list[str | None]:
    return [m.msg_id for m in messages]


def aggregate(store: JetStreamEventStore, name: str) -> str:
    return f"{store.spec.subjects[0].removesuffix('>')}{name}"


async def version_of(store: JetStreamEventStore, subject: str) -> int:
    stored = await store.read_subject(subject)
    return stored[-1].seq if stored else 0
