"""``inmail events``: stored events as JSON lines, all of them or one member's.

Personal fields are stored sealed (contract section 11); the running service opens
them (``inmail.admin.Reveal``), a page of events at a time, or shows ``"[erased]"``
where the member's key was destroyed. When no service answers, the events are
printed as stored and one line on stderr says so.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TextIO

import msgspec

from contracts import subjects
from contracts.personal import is_sealed
from contracts.types import ID_PATTERN
from eventstore import StoredMessage
from inmail.client import InMailClient, InMailError
from inmail.ops.client import OperatorError, check_from_seq, connected, events_store, service, stream_info

PAGE = 200
"""Events opened per request to the service."""

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
    async with connected(nats_url, creds) as nc, service(nc) as client:
        last = (await stream_info(nc, stream)).state.last_seq
        if not follow and last < from_seq:
            return 0
        store = events_store(nc, stream)
        opener = _Opener(client)
        page: list[StoredMessage] = []
        async for message in store.follow(from_seq, until=None if follow else last):
            if member and message.subject != own_subject and not _names(message.data, member):
                continue
            page.append(message)
            if follow or len(page) >= PAGE:
                await _write(page, opener, out, flush=follow)
                page = []
        await _write(page, opener, out, flush=False)
    return 0


async def _write(page: list[StoredMessage], opener: _Opener, out: TextIO, *, flush: bool) -> None:
    bodies = await opener.open([message.data for message in page])
    for message, body in zip(page, bodies, strict=True):
        subject = msgspec.json.encode(message.subject).decode()
        out.write(f'{{"seq":{message.seq},"subject":{subject},"event":{body.decode()}}}\n')
    if flush:
        out.flush()


class _Opener:
    """Asks the service to open the sealed fields of a page of events."""

    def __init__(self, client: InMailClient) -> None:
        self.client = client
        self.available = True

    async def open(self, bodies: list[bytes]) -> list[bytes]:
        sealed = [b'"enc1:' in body for body in bodies]
        if not self.available or not any(sealed):
            return bodies
        decoded = [
            msgspec.json.decode(body) if seal else None for body, seal in zip(bodies, sealed, strict=True)
        ]
        tokens = list(dict.fromkeys(value for doc in decoded for value in _strings(doc) if is_sealed(value)))
        opened: dict[str, str] = {}
        try:
            for start in range(0, len(tokens), 1000):
                chunk = tokens[start : start + 1000]
                answer = await self.client.reveal(values=chunk)
                opened.update(zip(chunk, answer.values, strict=True))
        except InMailError as exc:
            self.available = False
            sys.stderr.write(
                f"inmail events: personal fields are printed sealed, as stored: the service did not open "
                f"them ({exc.code}: {exc.message})\n"
            )
            return bodies
        return [
            msgspec.json.encode(_replaced(doc, opened)) if doc is not None else body
            for body, doc in zip(bodies, decoded, strict=True)
        ]


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def _replaced(value: object, opened: dict[str, str]) -> object:
    if isinstance(value, str):
        return opened.get(value, value)
    if isinstance(value, dict):
        return {key: _replaced(item, opened) for key, item in value.items()}
    if isinstance(value, list):
        return [_replaced(item, opened) for item in value]
    return value


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
