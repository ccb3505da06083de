"""Six simulated months through the whole service, every answer recorded, then replayed:
the answers are identical, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest

from contracts import subjects
from inmail.natsserver import EmbeddedNatsServer
from tests.conftest import secured_server
from tests.integration.service_env import Client, client_for, running_service, settings_for

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MONTHS = ["2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06"]


def at(days: float) -> str:
    return (START + timedelta(days=days)).isoformat().replace("+00:00", "Z")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedNatsServer]:
    nats = secured_server(tmp_path / "nats", durable=False)
    nats.start()
    yield nats
    nats.stop()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    schema = f"replay_{uuid.uuid4().hex[:12]}"
    yield f"{POSTGRES}?schema={schema}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


class Script:
    """The scenario: commands at fixed simulated times; remembers what it needs later."""

    def __init__(self, client: Client, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.last_seq = 0
        self.members: list[str] = []

    def id(self, name: str) -> str:
        return f"{self.prefix}{name}"

    async def ok(self, name: str, day: float, **fields: Any) -> dict[str, Any]:
        reply = await self.client.ok(name, occurred_at=at(day), **fields)
        self.last_seq = max(self.last_seq, reply["seq"])
        return dict(reply["data"])

    async def refused(self, name: str, day: float, code: str, **fields: Any) -> None:
        reply = await self.client.command(name, occurred_at=at(day), **fields)
        assert reply["ok"] is False and reply["error"]["code"] == code, reply

    async def register(self, name: str, tier: str, **fields: Any) -> str:
        member_id = self.id(name)
        await self.ok(
            "RegisterMember",
            0,
            member_id=member_id,
            display_name=name.title(),
            email=f"{name}@example.com",
            tier=tier,
            **fields,
        )
        self.members.append(member_id)
        return member_id

    async def send(self, day: float, sender: str, recipient: str, **fields: Any) -> str:
        fields.setdefault("subject", f"Hello {recipient}")
        fields.setdefault("body", "We have a role that fits your profile.")
        data = await self.ok("SendInMail", day, sender_id=sender, recipient_id=recipient, **fields)
        return str(data["inmail_id"])

    async def refresh_all(self, month: str, day: float) -> None:
        for member_id in self.members:
            await self.ok("RefreshCredits", day, member_id=member_id, month=month)


async def play(script: Script) -> None:
    """Sends, follow-ups, bulk, replies and declines on both sides of the 90-day line,
    refreshes with forfeits, a tier change, reads, acknowledgements, a block."""
    s = script
    rec = await s.register("rec", "recruiter")
    sal = await s.register("sal", "sales_navigator")
    pc = await s.register("pc", "premium_career")
    pb = await s.register("pb", "premium_business")
    free = await s.register("free", "free")
    op = await s.register("op", "premium_career", open_profile=True)
    out = await s.register("out", "premium_career", inmail_opt_out=True)
    c = [await s.register(f"c{n}", "free") for n in range(1, 6)]

    # January
    await s.ok("ConnectMembers", 1, member_id=rec, other_member_id=c[0])
    to_c1 = await s.send(1, rec, c[0], kind="talent_pipeline", template_id="warm")
    to_c2 = await s.send(2, rec, c[1], template_id="generic")
    await s.send(2, rec, op, kind="employer_branding")
    pc_to_c3 = await s.send(3, pc, c[2], kind="event_invitation")
    sal_to_c4 = await s.send(3, sal, c[3], kind="sales_prospecting", template_id="p1")
    await s.send(4, pb, c[4], kind="sales_prospecting")
    bulk = await s.ok(
        "SendBulkInMail",
        5,
        sender_id=rec,
        recipient_ids=[c[2], c[3], c[4]],
        subject="Openings",
        body="Three roles, one of them yours?",
        template_id="generic",
    )
    await s.refused(
        "SendInMail", 5, "RECIPIENT_OPTED_OUT", sender_id=rec, recipient_id=out, subject="Hi", body="Role"
    )
    await s.refused(
        "SendInMail", 5, "TIER_NOT_ALLOWED", sender_id=free, recipient_id=c[0], subject="Hi", body="Hello"
    )
    await s.send(6, free, op)
    await s.ok("MarkInMailRead", 6, inmail_id=to_c2, member_id=c[1])
    await s.ok("AcknowledgeInMail", 6, inmail_id=to_c2, member_id=c[1])
    await s.ok("RecordReply", 8, inmail_id=to_c2, member_id=c[1], body="Tell me more")
    await s.ok("MarkInMailRead", 8, inmail_id=to_c1, member_id=c[0])
    await s.ok("DeclineInMail", 13, inmail_id=pc_to_c3, member_id=c[2], reason="not now")
    follow_up = await s.send(12, sal, c[3], follow_up_of=sal_to_c4, template_id="p1")
    await s.refused(
        "SendInMail",
        12,
        "INVALID_FOLLOW_UP",
        sender_id=sal,
        recipient_id=c[3],
        subject="Again",
        body="Again",
        follow_up_of=sal_to_c4,
    )

    # February to June: the scheduler's refreshes, played by the script
    await s.refresh_all("2026-02", 27)
    await s.ok("RecordReply", 30, inmail_id=follow_up, member_id=c[3], body="Sure, call me")
    await s.ok("BlockMember", 31, member_id=c[4], blocked_member_id=pb)
    await s.refused("SendInMail", 32, "BLOCKED", sender_id=pb, recipient_id=c[4], subject="Hi", body="x")
    await s.refresh_all("2026-03", 55)
    await s.ok("ChangeTier", 60, member_id=pb, tier="sales_navigator")
    await s.send(61, pb, c[0], kind="sales_prospecting", template_id="p2")
    await s.refresh_all("2026-04", 86)
    # 87 days after it was sent: refunded; 115 days: recorded without refund.
    await s.ok("RecordReply", 90, inmail_id=sal_to_c4, member_id=c[3], body="Late, but yes")
    await s.refresh_all("2026-05", 116)
    await s.ok("DeclineInMail", 120, inmail_id=bulk["inmail_ids"][2], member_id=c[4])
    await s.ok("MarkInMailRead", 121, inmail_id=bulk["inmail_ids"][0], member_id=c[2])
    await s.ok("RecordReply", 122, inmail_id=bulk["inmail_ids"][0], member_id=c[2], body="Yes")
    await s.refresh_all("2026-06", 147)
    await s.send(150, rec, c[1], template_id="warm")
    await s.ok("UpdatePreferences", 151, member_id=op, inmail_opt_out=True)


async def answers(client: Client, script: Script) -> dict[str, Any]:
    """Every query answer worth comparing, waiting for the whole script to be applied."""
    seen: dict[str, Any] = {}

    async def ask(label: str, name: str, **fields: Any) -> None:
        reply = await client.query(name, min_seq=script.last_seq, **fields)
        assert reply["ok"] is True, (label, reply)
        seen[label] = reply["data"]

    async def pages(label: str, name: str, key: str, **fields: Any) -> None:
        before = None
        for page in range(100):
            extra: dict[str, Any] = {"before": before} if before else {}
            await ask(f"{label}#{page}", name, limit=2, **fields, **extra)
            before = seen[f"{label}#{page}"]["next"]
            if before is None:
                return

    for member_id in script.members:
        for box in ("received", "sent"):
            await pages(f"inbox:{member_id}:{box}", "Inbox", "items", member_id=member_id, box=box)
        await ask(f"balance:{member_id}", "CreditBalance", member_id=member_id)
        for month in MONTHS:
            await ask(
                f"balance:{member_id}:{month}",
                "CreditBalance",
                member_id=member_id,
                at=f"{month}-15T00:00:00Z",
            )
        await pages(f"ledger:{member_id}", "CreditLedger", "entries", member_id=member_id)
        await ask(f"stats:sender:{member_id}", "ResponseStats", sender_id=member_id)
    await ask("inbox:filtered", "Inbox", member_id=script.id("c4"), box="received", status="replied")
    await ask("stats:all", "ResponseStats")
    for tier in ("recruiter", "sales_navigator", "premium_business", "premium_career", "free"):
        await ask(f"stats:tier:{tier}", "ResponseStats", tier=tier)
    for kind in ("recruiter_outreach", "talent_pipeline", "sales_prospecting", "employer_branding"):
        await ask(f"stats:kind:{kind}", "ResponseStats", kind=kind)
    for template in ("generic", "warm", "p1", "p2"):
        await ask(f"stats:template:{template}", "ResponseStats", template_id=template)
    await ask("stats:window", "ResponseStats", since=at(3), until=at(60))
    return seen


async def replay_and_wait(client: Client) -> None:
    reply = await client.raw(subjects.admin("Replay"), msgspec.json.encode({}))
    assert reply["ok"] is True, reply
    target = reply["data"]["target_seq"]
    for _ in range(600):
        health = await client.query("Health")
        if all(seq >= target for seq in health["data"]["projections"].values()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("replay did not finish")


@pytest.mark.postgres
async def test_six_months_replayed_give_identical_answers_on_sqlite_and_postgresql(
    server: EmbeddedNatsServer, tmp_path: Path, postgres_url: str
) -> None:
    sqlite = settings_for(server, tmp_path / "sqlite")
    # As admin: the script sends commands, queries and the operator's replay request.
    async with client_for(server, "admin") as client:
        script = Script(client, f"r{uuid.uuid4().hex[:6]}_")
        async with running_service(sqlite):
            await play(script)
            original = await answers(client, script)
            await replay_and_wait(client)
            assert await answers(client, script) == original

        postgres = settings_for(server, tmp_path / "pg", store_url=postgres_url)
        async with running_service(postgres):
            assert await answers(client, script) == original
            await replay_and_wait(client)
            assert await answers(client, script) == original

    # The scenario means something: refunds on both sides of the line, forfeits, a tier change.
    ledger = [e for k, v in original.items() if k.startswith("ledger:") for e in v["entries"]]
    reasons = {entry["reason"] for entry in ledger}
    assert reasons == {"refresh", "send", "refund", "forfeit", "tier_change"}
    late = original[f"stats:sender:{script.id('rec')}"]
    assert late["declined"] == 1 and late["refunded"] == 1
    assert original[f"stats:sender:{script.id('sal')}"]["refunded"] == 2
