"""Erasure that really forgets (contract section 11), over a real nats-server.

The grep test is the contract's sentence taken literally: after ``EraseMember``, no file
the service keeps (stream storage, key folder, read-model database and its WAL, the
notifications stream, a backup taken before and one taken after) holds the member's
name, email or texts in the clear.
"""

from __future__ import annotations

import asyncio
import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from contracts import subjects
from contracts.events import InMailSent, MemberErased, decode_event
from contracts.personal import ERASED
from contracts.types import month_of
from inmail.app import InMailService
from inmail.natsserver import EmbeddedNatsServer
from inmail.ops.events import events
from inmail.ops.replay import replay
from inmail.ops.status import status
from inmail.ops.verify import differences
from services.monthly_refresh import MonthlyRefresh
from tests.integration.service_env import (
    Client,
    client_for,
    new_id,
    running_service,
    server_key_dir,
    settings_for,
)
from tests.serve_process import run

CATCH_UP = 30.0


class Personal(msgspec.Struct):
    """Texts unique to one test run, so finding one anywhere can only mean this member's data."""

    name: str
    email: str
    subject: str
    body: str
    follow_up_subject: str
    follow_up_body: str
    reply: str
    reason: str

    @classmethod
    def fresh(cls) -> Personal:
        tag = uuid.uuid4().hex[:12]
        return cls(
            name=f"Zelda Qx{tag}",
            email=f"zelda.{tag}@erase.example",
            subject=f"Subject{tag}",
            body=f"Body text {tag}",
            follow_up_subject=f"Again{tag}",
            follow_up_body=f"Following up {tag}",
            reply=f"Reply text {tag}",
            reason=f"Reason {tag}",
        )

    def texts(self) -> list[str]:
        return list(msgspec.structs.asdict(self).values())


async def answered(client: Client, name: str, **fields: Any) -> dict[str, Any]:
    reply = await client.query(name, **fields)
    assert reply["ok"] is True, reply
    data: dict[str, Any] = reply["data"]
    return data


