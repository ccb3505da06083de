"""Every stream and bucket of the product, as the composition root creates them and as
``Health`` and ``inmail backup`` find them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from contracts import subjects
from eventstore import StreamSpec
from services.monthly_refresh import BUCKET

IDENTITY_BUCKET = "INMAIL_IDENTITY"
"""The service's record of the events stream's identity (``inmail.stream_guard``)."""


def events_stream(replicas: int = 1) -> StreamSpec:
    """The stream of member aggregates: the source of truth."""
    return StreamSpec(name=subjects.EVENTS_STREAM, subjects=(subjects.EVENTS_ALL,), replicas=replicas)


def members_stream(replicas: int = 1) -> StreamSpec:
    """The service's own members stream: contact details (emails) no other stream carries."""
    return StreamSpec(
        name=subjects.MEMBERS_STREAM, subjects=(f"{subjects.MEMBERS_ROOT}.>",), replicas=replicas
    )


NOTIFICATIONS_DUPLICATE_WINDOW = 3600.0
"""An alert published again within an hour (a restart mid-page, a second instance) is dropped."""


def notifications_stream(replicas: int = 1) -> StreamSpec:
    """Email alerts for the mail service (section 14): the only reader is the ``notifier`` role."""
    return StreamSpec(
        name=subjects.NOTIFICATIONS_STREAM,
        subjects=(f"{subjects.NOTIFICATIONS_ROOT}.>",),
        replicas=replicas,
        duplicate_window=NOTIFICATIONS_DUPLICATE_WINDOW,
    )


@dataclass(frozen=True, slots=True)
class Store:
    """A stream or a KV bucket of the product, by the name its users know."""

    name: str
    kind: Literal["stream", "bucket"]

    @property
    def stream(self) -> str:
        """The JetStream stream that holds it (a bucket ``B`` lives in stream ``KV_B``)."""
        return f"KV_{self.name}" if self.kind == "bucket" else self.name


STORES: tuple[Store, ...] = (
    Store(subjects.EVENTS_STREAM, "stream"),
    Store(subjects.MEMBERS_STREAM, "stream"),
    Store(BUCKET, "bucket"),
    Store(IDENTITY_BUCKET, "bucket"),
    Store(subjects.NOTIFICATIONS_STREAM, "stream"),
    Store(subjects.KEYS_BUCKET, "bucket"),
)
"""Everything the service keeps in JetStream, the source of truth first: commands of every
kind need all of them."""
