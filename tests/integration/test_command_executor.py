"""The command side against a real nats-server: concurrency, idempotency, refunds, time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from contracts import commands as c
from contracts.replies import CommandOk, Failure
from inmail.natsserver import EmbeddedNatsServer
from tests.integration.clock import ShiftedClock, at_any_time
from tests.integration.commands_env import Env, command_env, new_id

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
async def env(nats_server: EmbeddedNatsServer, clock: ShiftedClock) -> AsyncIterator[Env]:
    async with command_env(nats_server, clock) as environment:
        yield environment


def send(sender: str, recipient: str, **kw) -> c.SendInMail:
    return c.SendInMail(
        command_id=new_id("send"),
        sender_id=sender,
        recipient_id=recipient,
        subject="Role",
        body="Hello",
        **kw,
    )


async def spend(env: Env, sender: str, count: int) -> None:
    for _ in range(count):
        await env.ok(send(sender, await env.register()))


def codes(replies: list[CommandOk | Failure]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for reply in replies:
        key = "ok" if isinstance(reply, CommandOk) else reply.error.code
        counted[key] = counted.get(key, 0) + 1
    return counted


async def test_100_concurrent_sends_from_a_sender_with_10_credits_accept_exactly_10(env: Env) -> None:
    sender = await env.register(tier="premium_business")
    await spend(env, sender, 5)
    recipients = [await env.register() for _ in range(10)]
    replies = await asyncio.gather(*(env.run(send(sender, recipients[i % 10])) for i in range(100)))
    assert codes(replies) == {"ok": 10, "INSUFFICIENT_CREDITS": 90}
    events = await env.events_of(sender)
    assert sum(e["type"] == "InMailSent" for e in events) == 15
    assert [r.data.credits_left for r in replies if isinstance(r, CommandOk)] == list(range(9, -1, -1))


async def test_two_instances_on_one_stream_never_spend_a_credit_twice(env: Env) -> None:
    sender = await env.register(tier="premium_business")
    await spend(env, sender, 5)
    recipient = await env.register()
    first, second = env.new_executor(), env.new_executor()
    # Both instances warm their caches first, so their states go stale as the other writes.
    await env.run(send(sender, recipient), first)
    await env.run(send(sender, recipient), second)
    replies = await asyncio.gather(
        *(env.run(send(sender, recipient), first if i % 2 else second) for i in range(60))
    )
    assert codes(replies) == {"ok": 8, "INSUFFICIENT_CREDITS": 52}
    balance_events = [e for e in await env.events_of(sender) if e["type"] == "InMailSent"]
    assert len(balance_events) == 15


async def test_a_recipient_changed_by_another_instance_is_read_fresh(env: Env) -> None:
    sender, recipient = await env.register(), await env.register()
    first, second = env.new_executor(), env.new_executor()
    # The first instance caches the recipient's state; the second changes it behind its back.
    assert isinstance(await env.run(send(sender, recipient), first), CommandOk)
    opted_out = c.UpdatePreferences(command_id=new_id("p"), member_id=recipient, inmail_opt_out=True)
    assert isinstance(await env.run(opted_out, second), CommandOk)

    refused = await env.run(send(sender, recipient), first)

    assert isinstance(refused, Failure) and refused.error.code == "RECIPIENT_OPTED_OUT"


async def test_a_refusal_on_a_stale_state_catches_up_and_decides_again(env: Env) -> None:
    sender = await env.register(tier="premium_career")
    recipients = [await env.register() for _ in range(5)]
    first, second = env.new_executor(), env.new_executor()
    sent = [await env.run(send(sender, r), first) for r in recipients]
    assert all(isinstance(reply, CommandOk) for reply in sent)
    # The first instance now holds the sender at 0 credits; a reply through the second
    # refunds one, which the first does not know about.
    inmail_id = sent[0].data.inmail_id  # type: ignore[union-attr]
    reply = c.RecordReply(command_id=new_id("r"), inmail_id=inmail_id, member_id=recipients[0], body="Hi")
    assert isinstance(await env.run(reply, second), CommandOk)

    accepted = await env.run(send(sender, await env.register()), first)

    assert isinstance(accepted, CommandOk) and accepted.data.credits_left == 0


async def test_a_repeated_command_id_returns_the_original_reply_and_writes_nothing(env: Env) -> None:
    sender, recipient = await env.register(), await env.register()
    command = send(sender, recipient)
    original = await env.ok(command)
    await env.ok(send(sender, recipient))
    before = await env.store.last_seq()
    again = await env.ok(command)
    restarted = await env.run(command, env.new_executor())
    assert again == original == restarted
    assert await env.store.last_seq() == before


async def test_a_refused_command_can_be_retried_with_the_same_command_id(env: Env) -> None:
    sender = await env.register(tier="premium_career")
    recipients = [await env.register() for _ in range(5)]
    sent = [await env.ok(send(sender, r)) for r in recipients]
    command = send(sender, await env.register())
    refused = await env.run(command)
    assert isinstance(refused, Failure) and refused.error.code == "INSUFFICIENT_CREDITS"
    await env.ok(
        c.RecordReply(
            command_id=new_id("r"), inmail_id=sent[0].data.inmail_id, member_id=recipients[0], body="Thanks"
        )
    )
    accepted = await env.run(command)
    assert isinstance(accepted, CommandOk) and accepted.data.credits_left == 0


async def test_reply_and_decline_racing_on_two_instances_refund_exactly_once(env: Env) -> None:
    sender, recipient = await env.register(), await env.register()
    sent = await env.ok(send(sender, recipient))
    inmail_id = sent.data.inmail_id
    first, second = env.new_executor(), env.new_executor()
    reply = c.RecordReply(command_id=new_id("r"), inmail_id=inmail_id, member_id=recipient, body="Yes")
    decline = c.DeclineInMail(command_id=new_id("d"), inmail_id=inmail_id, member_id=recipient)
    results = await asyncio.gather(env.run(reply, first), env.run(decline, second))
    refunds = [e for e in await env.events_of(sender) if e["type"] == "CreditRefunded"]
    assert len(refunds) == 1
    refunded = [r.data.refunded for r in results if isinstance(r, CommandOk)]
    assert refunded.count(True) == 1


async def test_commands_naming_an_unknown_inmail_are_refused(env: Env) -> None:
    member = await env.register()
    for inmail_id in ["nothing", "zzzzzzzzz-abc", "1-abc", "-abc"]:
        reply = await env.run(c.MarkInMailRead(command_id=new_id("x"), inmail_id=inmail_id, member_id=member))
        assert isinstance(reply, Failure) and reply.error.code == "UNKNOWN_INMAIL", inmail_id


@at_any_time
async def test_trusted_client_time_is_honoured_and_earlier_times_are_refused(env: Env) -> None:
    sender = await env.register(occurred_at=T0)
    recipient = await env.register(occurred_at=T0)
    ok = await env.ok(send(sender, recipient, occurred_at=T0 + timedelta(days=1)))
    assert ok.seq > 0
    late = await env.run(send(sender, recipient, occurred_at=T0 + timedelta(hours=1)))
    assert isinstance(late, Failure) and late.error.code == "INVALID_TIME"


@at_any_time
async def test_without_trusted_time_the_server_clock_decides(env: Env, clock: ShiftedClock) -> None:
    executor = env.new_executor(trust_client_time=False)
    member_id = new_id("m")
    before = clock()
    reply = await env.run(
        c.RegisterMember(
            command_id=new_id("reg"),
            member_id=member_id,
            display_name="A",
            email="a@b.c",
            tier="free",
            occurred_at=datetime(2001, 1, 1, tzinfo=UTC),
        ),
        executor,
    )
    assert isinstance(reply, CommandOk)
    [registered] = await env.events_of(member_id)
    assert before <= datetime.fromisoformat(registered["occurred_at"]) <= clock()


async def test_registration_keeps_the_email_out_of_the_events_stream(env: Env) -> None:
    member_id = await env.register()
    raw = [m.data for m in await env.store.read_subject(f"inmail.evt.member.{member_id}")]
    assert all(b"@example.com" not in data for data in raw)
    [registered] = await env.events_of(member_id)
    assert await env.contacts.email_of(member_id, registered["command_id"]) == f"{member_id}@example.com"
