"""An event no one can read, forged onto a member's subject with a plain NATS client, end to end:
quarantined by the read models, its member's commands UNAVAILABLE naming it, everyone else served,
listed by Health, status, verify and `inmail quarantine list`, and skipped on purpose with
`inmail quarantine resolve SEQ --skip`, after which the member is served again and replays agree."""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path
from typing import Any

from contracts import subjects
from inmail.natsserver import EmbeddedNatsServer
from inmail.ops.quarantine import quarantined, skip
from inmail.ops.replay import replay
from inmail.ops.status import status
from inmail.ops.verify import verify
from tests.integration.service_env import Client, client_for, running_service, settings_for

INMAIL = [sys.executable, "-m", "inmail.cli"]
FROM_A_NEWER_VERSION = (
    b'{"type":"MemberTeleported","event_id":"forged-1","occurred_at":"2026-01-05T09:00:00Z",'
    b'"command_id":"c","member_id":"%s","to":"mars"}'
)


async def health(client: Client, **fields: Any) -> dict[str, Any]:
    reply = await client.query("Health", **fields)
    assert reply["ok"], reply
    data: dict[str, Any] = reply["data"]
    return data


async def test_a_forged_unreadable_event_holds_up_its_member_alone_until_an_operator_skips_it(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    url = own_nats_server.url
    async with (
        running_service(settings_for(own_nats_server, tmp_path)),
        client_for(own_nats_server, "admin") as client,
    ):
        alice, bob = await client.register("recruiter"), await client.register()
        await client.ok("SendInMail", sender_id=alice, recipient_id=bob, subject="Hi", body="Role?")
        ack = await client.nc.jetstream().publish(
            subjects.member_events(bob), FROM_A_NEWER_VERSION % bob.encode()
        )
        seq = ack.seq

        held = await health(client, min_seq=seq)
        refused = [
            await client.command("UpdatePreferences", member_id=bob, inmail_opt_out=True),
            await client.command(
                "SendInMail", sender_id=alice, recipient_id=bob, subject="Hi", body="Again?"
            ),
        ]
        served = [
            await client.command("ChangeTier", member_id=alice, tier="sales_navigator"),
            await client.command(
                "RegisterMember", member_id=f"{bob}_c", display_name="C", email="c@e.io", tier="free"
            ),
        ]
        outputs = {name: io.StringIO() for name in ("status", "verify", "list", "skip")}
        codes = {
            "status": await status(url, out=outputs["status"], creds=own_nats_server.creds("operator")),
            "verify": await verify(url, out=outputs["verify"], creds=own_nats_server.creds("operator")),
            "list": await quarantined(url, out=outputs["list"], creds=own_nats_server.creds("operator")),
        }
        listed = await _cli(
            "quarantine", "list", "--nats", url, "--creds", str(own_nats_server.creds("operator"))
        )

        codes["skip"] = await skip(
            url,
            seq,
            "a newer version wrote it",
            "ops",
            out=outputs["skip"],
            creds=own_nats_server.creds("operator"),
        )
        again = await client.command("UpdatePreferences", member_id=bob, inmail_opt_out=True)
        resolved = await health(client, min_seq=again["seq"])
        balance = await client.query("CreditBalance", member_id=bob, min_seq=again["seq"])
        assert await replay(url, None, 1, progress=False, creds=own_nats_server.creds("operator")) == 0
        replayed = await health(client)
        balance_after_replay = await client.query("CreditBalance", member_id=bob)

    line = f"quarantined: seq {seq} on inmail.evt.member.{bob}: unknown event type 'MemberTeleported'"
    assert held["status"] == "degraded" and held["problems"] == {}
    assert held["quarantined"] == [
        {
            "seq": seq,
            "subject": subjects.member_events(bob),
            "error": "unknown event type 'MemberTeleported' (written by a newer version?)",
        }
    ]
    for reply in refused:
        assert reply["ok"] is False and reply["error"]["code"] == "UNAVAILABLE", reply
        assert f"the event at seq {seq} cannot be read" in reply["error"]["message"]
        assert (
            "Traceback" not in reply["error"]["message"] and "internal error" not in reply["error"]["message"]
        )
    assert all(reply["ok"] for reply in served), served
    assert codes == {"status": 1, "verify": 0, "list": 0, "skip": 0}
    assert line in outputs["status"].getvalue()
    assert outputs["verify"].getvalue().splitlines() == [
        f"{line} (written by a newer version?)",
        "0 differences",
    ]
    assert outputs["list"].getvalue().splitlines()[0].startswith(line)
    assert listed[0] == 0 and line in listed[1]
    assert (
        outputs["skip"].getvalue().startswith(f"skipped seq {seq}: member {bob} is served again (recorded at")
    )
    assert again["ok"] is True, again
    assert resolved["status"] == "ok" and resolved["quarantined"] == []
    assert replayed["quarantined"] == [] and balance_after_replay["data"] == balance["data"]


async def _cli(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *INMAIL, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, stdout.decode()