async def until(check: Any, what: str) -> None:
    for _ in range(int(CATCH_UP / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {CATCH_UP}s: {what}")


async def numbers(client: Client, *members: str) -> dict[str, Any]:
    """Every figure the contract keeps through an erasure: balances and statistics."""
    figures: dict[str, Any] = {"stats": await answered(client, "ResponseStats")}
    for member in members:
        figures[member] = await answered(client, "CreditBalance", member_id=member)
        figures[f"{member}-stats"] = await answered(client, "ResponseStats", sender_id=member)
    return figures


async def printed_events(server: EmbeddedNatsServer, member: str) -> str:
    out = io.StringIO()
    assert await events(server.url, member, out=out, creds=server.creds("operator")) == 0
    return out.getvalue()


def files_under(*roots: Path) -> list[Path]:
    found: list[Path] = []
    for root in roots:
        found += [root] if root.is_file() else [path for path in root.rglob("*") if path.is_file()]
    return found


def holding(files: list[Path], text: str) -> list[Path]:
    needle = text.encode()
    return [path for path in files if needle in path.read_bytes()]


async def a_history(client: Client, zelda: Personal) -> tuple[str, str]:
    """Zelda (to be erased) writes every kind of personal field; Bob is the other party."""
    alice = new_id("zelda")
    await client.ok("RegisterMember", member_id=alice, display_name=zelda.name, email=zelda.email,
                    tier="recruiter")
    bob = await client.register("recruiter")
    follow_up = {"subject": zelda.follow_up_subject, "body": zelda.follow_up_body}
    await client.ok("SendInMail", sender_id=alice, recipient_id=bob, subject=zelda.subject, body=zelda.body,
                    automated_follow_up=follow_up)
    first = await client.ok("SendInMail", sender_id=bob, recipient_id=alice, subject="Role", body="Talk?")
    second = await client.ok("SendInMail", sender_id=bob, recipient_id=alice, subject="Other", body="Or?")
    await client.ok("RecordReply", inmail_id=first["data"]["inmail_id"], member_id=alice, body=zelda.reply)
    await client.ok("DeclineInMail", inmail_id=second["data"]["inmail_id"], member_id=alice,
                    reason=zelda.reason)
    return alice, bob


async def alerts_to(server: EmbeddedNatsServer, recipient: str) -> list[dict[str, Any]]:
    """The email alerts for one recipient, as stored (read as admin)."""
    async with client_for(server, "admin") as admin:
        js = admin.nc.jetstream()
        stored = await js.get_last_msg(subjects.NOTIFICATIONS_STREAM, subjects.email_notification(recipient))
        assert stored.data is not None
        return [msgspec.json.decode(stored.data)]


async def opened_by_mail_service(server: EmbeddedNatsServer, values: list[str]) -> list[str]:
    """What the mail service (``notifier.creds``) gets when it asks the service to open alert fields."""
    async with client_for(server, "notifier") as notifier:
        body = msgspec.json.encode({"values": values})
        reply = await notifier.raw(subjects.alerts("OpenAlert"), body)
    assert reply["ok"] is True, reply
    opened: list[str] = reply["data"]["values"]
    return opened


async def notifications(server: EmbeddedNatsServer) -> int:
    async with client_for(server, "admin") as admin:
        info = await admin.nc.jetstream().stream_info(subjects.NOTIFICATIONS_STREAM)
        return int(info.state.messages)


async def test_an_erased_member_is_gone_from_every_file_while_every_number_stays(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    server, zelda = own_nats_server, Personal.fresh()
    service_dir = tmp_path / "service"
    operator = server.creds("operator")
    async with running_service(settings_for(server, service_dir)) as service, client_for(server) as client:
        alice, bob = await a_history(client, zelda)
        # Three deliveries to members who want alerts: Bob's from Zelda, Zelda's two from Bob.
        await until(lambda: _at_least(notifications(server), 3), "the email alerts")
        last = await _stream_seq(service)

        # Before: every read path opens the sealed fields (the encryption is a round trip).
        received = await answered(client, "Inbox", member_id=bob, box="received", min_seq=last)
        assert [(i["sender_name"], i["subject"], i["body"]) for i in received["items"]] == [
            (zelda.name, zelda.subject, zelda.body)
        ]
        assert zelda.reply in await printed_events(server, alice)
        # Alerts are stored sealed; the mail service, and it alone, has the service open them.
        [to_zelda] = await alerts_to(server, alice)
        [to_bob] = await alerts_to(server, bob)
        sealed = [to_zelda["email"], to_bob["sender_name"], to_bob["subject"]]
        assert all(value.startswith("enc1:") for value in sealed), sealed
        assert await opened_by_mail_service(server, sealed) == [zelda.email, zelda.name, zelda.subject]
        with pytest.raises((NatsTimeoutError, NoRespondersError)):  # the client role may not ask
            await client.raw(subjects.alerts("OpenAlert"), msgspec.json.encode({"values": sealed}), wait=1.0)
        before = await numbers(client, alice, bob)
        backup_before = tmp_path / "before.backup"
        as_backup = ("--nats", server.url, "--creds", str(server.creds("backup")))
        taken = run("backup", str(backup_before), *as_backup)
        assert taken.returncode == 0, taken.stderr
        assert "key folder" in taken.stdout

        erased = await client.ok("EraseMember", member_id=alice)

        received = await answered(client, "Inbox", member_id=bob, box="received", min_seq=erased["seq"])
        assert [(i["sender_name"], i["subject"], i["body"]) for i in received["items"]] == [
            (ERASED, ERASED, ERASED)
        ]
        sent = await answered(client, "Inbox", member_id=bob, box="sent", min_seq=erased["seq"])
        shown = {(i["recipient_name"], i["subject"]) for i in sent["items"]}
        assert shown == {(ERASED, "Role"), (ERASED, "Other")}
        assert await numbers(client, alice, bob) == before
        assert await differences(server.url, creds=operator) == []
        assert await opened_by_mail_service(server, sealed) == [ERASED, ERASED, ERASED]
        printed = await printed_events(server, alice)
        assert ERASED in printed and not [text for text in zelda.texts() if text in printed]
        refused = await client.command(
            "SendInMail", sender_id=bob, recipient_id=alice, subject="Hi", body="?"
        )
        assert refused["error"]["code"] == "MEMBER_ERASED", refused

        # A replay from sequence 1 rebuilds the same answers: the read models held ciphertext.
        assert await replay(server.url, progress=False, creds=operator) == 0
        received = await answered(client, "Inbox", member_id=bob, box="received")
        assert received["items"][0]["subject"] == ERASED
        assert await numbers(client, alice, bob) == before
        assert await differences(server.url, creds=operator) == []

        backup_after = tmp_path / "after.backup"
        taken = run("backup", str(backup_after), *as_backup)
        assert taken.returncode == 0, taken.stderr

    # Every file the service keeps, and each backup as a restore lays its streams out on disk
    # (the backup file itself holds compressed snapshots, so grepping it alone would prove little).
    restored = []
    for number, backup in enumerate((backup_before, backup_after)):
        folder = tmp_path / f"restored-{number}"
        done = run("restore", str(backup), "--embedded", "--data-dir", str(folder), "--no-progress")
        assert done.returncode == 0, done.stderr
        restored.append(folder)
    kept = files_under(
        server.settings.data_dir, server_key_dir(server), service_dir, backup_before, backup_after, *restored
    )
    assert any(path.name.endswith("-wal") for path in kept) or any(path.suffix == ".db" for path in kept)
    # The grep reads what is stored: ids, which are no personal data, are found in the clear.
    for root in (server.settings.data_dir, *restored):
        assert holding(files_under(root), alice), f"{alice} not found under {root}"
    found = {text: holding(kept, text) for text in zelda.texts()}
    assert found == {text: [] for text in zelda.texts()}


async def _at_least(count: Any, n: int) -> bool:
    return int(await count) >= n


async def _stream_seq(service: InMailService) -> int:
    assert service.events is not None
    info = await service.events.info_or_none()
    assert info is not None
    return int(info.state.last_seq)


@pytest.mark.parametrize("erased", ["recipient", "sender"])
async def test_an_erasure_racing_a_send_has_exactly_one_outcome(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path, erased: str
) -> None:
    server = own_nats_server
    async with running_service(settings_for(server, tmp_path)) as service, client_for(server) as client:
        for _ in range(8):
            alice = await client.register("recruiter")
            bob = await client.register()
            target = bob if erased == "recipient" else alice
            send_id = new_id("send")
            send, erase = await asyncio.gather(
                client.command("SendInMail", command_id=send_id, sender_id=alice, recipient_id=bob,
                               subject="Race", body="Who wins?"),
                client.command("EraseMember", member_id=target),
            )
            assert erase["ok"] is True, erase
            assert send["ok"] is True or send["error"]["code"] == "MEMBER_ERASED", send
            recorded = await _events_of(service, alice, send_id)
            if not send["ok"]:
                assert recorded == [], "a refused send wrote nothing"
                continue
            [(seq, event)] = recorded
            assert isinstance(event, InMailSent) and seq == send["seq"]
            if erased == "sender":
                # The sender's erasure and their send are ordered on one subject: the send came first.
                erasures = [s for s, e in await _events_on(service, alice) if isinstance(e, MemberErased)]
                assert erasures and seq < erasures[0]
        assert await differences(server.url, creds=server.creds("operator")) == []


async def _events_on(service: InMailService, member: str) -> list[tuple[int, Any]]:
    assert service.events is not None
    stored = await service.events.read_subject(subjects.member_events(member))
    return [(message.seq, decode_event(message.data)) for message in stored]


async def _events_of(service: InMailService, member: str, command_id: str) -> list[tuple[int, Any]]:
    stored = await _events_on(service, member)
    return [(seq, event) for seq, event in stored if event.command_id == command_id]


async def test_a_stream_written_before_encryption_is_reported_and_its_members_cannot_be_erased(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    server = own_nats_server
    async with running_service(settings_for(server, tmp_path)) as service, client_for(server) as client:
        legacy = await client.register()
    # As a version without encryption left it: its key bucket never existed.
    async with client_for(server, "admin") as admin:
        await admin.nc.jetstream().delete_key_value(subjects.KEYS_BUCKET)
        js = admin.nc.jetstream()
        stored = await js.get_last_msg(subjects.EVENTS_STREAM, subjects.member_events(legacy))
        assert stored.data is not None
        clear = msgspec.json.decode(stored.data)
        clear["display_name"] = "Clear Name"
        clear["event_id"] = new_id("legacy")
        legacy_clear = new_id("old")
        clear["member_id"] = legacy_clear
        await admin.nc.jetstream().publish(subjects.member_events(legacy_clear), msgspec.json.encode(clear),
                                           headers={"Nats-Msg-Id": clear["event_id"]})
    async with running_service(settings_for(server, tmp_path)) as service, client_for(server) as client:
        out = io.StringIO()
        await status(server.url, out=out, creds=server.creds("operator"))
        assert "personal data in the clear" in out.getvalue()
        last = await _stream_seq(service)
        assert f"seq 1..{last}" in out.getvalue()
        refused = await client.command("EraseMember", member_id=legacy_clear)
        assert refused["error"]["code"] == "PERSONAL_DATA_IN_CLEAR", refused
        assert "before encryption" in refused["error"]["message"]
        # Read as they are: the clear-text name is shown, never rewritten.
        assert "Clear Name" in await printed_events(server, legacy_clear)
        # New members are sealed and can be erased.
        fresh = await client.register()
        assert (await client.command("EraseMember", member_id=fresh))["ok"] is True


async def test_the_monthly_refresh_passes_over_an_erased_member(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    server = own_nats_server
    now = [datetime.now(UTC)]
    settings = settings_for(server, tmp_path, trust_client_time=False, clock=lambda: now[0])
    async with running_service(settings) as service, client_for(server) as client:
        erased, kept = await client.register(), await client.register()
        await client.ok("EraseMember", member_id=erased)
        assert service.executor is not None and service.events is not None
        now[0] += timedelta(days=40)
        refresh = MonthlyRefresh(service.executor, service.events, clock=lambda: now[0])
        # No failure (so the month is recorded as done), the erased member left as they were.
        assert await refresh.refresh_month(month_of(now[0])) == 0
        last = await _stream_seq(service)
        balance = await answered(client, "CreditBalance", member_id=kept, min_seq=last)
        erased_balance = await answered(client, "CreditBalance", member_id=erased, min_seq=last)
        assert balance["granted"] > erased_balance["granted"]


POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.mark.postgres
async def test_postgresql_read_models_hold_personal_fields_only_as_ciphertext(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    # PostgreSQL keeps old row versions until vacuum (and in its WAL): nothing there may ever
    # hold a personal field in the clear, so the rows hold the events' tokens.
    server, zelda = own_nats_server, Personal.fresh()
    schema = f"erasure_{uuid.uuid4().hex[:12]}"
    settings = settings_for(server, tmp_path, store_url=f"{POSTGRES}?schema={schema}")
    try:
        async with running_service(settings) as service, client_for(server) as client:
            _, bob = await a_history(client, zelda)
            last = await _stream_seq(service)
            received = await answered(client, "Inbox", member_id=bob, box="received", min_seq=last)
            assert [item["subject"] for item in received["items"]] == [zelda.subject]
        with psycopg.connect(POSTGRES) as conn:
            columns = conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = %s AND data_type IN ('text', 'character varying', 'jsonb')",
                (schema,),
            ).fetchall()
            stored = [
                str(value)
                for table, column in columns
                for (value,) in conn.execute(f'SELECT "{column}"::text FROM "{schema}"."{table}"').fetchall()
                if value is not None
            ]
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    assert any(value.startswith("enc1:") for value in stored)
    assert [value for value in stored for text in zelda.texts() if text in value] == []
