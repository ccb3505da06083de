"""The executor's loop around the decider: decoding, routing, stale states, a failing store, the clock.

Two executors over one in-memory store stand for two service instances: each
caches states the other's writes make stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import msgspec
import pytest

from contracts.commands import (
    AnyCommand,
    ChangeTier,
    MarkInMailRead,
    RecordReply,
    UpdatePreferences,
)
from contracts.replies import CommandOk, Failure
from eventstore import (
    Appended,
    AppendRejected,
    InMemoryEventStore,
    NewMessage,
    OutcomeUnknown,
    StoreUnavailable,
    WrongExpectedVersion,
)
from services.executor import Clock, CommandExecutor, CommandSettings
from services.repository import MemberRepository
from tests.unit.scenario import T0, InMemoryContacts, register, send


class FailingStore(InMemoryEventStore):
    """An in-memory store whose appends fail with ``error`` while ``failures`` lasts."""

    def __init__(self) -> None:
        super().__init__()
        self.error: Exception = StoreUnavailable("event store unreachable")
        self.failures = 0

    async def append(
        self, subject: str, messages: Sequence[NewMessage], expected_version: int
    ) -> Appended:
        if self.failures > 0:
            self.failures -= 1
            raise self.error
        return await super().append(subject, messages, expected_version)


def executor(
    store: InMemoryEventStore, *, trust_client_time: bool = True, clock: Clock = lambda: T0, **settings
) -> CommandExecutor:
    return CommandExecutor(
        MemberRepository(store),
        InMemoryContacts(),
        CommandSettings(trust_client_time=trust_client_time, **settings),
        clock=clock,
    )


async def ok(on: CommandExecutor, command: AnyCommand) -> CommandOk:
    reply = await on.execute(command)
    assert isinstance(reply, CommandOk), reply
    return reply


async def refused(on: CommandExecutor, command: AnyCommand) -> Failure:
    reply = await on.execute(command)
    assert isinstance(reply, Failure), reply
    return reply


@pytest.fixture
def store() -> FailingStore:
    return FailingStore()


@pytest.fixture
async def members(store: FailingStore) -> CommandExecutor:
    """alice and bob, registered through an executor of their own."""
    first = executor(store)
    for member_id in ("alice", "bob"):
        await ok(first, register(member_id, occurred_at=T0))
    return first


# Decoding ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("SendInMail", b"not json", "body is not valid JSON"),
        ("SendInMail", b"[]", "body must be a JSON object"),
        ("SendInMail", b'{"command_id": "c"}', "sender_id is required"),
        ("Teleport", b"{}", "unknown command Teleport"),
    ],
)
async def test_a_body_that_does_not_decode_is_refused_as_invalid_command(store, name, body, message):
    reply = msgspec.json.decode(await executor(store).handle_raw(name, body))
    assert reply["ok"] is False and reply["error"]["code"] == "INVALID_COMMAND"
    assert message in reply["error"]["message"]


async def test_a_decoded_command_is_executed_and_answered_as_an_envelope(store):
    body = msgspec.json.encode(register("alice", occurred_at=T0))
    reply = msgspec.json.decode(await executor(store).handle_raw("RegisterMember", body))
    assert reply == {"ok": True, "data": {"member_id": "alice", "credits_left": 5}, "seq": 1}


# Routing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("inmail_id", ["nothing", "-abc", "zzzzzzzzz-abc", "1-abc", "3-abc"])
async def test_a_command_naming_no_inmail_of_its_sender_is_refused_as_unknown_inmail(members, inmail_id):
    command = MarkInMailRead(command_id="r", inmail_id=inmail_id, member_id="bob")
    assert (await refused(members, command)).error.code == "UNKNOWN_INMAIL"


# Stale states ----------------------------------------------------------------------------------


async def test_a_state_gone_stale_is_caught_by_the_version_check_and_decided_again(store, members):
    other = executor(store)
    await ok(members, send("alice", "bob", "s1", occurred_at=T0))  # caches alice
    await ok(other, send("alice", "bob", "s2", occurred_at=T0))

    again = await ok(members, send("alice", "bob", "s3", occurred_at=T0))

    assert again.data.credits_left == 2
    assert await store.last_seq() == 5


async def test_a_refusal_decided_on_a_stale_state_catches_up_and_decides_again(store, members):
    sends = [await ok(members, send("alice", "bob", f"s{n}", occurred_at=T0)) for n in range(5)]
    refund = RecordReply(command_id="r", inmail_id=sends[0].data.inmail_id, member_id="bob", body="Yes")
    await ok(executor(store), msgspec.structs.replace(refund, occurred_at=T0))

    accepted = await ok(members, send("alice", "bob", "s5", occurred_at=T0))

    assert accepted.data.credits_left == 0


async def test_a_no_op_decided_on_a_stale_state_catches_up_and_decides_again(store, members):
    other = executor(store)
    opt_out = UpdatePreferences(command_id="p1", member_id="alice", inmail_opt_out=True, occurred_at=T0)
    await ok(other, opt_out)

    back = await ok(members, msgspec.structs.replace(opt_out, command_id="p2", inmail_opt_out=False))

    assert back.seq == 4


async def test_endless_contention_answers_unavailable_after_the_last_attempt(store, members):
    # A conflict that reports alice at the version the store holds: another writer, every time.
    store.error, store.failures = WrongExpectedVersion("alice", 0, 1), 3
    contended = executor(store, max_attempts=3)
    change = ChangeTier(command_id="t", member_id="alice", tier="free", occurred_at=T0)
    reply = await refused(contended, change)
    assert reply.error.code == "UNAVAILABLE" and "contention" in reply.error.message


# A failing store ---------------------------------------------------------------------------------


async def test_an_unreachable_store_answers_unavailable_and_the_same_command_can_be_retried(store, members):
    command = send("alice", "bob", "s1", occurred_at=T0)
    store.failures = 1

    reply = await refused(members, command)

    assert reply.error.code == "UNAVAILABLE" and "retry with the same command_id" in reply.error.message
    assert await store.last_seq() == 2
    assert (await ok(members, command)).data.credits_left == 4


async def test_an_append_refused_by_the_store_answers_unavailable(store, members):
    store.error, store.failures = AppendRejected(10999, "message too large"), 1
    assert (await refused(members, send("alice", "bob", occurred_at=T0))).error.code == "UNAVAILABLE"


async def test_an_append_of_unknown_outcome_is_raised_so_that_no_reply_claims_anything(store, members):
    store.error, store.failures = OutcomeUnknown("no acknowledgement"), 1
    with pytest.raises(OutcomeUnknown):
        await members.execute(send("alice", "bob", occurred_at=T0))


# The clock ------------------------------------------------------------------------------------------


async def test_without_trusted_time_the_server_clock_decides(store):
    server = executor(store, trust_client_time=False, clock=lambda: T0)
    await ok(server, register("alice", occurred_at=datetime(2001, 1, 1, tzinfo=T0.tzinfo)))
    registered = await store.get(1)
    assert registered is not None and b'"occurred_at":"2026-01-05T09:00:00Z"' in registered.data


async def test_a_server_clock_that_steps_back_never_dates_a_command_before_the_members_latest_event(store):
    now = [T0]
    server = executor(store, trust_client_time=False, clock=lambda: now[0])
    await ok(server, register("alice"))
    now[0] = T0 - timedelta(hours=1)

    await ok(server, ChangeTier(command_id="t", member_id="alice", tier="free"))

    changed = await store.get(2)
    assert changed is not None and b'"occurred_at":"2026-01-05T09:00:00Z"' in changed.data


class CountingStore(InMemoryEventStore):
    """Counts the appends refused for a stale version."""

    def __init__(self) -> None:
        super().__init__()
        self.conflicts = 0

    async def append(
        self, subject: str, messages: Sequence[NewMessage], expected_version: int
    ) -> Appended:
        try:
            return await super().append(subject, messages, expected_version)
        except WrongExpectedVersion:
            self.conflicts += 1
            raise


async def test_once_another_process_is_seen_writing_cached_states_are_checked_before_deciding():
    store = CountingStore()
    one, two = executor(store), executor(store)
    await ok(one, register("alice", tier="recruiter", occurred_at=T0))
    await ok(one, register("bob", occurred_at=T0))
    for n in range(10):
        await ok(one if n % 2 else two, send("alice", "bob", f"s{n}", occurred_at=T0))

    # Each process conflicts once, the first time its cached alice is stale; never again.
    assert store.conflicts == 2
    assert one.others_write and two.others_write


async def test_a_lone_process_never_reads_before_deciding_on_a_cached_state(store, members):
    for n in range(5):
        await ok(members, send("alice", "bob", f"s{n}", occurred_at=T0))
    assert not members.others_write
