"""Skipping a quarantined event: how an operator serves its member again.

An event on a member's subject that cannot be read holds up that member's
commands (``repository.Quarantined``). ``inmail quarantine resolve SEQ --skip``
asks the service (``inmail.admin.SkipEvent``) to record, as an ``EventSkipped``
on the same subject, that the operator chose to pass over it: loading the member
and every replay then pass over it the same way. Only the service writes events,
so the CLI asks rather than appends.
"""

from __future__ import annotations

from datetime import datetime

from contracts import subjects
from contracts.admin import SkipEvent
from contracts.events import EventSkipped, decode_event, encode_event
from contracts.replies import CommandOk, SkippedData
from eventstore import NewMessage, StoreUnavailable, WrongExpectedVersion
from services.domain import errors
from services.repository import MemberRepository


async def skip_event(
    repository: MemberRepository, request: SkipEvent, now: datetime, event_id: str, *, attempts: int = 20
) -> CommandOk:
    """Record that the unreadable event at ``request.seq`` is skipped; once, however often asked."""
    store = repository.store
    message = await store.get(request.seq)
    if message is None:
        raise errors.InvalidCommand(f"there is no event at seq {request.seq}")
    if not message.subject.startswith(subjects.MEMBER_EVENTS_PREFIX):
        raise errors.InvalidCommand(
            f"the event at seq {request.seq} is on {message.subject}, not on a member's subject: "
            "it holds up no member's commands"
        )
    try:
        readable = decode_event(message.data)
    except Exception:
        pass
    else:
        raise errors.InvalidCommand(
            f"the event at seq {request.seq} is a readable {type(readable).__name__}: only an event "
            "that cannot be read can be skipped"
        )
    member_id = subjects.member_of_subject(message.subject)
    skipped = EventSkipped(
        event_id=event_id,
        occurred_at=now,
        command_id=f"skip-{request.seq}",
        member_id=member_id,
        seq=request.seq,
        reason=request.reason,
        operator=request.operator,
    )
    async with repository.lock(member_id):
        for _ in range(attempts):
            version = await store.last_seq_of(message.subject)
            recorded = await _skip_recorded(repository, message.subject, request.seq)
            if recorded is not None:
                return CommandOk(data=SkippedData(member_id, request.seq), seq=recorded)
            try:
                appended = await store.append(
                    message.subject, [NewMessage(skipped.event_id, encode_event(skipped))], version
                )
            except WrongExpectedVersion:
                continue
            return CommandOk(data=SkippedData(member_id, request.seq), seq=appended.last_seq)
    raise StoreUnavailable(f"member {member_id} kept changing while the skip was being recorded")


async def _skip_recorded(repository: MemberRepository, subject: str, seq: int) -> int | None:
    """The sequence of an ``EventSkipped`` already recorded for ``seq``, if there is one."""
    for message in await repository.store.read_subject(subject, after=seq):
        try:
            event = decode_event(message.data)
        except Exception:
            continue  # another unreadable event: not a skip
        if isinstance(event, EventSkipped) and event.seq == seq:
            return message.seq
    return None
