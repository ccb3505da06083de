"""The 1.1 sentences of the contract's section 1, over NATS: a reused command_id, a time before a
registration, and refusals that say what is wrong in words."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from contracts import subjects
from inmail.natsserver import EmbeddedNatsServer, NatsServerSettings
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
    nats = EmbeddedNatsServer(NatsServerSettings(data_dir=tmp_path_factory.mktemp("rules-nats"), port=0))
    nats.start()
    yield nats
    nats.stop()


@pytest.fixture
async def client(server: EmbeddedNatsServer, tmp_path: Path) -> AsyncIterator[Client]:
    async with running_service(settings_for(server, tmp_path)), client_for(server, "admin") as c:
        yield c
    await delete_service_streams(server)


async def last_seq(client: Client) -> int:
    return int((await client.nc.jetstream().stream_info(subjects.EVENTS_STREAM)).state.last_seq)


async def test_a_command_id_sent_again_with_another_payload_is_a_conflict_and_writes_nothing(
    client: Client,
) -> None:
    alice, bob = await client.register("recruiter"), await client.register()
    send = {
        "command_id": new_id("c"),
        "sender_id": alice,
        "recipient_id": bob,
        "subject": "Hi",
        "body": "Role?",
    }
    first = await client.ok("SendInMail", **send)
    before = await last_seq(client)
    conflict = await client.command("SendInMail", **(send | {"body": "Another role?"}))
    retry = await client.ok("SendInMail", **(send | {"occurred_at": "2027-01-01T00:00:00Z"}))
    assert conflict["ok"] is False and conflict["error"]["code"] == "IDEMPOTENCY_CONFLICT"
    assert retry == first
    assert await last_seq(client) == before


async def test_a_time_before_a_named_members_registration_is_invalid_time(client: Client) -> None:
    alice = await client.register("recruiter", occurred_at="2026-03-01T00:00:00Z")
    late = await client.register(occurred_at="2026-03-10T00:00:00Z")
    before = await last_seq(client)
    reply = await client.command(
        "SendInMail",
        sender_id=alice,
        recipient_id=late,
        subject="Hi",
        body="Role?",
        occurred_at="2026-03-05T00:00:00Z",
    )
    assert reply["ok"] is False and reply["error"]["code"] == "INVALID_TIME", reply
    assert f"registration of member {late}" in reply["error"]["message"]
    assert await last_seq(client) == before


async def test_refusals_of_commands_and_queries_say_in_words_what_is_wrong(client: Client) -> None:
    command = await client.command(
        "RegisterMember", member_id="bad id!", display_name="X", email="x@y.z", tier="free"
    )
    query = await client.query("Inbox", member_id="alice", box="received", limit=500)
    assert command["error"] == {
        "code": "INVALID_COMMAND",
        "message": "member_id must be an id: 1 to 64 characters, each a letter, a digit, '_' or '-'",
    }
    assert query["error"] == {
        "code": "INVALID_QUERY",
        "message": "invalid Inbox query: limit must be a whole number from 1 to 200",
    }
