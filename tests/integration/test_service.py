"""Every command over NATS, end to end into JetStream, through the service's own subscriptions."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from nats.js import JetStreamContext

from contracts import subjects
from contracts.commands import COMMANDS
from contracts.replies import REPLY_DATA
from contracts.types import month_of
from inmail.app import InMailService
from inmail.natsserver import EmbeddedNatsServer
from tests.conftest import secured_server
from tests.integration.clock import ShiftedClock, at_any_time
from tests.integration.service_env import (
    Client,
    client_for,
    delete_service_streams,
    new_id,
    running_service,
    settings_for,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNatsServer]:
    nats = secured_server(tmp_path_factory.mktemp("svc-nats"))
    nats.start()
    yield nats
    nats.stop()


@pytest.fixture
async def service(
    server: EmbeddedNatsServer, tmp_path: Path, clock: ShiftedClock
) -> AsyncIterator[InMailService]:
    async with running_service(settings_for(server, tmp_path, clock=clock)) as svc:
        yield svc
    # Each test starts from empty streams.
    await delete_service_streams(server)


@pytest.fixture
async def client(server: EmbeddedNatsServer, service: InMailService) -> AsyncIterator[Client]:
    async with client_for(server) as c:
        yield c


@at_any_time
async def test_every_command_answers_with_the_contract_envelope(client: Client, clock: ShiftedClock) -> None:
    answered: dict[str, dict[str, Any]] = {}

    async def ok(name: str, **fields: Any) -> dict[str, Any]:
        answered[name] = await client.ok(name, **fields)
        return answered[name]

    sender = await client.register("recruiter")
    recipient = await client.register()
    other = new_id("m")
    await ok("RegisterMember", member_id=other, display_name="O", email="o@example.com", tier="free")
    assert (await ok("ChangeTier", member_id=other, tier="premium_business"))["data"]["tier"] == (
        "premium_business"
    )
    await ok("UpdatePreferences", member_id=recipient, open_profile=True)
    await ok("ConnectMembers", member_id=sender, other_member_id=other)
    # The service's current month, already refreshed at registration: answered, nothing new.
    await ok("RefreshCredits", member_id=sender, month=month_of(clock()))
    sent = await ok("SendInMail", sender_id=sender, recipient_id=other, subject="Hi", body="Role?")
    assert sent["data"] == {
        "inmail_id": sent["data"]["inmail_id"],
        "charged": False,
        "free_reason": "connection",
        "credits_left": 150,
        "scheduled_for": None,
    }
    bulk = await ok(
        "SendBulkInMail", sender_id=sender, recipient_ids=[recipient, other], subject="Hi", body="Roles"
    )
    assert len(bulk["data"]["inmail_ids"]) == 2
    inmail_id = bulk["data"]["inmail_ids"][0]
    read = await ok("MarkInMailRead", inmail_id=inmail_id, member_id=recipient)
    await ok("AcknowledgeInMail", inmail_id=inmail_id, member_id=recipient)
    declined = await ok("DeclineInMail", inmail_id=inmail_id, member_id=recipient, reason="busy")
    replied = await ok("RecordReply", inmail_id=inmail_id, member_id=recipient, body="Actually yes")
    assert declined["data"]["refunded"] is False  # Open Profile: the InMail was free
    assert replied["data"]["refunded"] is False
    later = (clock() + timedelta(days=1)).isoformat()
    scheduled = await client.ok("SendInMail", sender_id=sender, recipient_id=recipient, subject="Hi",
                                body="Later", send_at=later)
    cancelled = await ok("CancelScheduledInMail", inmail_id=scheduled["data"]["inmail_id"], member_id=sender)
    assert cancelled["data"]["refunded"] is False  # Open Profile: it was free
    follow_up = {"subject": "Again", "body": "Any thoughts?"}
    planned = await client.ok("SendInMail", sender_id=sender, recipient_id=recipient, subject="Hi",
                              body="Role", automated_follow_up=follow_up)
    await ok("CancelFollowUp", inmail_id=planned["data"]["inmail_id"], member_id=sender)
    assert (await ok("RunDue", until=later))["data"] == {"performed": 0, "outcomes": {}}
    await ok("BlockMember", member_id=recipient, blocked_member_id=sender)
    again = await client.ok("MarkInMailRead", inmail_id=inmail_id, member_id=recipient)
    assert again["seq"] == read["seq"]
    await ok("EraseMember", member_id=other)
    for reply in (sent, bulk, read, declined, replied):
        assert isinstance(reply["seq"], int) and reply["seq"] > 0
    # Each reply's data is what the contract (and the reference page) says it is.
    assert set(answered) == {command.__name__ for command in COMMANDS}
    for command in COMMANDS:
        data = answered[command.__name__]["data"]
        assert set(data) == set(REPLY_DATA[command].__struct_fields__), command.__name__
        msgspec.convert(data, REPLY_DATA[command])


async def test_refusals_carry_the_contract_error_codes_and_write_nothing(
    server: EmbeddedNatsServer, client: Client
) -> None:
    free = await client.register("free")
    paid = await client.register()
    opted_out = await client.register(inmail_opt_out=True)
    cases = {
        "UNKNOWN_MEMBER": ("SendInMail", {"sender_id": new_id("nobody"), "recipient_id": paid}),
        "SELF_MESSAGE": ("SendInMail", {"sender_id": paid, "recipient_id": paid}),
        "TIER_NOT_ALLOWED": ("SendInMail", {"sender_id": free, "recipient_id": paid}),
        "RECIPIENT_OPTED_OUT": ("SendInMail", {"sender_id": paid, "recipient_id": opted_out}),
        "SUBJECT_TOO_LONG": ("SendInMail", {"sender_id": paid, "recipient_id": free, "subject": "x" * 201}),
        "BODY_TOO_LONG": ("SendInMail", {"sender_id": paid, "recipient_id": free, "body": "é" * 1901}),
        "EMPTY_MESSAGE": ("SendInMail", {"sender_id": paid, "recipient_id": free, "body": "   "}),
        "INVALID_FOLLOW_UP": (
            "SendInMail",
            {"sender_id": paid, "recipient_id": free, "follow_up_of": "1-unknown"},
        ),
        "UNKNOWN_INMAIL": ("MarkInMailRead", {"inmail_id": "zz-nothing", "member_id": paid}),
        "MEMBER_EXISTS": (
            "RegisterMember",
            {"member_id": paid, "display_name": "X", "email": "x@y.z", "tier": "free"},
        ),
        "INVALID_COMMAND": ("SendInMail", {"sender_id": "bad id!", "recipient_id": paid}),
    }
    async with client_for(server, "admin") as other:
        js = other.nc.jetstream()
        before = (await js.stream_info(subjects.EVENTS_STREAM)).state.last_seq
        for code, (name, fields) in cases.items():
            if name == "SendInMail":
                fields = {"subject": "Hello", "body": "A role", **fields}
            reply = await client.command(name, **fields)
            assert reply["ok"] is False and reply["error"]["code"] == code, (code, reply)
            assert reply["error"]["message"]
        assert (await js.stream_info(subjects.EVENTS_STREAM)).state.last_seq == before


async def test_a_response_refunds_a_charged_inmail_once_over_nats(client: Client) -> None:
    sender, recipient = await client.register(), await client.register()
    sent = await client.ok("SendInMail", sender_id=sender, recipient_id=recipient, subject="Hi", body="Role")
    assert sent["data"]["charged"] is True and sent["data"]["credits_left"] == 4
    inmail_id = sent["data"]["inmail_id"]
    declined = await client.ok("DeclineInMail", inmail_id=inmail_id, member_id=recipient)
    replied = await client.ok("RecordReply", inmail_id=inmail_id, member_id=recipient, body="Well, ok")
    assert (declined["data"]["refunded"], replied["data"]["refunded"]) == (True, False)
    assert (await client.command("RecordReply", inmail_id=inmail_id, member_id=recipient, body="x"))["error"][
        "code"
    ] == "ALREADY_RESPONDED"
    assert (await client.command("MarkInMailRead", inmail_id=inmail_id, member_id=sender))["error"][
        "code"
    ] == "NOT_RECIPIENT"


async def test_the_same_command_id_returns_the_original_reply_across_a_restart(
    server: EmbeddedNatsServer, client: Client, service: InMailService, tmp_path: Path
) -> None:
    sender, recipient = await client.register(), await client.register()
    fields = {"command_id": new_id("once"), "sender_id": sender, "recipient_id": recipient}
    original = await client.ok("SendInMail", subject="Hi", body="Role", **fields)
    await service.stop()
    async with running_service(settings_for(server, tmp_path / "second")):
        repeated = await client.ok("SendInMail", subject="Hi", body="Role", **fields)
    await service.start()
    assert repeated == original


BAD_BODIES: list[bytes] = [
    b"",
    b"not json",
    b"\xff\xfe\x00garbage",
    b"[]",
    b"42",
    b'"text"',
    b"{",
    b'{"command_id": 5}',
    b'{"command_id": "x", "unknown_field": true}',
    b'{"command_id": "' + b"x" * 65 + b'"}',
    b'{"command_id": "ok", "member_id": {"nested": 1}}',
]


@pytest.mark.parametrize("command", [c.__name__ for c in COMMANDS])
async def test_bad_input_on_every_command_subject_is_refused_and_the_service_keeps_answering(
    client: Client, command: str
) -> None:
    rng = random.Random(command)
    bodies = [*BAD_BODIES, os.urandom(64), bytes(rng.getrandbits(8) for _ in range(512))]
    bodies.append(b'{"command_id": "big", "body": "' + b"a" * (1024 * 1024 - 64) + b'"}')
    for body in bodies:
        reply = await client.raw(subjects.command(command), body)
        assert reply["ok"] is False
        assert reply["error"]["code"] == "INVALID_COMMAND", (body[:60], reply)
    assert (await client.query("Health"))["ok"] is True


async def test_a_command_without_a_reply_subject_is_ignored(client: Client) -> None:
    # JetStream can be made to publish events onto any subject: only requests are commands.
    member_id = new_id("m")
    fields = {"member_id": member_id, "display_name": "M", "email": "m@example.com", "tier": "free"}
    await client.nc.publish(
        subjects.command("RegisterMember"), msgspec.json.encode({"command_id": new_id("cmd"), **fields})
    )
    # Had it been taken for a command, this one (handed over after it) would find the member.
    registered = await client.command("RegisterMember", **fields)
    assert registered["ok"] is True, registered


async def test_a_one_megabyte_body_in_a_valid_command_is_body_too_long(client: Client) -> None:
    sender, recipient = await client.register(), await client.register()
    reply = await client.command(
        "SendInMail", sender_id=sender, recipient_id=recipient, subject="Hi", body="a" * (1024 * 1000)
    )
    assert reply["error"]["code"] == "BODY_TOO_LONG"


async def test_health_answers_with_stream_and_projection_positions(client: Client) -> None:
    await client.register()
    health = await client.query("Health")
    assert health["ok"] is True
    assert health["data"]["status"] in ("ok", "starting")
    assert health["data"]["stream_seq"] >= 1
    assert isinstance(health["data"]["projections"], dict) and health["data"]["projections"]


async def test_two_service_instances_share_the_work_and_stay_correct(
    server: EmbeddedNatsServer, client: Client, tmp_path: Path
) -> None:
    sender = await client.register("premium_business")
    recipients = [await client.register() for _ in range(20)]
    async with running_service(settings_for(server, tmp_path / "second", projections=False)):
        replies = await asyncio.gather(
            *(
                client.command("SendInMail", sender_id=sender, recipient_id=r, subject="Hi", body="Role")
                for r in recipients
            )
        )
    accepted = [r for r in replies if r["ok"]]
    assert len(accepted) == 15
    assert {r["error"]["code"] for r in replies if not r["ok"]} == {"INSUFFICIENT_CREDITS"}
    assert sorted(r["data"]["credits_left"] for r in accepted) == list(range(15))
    assert len({r["seq"] for r in accepted}) == 15


async def test_100_concurrent_sends_over_nats_from_a_sender_with_10_credits_accept_exactly_10(
    client: Client,
) -> None:
    sender = await client.register("premium_business")
    for _ in range(5):
        recipient = await client.register()
        await client.ok("SendInMail", sender_id=sender, recipient_id=recipient, subject="Hi", body="Role")
    recipients = [await client.register() for _ in range(10)]
    replies = await asyncio.gather(
        *(
            client.command(
                "SendInMail", sender_id=sender, recipient_id=recipients[i % 10], subject="Hi", body="Role"
            )
            for i in range(100)
        )
    )
    accepted = [r for r in replies if r["ok"]]
    assert len(accepted) == 10
    assert [r["error"]["code"] for r in replies if not r["ok"]] == ["INSUFFICIENT_CREDITS"] * 90
    balance = await client.query("CreditBalance", member_id=sender, min_seq=max(r["seq"] for r in accepted))
    assert balance["data"]["balance"] == 0 and balance["data"]["spent"] == 15


@at_any_time
async def test_invalid_time_and_blocks_are_refused_over_nats(client: Client) -> None:
    # Every time here is data: the members join at a fixed time too, not at the wall clock's.
    joined = "2026-11-30T10:00:00Z"
    sender = await client.register(occurred_at=joined)
    recipient = await client.register(occurred_at=joined)
    await client.ok(
        "SendInMail",
        sender_id=sender,
        recipient_id=recipient,
        subject="Hi",
        body="Role",
        occurred_at="2026-12-01T10:00:00Z",
    )
    earlier = await client.command(
        "SendInMail",
        sender_id=sender,
        recipient_id=recipient,
        subject="Hi",
        body="Role",
        occurred_at="2026-12-01T09:00:00Z",
    )
    assert earlier["error"]["code"] == "INVALID_TIME"
    await client.ok(
        "BlockMember", member_id=recipient, blocked_member_id=sender, occurred_at="2026-12-02T00:00:00Z"
    )
    blocked = await client.command(
        "SendInMail",
        sender_id=sender,
        recipient_id=recipient,
        subject="Hi",
        body="Role",
        occurred_at="2026-12-03T00:00:00Z",
    )
    assert blocked["error"]["code"] == "BLOCKED"


async def test_no_query_answer_carries_an_email(client: Client) -> None:
    sender, recipient = await client.register("recruiter"), await client.register()
    sent = await client.ok("SendInMail", sender_id=sender, recipient_id=recipient, subject="Hi", body="Role")
    replied = await client.ok(
        "RecordReply", inmail_id=sent["data"]["inmail_id"], member_id=recipient, body="Yes"
    )
    seq = replied["seq"]
    answers = [
        await client.query("Inbox", member_id=member, box=box, min_seq=seq)
        for member in (sender, recipient)
        for box in ("received", "sent")
    ]
    answers += [await client.query("CreditLedger", member_id=sender, min_seq=seq)]
    answers += [await client.query("CreditBalance", member_id=m, min_seq=seq) for m in (sender, recipient)]
    answers += [
        await client.query("ResponseStats", sender_id=sender, min_seq=seq),
        await client.query("Health"),
    ]
    assert all(answer["ok"] for answer in answers)
    assert all("@example.com" not in str(answer) for answer in answers)
    assert any(sender in str(answer) for answer in answers)


async def test_commands_answer_unavailable_when_the_event_stream_cannot_be_reached(
    server: EmbeddedNatsServer, client: Client
) -> None:
    sender, recipient = await client.register(), await client.register()
    async with client_for(server, "admin") as admin:
        await _commands_without_the_stream(client, admin.nc.jetstream(), sender, recipient)


async def _commands_without_the_stream(
    client: Client, js: JetStreamContext, sender: str, recipient: str
) -> None:
    config = (await js.stream_info(subjects.EVENTS_STREAM)).config
    # Without the stream, reads and appends get "no responders": nothing can be recorded.
    await js.delete_stream(subjects.EVENTS_STREAM)
    try:
        replies = [
            await client.command(
                "SendInMail", sender_id=sender, recipient_id=recipient, subject="Hi", body="x"
            ),
            await client.command("ConnectMembers", member_id=sender, other_member_id=recipient),
            await client.command(
                "RegisterMember", member_id=new_id("m"), display_name="N", email="n@e.io", tier="free"
            ),
        ]
    finally:
        await js.add_stream(config)
    for reply in replies:
        assert reply["ok"] is False and reply["error"]["code"] == "UNAVAILABLE", reply
        assert "same command_id" in reply["error"]["message"]
    assert (await js.stream_info(subjects.EVENTS_STREAM)).state.messages == 0
