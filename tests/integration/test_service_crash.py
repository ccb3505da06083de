"""The service killed (SIGKILL) while replies and declines race for the same InMails:
after a restart and the clients' retries, every response is recorded once and every
charged InMail refunded exactly once."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec

from contracts import subjects
from inmail.natsserver import EmbeddedNatsServer
from tests.integration.service_env import Client, client_for, new_id, server_key_dir


def start_service(server: EmbeddedNatsServer, data_dir: Path) -> subprocess.Popen[str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "inmail.cli", "serve", "--nats", server.url, "--data-dir", str(data_dir)]
    command += ["--creds", str(server.creds("service")), "--key-dir", str(server_key_dir(server))]
    with (data_dir / "service.log").open("w") as log:
        process = subprocess.Popen(
            [*command, "--trust-client-time"], stdout=subprocess.PIPE, stderr=log, text=True
        )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert "ready" in line, (data_dir / "service.log").read_text()
    return process


async def until_answered(client: Client, name: str, fields: dict[str, Any]) -> dict[str, Any]:
    for _ in range(100):
        try:
            reply = await client.raw(subjects.command(name), msgspec.json.encode(fields), wait=2)
        except Exception:
            await asyncio.sleep(0.1)
            continue
        if reply["ok"] or reply["error"]["code"] != "UNAVAILABLE":
            return reply
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name} never answered")


async def test_killing_the_service_between_any_two_steps_never_loses_or_doubles_a_refund(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    service = start_service(own_nats_server, tmp_path / "first")
    try:
        async with client_for(own_nats_server) as client:
            sender = await client.register("recruiter")
            recipients = [await client.register() for _ in range(40)]
            inmails = [
                (await client.ok("SendInMail", sender_id=sender, recipient_id=r, subject="Hi", body="Role"))[
                    "data"
                ]["inmail_id"]
                for r in recipients
            ]
            responses = [
                ("RecordReply", {"command_id": new_id("re"), "inmail_id": i, "member_id": r, "body": "Yes"})
                for i, r in zip(inmails, recipients, strict=True)
            ] + [
                ("DeclineInMail", {"command_id": new_id("de"), "inmail_id": i, "member_id": r})
                for i, r in zip(inmails, recipients, strict=True)
            ]
            in_flight = [
                asyncio.create_task(client.raw(subjects.command(name), msgspec.json.encode(f), wait=2))
                for name, f in responses
            ]
            await asyncio.sleep(0.05)
            service.send_signal(signal.SIGKILL)
            service.wait()
            outcomes = await asyncio.gather(*in_flight, return_exceptions=True)
            assert any(isinstance(o, Exception) for o in outcomes), "the kill came too late to matter"

            service = start_service(own_nats_server, tmp_path / "second")
            answers = [await until_answered(client, name, fields) for name, fields in responses]
            for answer in answers:
                assert answer["ok"] or answer["error"]["code"] == "ALREADY_RESPONDED", answer

            last = max(a["seq"] for a in answers if a["ok"])
            balance = await client.query("CreditBalance", member_id=sender, min_seq=last)
            assert balance["data"]["spent"] == 40
            assert balance["data"]["refunded"] == 40
            assert balance["data"]["balance"] == 150
    finally:
        service.kill()
        service.wait()

    async with client_for(own_nats_server, "subscriber") as reader:
        events = await _events_of(reader, sender)
    refunds = Counter(e["inmail_id"] for e in events if e["type"] == "CreditRefunded")
    assert sorted(refunds) == sorted(inmails) and set(refunds.values()) == {1}
    by_command = Counter(e["command_id"] for e in events if e["type"] in ("InMailReplied", "InMailDeclined"))
    assert set(by_command.values()) == {1}, "a response recorded twice"
    replies = Counter(e["inmail_id"] for e in events if e["type"] == "InMailReplied")
    assert set(replies.values()) == {1}


async def _events_of(client: Client, member_id: str) -> list[dict[str, Any]]:
    js = client.nc.jetstream()
    subject = subjects.member_events(member_id)
    sub = await js.subscribe(subject, ordered_consumer=True)
    last = (await js.stream_info(subjects.EVENTS_STREAM, subjects_filter=subject)).state.subjects or {}
    total = last.get(subject, 0)
    events = [msgspec.json.decode((await sub.next_msg(timeout=5)).data) for _ in range(total)]
    await sub.unsubscribe()
    return events
