"""Which stream this is: an identity a reader records, so a swapped stream is noticed.

A stream deleted and created again under the same name, purged, or restored from
an older backup looks like the stream it replaced to anyone who only knows its
name. Its readers (read models, the command side's cache of aggregates) then
follow a history that is not the one they hold. So each reader records what it
follows (``Followed``) and checks it against the stream as the server reports
it (``replacement``).

The identity is an id the store mints into the stream's metadata when it creates
the stream: a snapshot restore keeps it (it carries the configuration), while
the stream's creation time does not survive one (measured, nats-server 2.15: a
restored stream reports the restore's time). A stream this store did not create
has no such id; its creation time stands in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from nats.js import api as js_api

from eventstore.follow import stop_if_cancelled

log = logging.getLogger("inmail.eventstore")

ID_KEY = "eventstore_stream_id"
"""The stream metadata key holding the id the store minted when it created the stream."""


def identity_of(info: js_api.StreamInfo) -> str:
    """The stream's identity: its minted id, or its creation time when it has none."""
    minted = (info.config.metadata or {}).get(ID_KEY)
    if minted:
        return f"id {minted}"
    return f"created {info.created.isoformat() if info.created else 'at an unknown time'}"


def first_kept(info: js_api.StreamInfo) -> int:
    """The first sequence the stream still holds (or will hold): 1 for a stream never purged."""
    # An empty stream reports first_seq 0 until its first message; a purged one, the next.
    return max(int(info.state.first_seq), 1)


@dataclass(frozen=True, slots=True)
class Followed:
    """What a reader recorded of the stream it follows."""

    identity: str | None
    """None: recorded before identities were kept (then any stream is taken for it)."""
    from_seq: int = 1
    """The first sequence the reader's state was built from."""
    position: int = 0
    """The last sequence the reader has seen."""


def replacement(name: str, info: js_api.StreamInfo | None, followed: Followed) -> str | None:
    """Why the stream ``info`` describes is not the one ``followed`` records; None when it is.

    ``info`` is None when the stream does not exist. A reader that has seen nothing
    and recorded no identity follows whatever stream there is.
    """
    if info is None:
        if followed.identity is None and followed.position == 0:
            return None
        seen = f" (this service has seen it up to seq {followed.position})" if followed.position else ""
        return f"stream {name} is gone{seen}"
    if followed.identity is not None and identity_of(info) != followed.identity:
        return (
            f"stream {name} was replaced: it is not the stream this service followed "
            f"(deleted and created again?); its last seq is {info.state.last_seq}, "
            f"this service had seen seq {followed.position}"
        )
    if info.state.last_seq < followed.position:
        return (
            f"stream {name} ends at seq {info.state.last_seq}, before seq {followed.position} "
            "that this service has seen (restored from an older backup?)"
        )
    if first_kept(info) > followed.from_seq:
        return (
            f"stream {name} was purged: its events now start at seq {first_kept(info)}, "
            f"and this service was built from seq {followed.from_seq}"
        )
    return None


def replacements(
    name: str, info: js_api.StreamInfo | None, followed: Mapping[str, Followed]
) -> dict[str, str]:
    """Reader -> why ``info`` is not the stream it follows, for the readers it is not."""
    found = {reader: replacement(name, info, f) for reader, f in followed.items()}
    return {reader: reason for reader, reason in found.items() if reason}


async def watch(
    name: str,
    info: Callable[[], Awaitable[js_api.StreamInfo | None]],
    followed: Callable[[], Mapping[str, Followed]],
    replaced: Callable[[dict[str, str]], Awaitable[None]],
    every: float = 1.0,
) -> None:
    """Forever, every ``every`` seconds: tell ``replaced`` which readers follow a replaced stream.

    The stream's info comes from its leader, so another id, a purge or a last sequence
    behind a reader is what the stream is. Only "not found" must show twice in a row:
    that answer is worth a second look before a reader stops for good.
    """
    missing: set[str] = set()
    while True:
        await asyncio.sleep(every)
        # What the readers hold before the stream's state: a position read after it could
        # count events the state does not, and look ahead of the stream.
        readers = followed()
        try:
            current = await info()
        except Exception as exc:
            stop_if_cancelled()
            log.debug("stream info for the stream watch failed: %s", exc)
            continue
        found = replacements(name, current, readers)
        confirmed = {r: reason for r, reason in found.items() if current is not None or r in missing}
        missing = set(found) if current is None else set()
        if confirmed:
            await replaced(confirmed)
