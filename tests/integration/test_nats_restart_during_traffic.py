"""A nats-server restart (or crash) while commands flow: nothing answered ok is lost,
nothing answered UNAVAILABLE is recorded."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import msgspec
import pytest

from contracts import subjects
from eventstore import connect
from inmail.natsserver import EmbeddedNatsServer
from tests.integration.service_env import Client, client_for, new_id, running_service, settings_for


@pytest.mark.parametrize("crash", [False, True], ids=["restart", "kill-9"])
async def test_server_restart_during_traffic_never_loses_an_acknowledged_command(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path, crash: bool
) -> None:
    outcomes: dict[str, str] = {}
    ok_seqs: dict[str, int] = {}
    async with (
        running_service(settings_for(own_nats_server, tmp_path, projections=False)),
        client_for(own_nats_server) as client,
    ):
        senders = [await client.register("sales_navigator") for _ in range(8)]
        # Open Profile recipients make every InMail free: writes keep flowing through the restart.
        recipients = [await client.register(open_profile=True) for _ in range(8)]
        stop_at = time.monotonic() + 6

        async def traffic(worker: int) -> None:
            while time.monotonic() < stop_at:
                command_id = new_id(f"w{worker}")
                outcomes[command_id] = await _send(client, command_id, senders[worker], recipients[worker])
                if outcomes[command_id].startswith("ok:"):
                    ok_seqs[command_id] = int(outcomes[command_id][3:])

        workers = [asyncio.create_task(traffic(i)) for i in range(8)]
        await asyncio.sleep(1.5)
        await asyncio.to_thread(own_nats_server.restart, crash=crash)
        await asyncio.gather(*workers)

    recorded = await _recorded_commands(own_nats_server)
    answered_ok = {cid for cid, outcome in outcomes.items() if outcome.startswith("ok:")}
    unavailable = {cid for cid, outcome in outcomes.items() if outcome == "UNAVAILABLE"}
    assert answered_ok, "no traffic got through"
    assert answered_ok - set(recorded) == set(), "answered ok but lost"
    assert {cid: recorded[cid] for cid in answered_ok} == ok_seqs
    assert unavailable & set(recorded) == set(), "answered UNAVAILABLE but recorded"


async def _send(client: Client, command_id: str, sender: str, recipient: str) -> str:
    fields = {"sender_id": sender, "recipient_id": recipient, "subject": "Hi", "body": "Role"}
    body = msgspec.json.encode({"command_id": command_id, **fields})
    try:
        reply = await client.raw(subjects.command("SendInMail"), body, wait=3)
    except Exception as exc:
        await asyncio.sleep(0.05)
        return f"error:{type(exc).__name__}"
    if reply["ok"]:
        return f"ok:{reply['seq']}"
    return str(reply["error"]["code"])


async def _recorded_commands(server: EmbeddedNatsServer) -> dict[str, int]:
    """command_id -> seq of each InMailSent in the stream."""
    nc = await connect(server.url, creds=server.creds("subscriber"))
    try:
        js = nc.jetstream()
        sub = await js.subscribe(f"{subjects.EVENTS_ROOT}.>", ordered_consumer=True)
        last = (await js.stream_info(subjects.EVENTS_STREAM)).state.last_seq
        found: dict[str, int] = {}
        seen = 0
        while seen < last:
            msg = await sub.next_msg(timeout=5)
            seen = msg.metadata.sequence.stream
            event = msgspec.json.decode(msg.data)
            if event["type"] == "InMailSent":
                assert event["command_id"] not in found, "duplicate"
                found[event["command_id"]] = seen
        await sub.unsubscribe()
        return found
    finally:
        await nc.close()
