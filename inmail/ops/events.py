"""``inmail events``: stored events as JSON lines, all of them or one member's."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TextIO

import msgspec

from contracts import subjects
from contracts.types import ID_PATTERN
from inmail.ops.client import OperatorError, check_from_seq, connected, events_store, stream_info

_MEMBER_ID = re.compile(ID_PATTERN)


async def events(
    nats_url: str,
    member: str | None = None,
    from_seq: int = 1,
    follow: bool = False,
    *,
    out: TextIO | None = None,
    stream: str = subjects.EVENTS_STREAM,
    creds: Path | None = None,
) -> int:
    """Print events as JSON lines ``{"seq", "subject", "event"}``, the event exactly as stored.

    With ``member``: the events on that member's subject and those naming them as
    recipient, connection or blocked member. With ``follow``: keep printing new ones.
    """
    out = out or sys.stdout
    check_from_seq(from_seq)
    if member is not None and not _MEMBER_ID.match(member):
        raise OperatorError(f"--member {member!r} is not a member id (1-64 of A-Z a-z 0-9 _ -)")
    own_subject = subjects.member_events(member) if member else ""
    async with connected(nats_url, creds) as nc:
        last = (await stream_info(nc, stream)).state.last_seq
        if not follow and last < from_seq:
            return 0
        store = events_store(nc, stream)
        async for message in store.follow(from_seq, until=None if follow else last):
            if member and message.subject != own_subject and not _names(message.data, member):
                continue
            subject = msgspec.json.encode(message.subject).decode()
            out.write(f'{{"seq":{message.seq},"subject":{subject},"event":{message.data.decode()}}}\n')
            if follow:
                out.flush()
    return 0


class _Mentions(msgspec.Struct):
    recipient_id: str | None = None
    other_member_id: str | None = None
    blocked_member_id: str | None = None


_mentions = msgspec.json.Decoder(_Mentions)


def _names(data: bytes, member: str) -> bool:
    try:
        mentions = _mentions.decode(data)
    except msgspec.DecodeError:
        return False
    return member in (mentions.recipient_id, mentions.other_member_id, mentions.blocked_member_id)
