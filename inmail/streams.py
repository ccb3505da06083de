"""Every stream of the product, as the composition root creates them."""

from __future__ import annotations

from contracts import subjects
from eventstore import StreamSpec


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
        subjects=(f"{subjects.NOTIFY_ROOT}.>",),
        replicas=replicas,
        duplicate_window=NOTIFICATIONS_DUPLICATE_WINDOW,
    )
