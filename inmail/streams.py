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
