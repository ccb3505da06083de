"""The service answers requests only: messages without a reply subject, and JetStream deliveries
that a consumer's deliver subject aimed at a command, query or admin subject, are ignored."""

from __future__ import annotations

import asyncio
import uuid

import msgspec
import pytest
from nats.aio.msg import Msg

from contracts import subjects
from inmail.routes import is_request
from tests.security.support import Installed, connect_as, register, snapshot, verified


@pytest.mark.parametrize("reply_to", [None, "", "$JS.ACK.INMAIL_EVENTS.c.1.7.1.0.0"])
def test_what_is_not_a_request_is_not_answered(reply_to: str | None) -> None:
    # Both transports (the command subscription and the query handlers) ask this one rule.
    assert not is_request(reply_to)
    assert is_request("_INBOX.abc.1")


async def test_a_command_without_a_reply_subject_writes_nothing(installed: Installed) -> None:
    member = f"silent{uuid.uuid4().hex[:8]}"
    client = await connect_as(installed.url, installed.creds("client"))
    try:
        before = await snapshot(installed)
        subject, body = register(member)
        await client.nc.publish(subject, msgspec.json.encode(body))
        await client.nc.flush()
        await asyncio.sleep(0.5)
        assert await snapshot(installed) == before
        balance = await client.request(subjects.query("CreditBalance"), {"member_id": member})
        assert balance["error"]["code"] == "UNKNOWN_MEMBER"
    finally:
        await client.nc.close()


async def test_events_delivered_onto_command_and_query_subjects_are_ignored(installed: Installed) -> None:
    # The hole: nats-server lets a consumer deliver to any subject (documented in docs/security.md).
    # Each delivery carries the consumer's $JS.ACK reply subject; answering it would mean the
    # service handled an event as a request. An admin listens there for any answer.
    client = await connect_as(installed.url, installed.creds("client"))
    await client.request(*register(f"seed{uuid.uuid4().hex[:8]}"))
    subscriber = await connect_as(installed.url, installed.creds("subscriber"))
    admin = await connect_as(installed.url, installed.creds("admin"))
    answers: list[str] = []

    async def answered(msg: Msg) -> None:
        answers.append(msg.subject)

    await admin.nc.subscribe(f"$JS.ACK.{subjects.EVENTS_STREAM}.>", cb=answered)
    await admin.nc.flush()
    js = subscriber.nc.jetstream()
    # The service's queue groups must be named for the server to deliver to them.
    targets = [
        (subjects.command("RegisterMember"), subjects.COMMAND_QUEUE),
        (subjects.query("Health"), subjects.QUERY_QUEUE),
        (subjects.admin("Replay"), None),
    ]
    before = await snapshot(installed)
    names = []
    try:
        for target, group in targets:
            info = await js.add_consumer(
                subjects.EVENTS_STREAM, deliver_subject=target, deliver_group=group, ack_policy="explicit"
            )
            names.append(info.name)
        await asyncio.sleep(1.0)
        for name in names:
            consumer = await js.consumer_info(subjects.EVENTS_STREAM, name)
            target = consumer.config.deliver_subject or ""
            if target.startswith(subjects.COMMAND_ROOT):
                # Measured on nats-server 2.15 in operator mode: it delivers nothing to the
                # service's wildcard queue subscription (inmail.cmd.*); if a later server does,
                # the deliveries must be ignored like the others (checked below).
                continue
            assert consumer.delivered.stream_seq > 0, f"nothing was delivered to {target}"
        assert [a for a in answers if a.split(".")[3] in names] == []
        assert await snapshot(installed) == before
        assert (await client.request(subjects.query("Health"), {}))["ok"] is True
    finally:
        for name in names:
            await js.delete_consumer(subjects.EVENTS_STREAM, name)
        for session in (subscriber, client, admin):
            await session.nc.close()
    assert await verified(installed)
