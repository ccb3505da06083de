"""Due work over NATS, end to end: scheduled sends, automated follow-ups, the response-rate floor,
email alerts; RunDue under trusted time, the server's clock otherwise; restarts and racing instances."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from contracts import subjects
from contracts.personal import parse
from eventstore import JetStreamEventStore
from inmail.app import InMailService
from inmail.natsserver import EmbeddedNatsServer, NatsServerSettings
from inmail.ops.verify import differences
from inmail.streams import notifications_stream
from services.due.notifier import WATERMARK_KEY
from services.monthly_refresh import BUCKET
from tests.integration.clock import at
from tests.integration.service_env import (
    Client,
    client_for,
    delete_service_streams,
    new_id,
    running_service,
    settings_for,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNatsServer]:
    nats = EmbeddedNatsServer(
        NatsServerSettings(data_dir=tmp_path_factory.mktemp("due-nats"), port=0, durable=False)
    )
    nats.start()
    yield nats
    nats.stop()


@pytest.fixture
async def service(server: EmbeddedNatsServer, tmp_path: Path) -> AsyncIterator[InMailService]:
    async with running_service(settings_for(server, tmp_path)) as svc:
        yield svc
    await delete_service_streams(server)


@pytest.fixture
async def client(server: EmbeddedNatsServer) -> AsyncIterator[Client]:
    async with client_for(server, "admin") as c:
        yield c


async def member(client: Client, tier: str = "premium_career", **fields: Any) -> str:
    return await client.register(tier, occurred_at=at(T0), **fields)


async def send(client: Client, sender: str, recipient: str, when: datetime, **fields: Any) -> dict[str, Any]:
    reply = await client.ok(
        "SendInMail", sender_id=sender, recipient_id=recipient, subject="A role", body="Interested?",
        occurred_at=at(when), **fields,
    )
    return dict(reply)


async def run_due(client: Client, until: datetime, command_id: str | None = None) -> dict[str, Any]:
    reply = await client.ok("RunDue", until=at(until), command_id=command_id or new_id("due"))
    return dict(reply)


async def alerts(client: Client) -> list[dict[str, Any]]:
    """Every email alert on the notifications stream, as a mail service would read it."""
    js = client.nc.jetstream()
    try:
        total = (await js.stream_info(subjects.NOTIFICATIONS_STREAM)).state.messages
    except Exception:
        return []
    sub = await js.subscribe(f"{subjects.NOTIFICATIONS_ROOT}.>", ordered_consumer=True)
    found = [msgspec.json.decode((await sub.next_msg(timeout=5)).data) for _ in range(total)]
    await sub.unsubscribe()
    return found


async def alerts_for(client: Client, inmail_ids: set[str], count: int) -> list[dict[str, Any]]:
    """The alerts of these InMails once ``count`` of them are published (they follow the log)."""
    for _ in range(100):
        found = [a for a in await alerts(client) if a["inmail_id"] in inmail_ids]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"{count} alerts expected, found {len(found)}")


async def inbox(client: Client, member_id: str, box: str, seq: int, **fields: Any) -> list[dict[str, Any]]:
    answer = await client.query("Inbox", member_id=member_id, box=box, min_seq=seq, **fields)
    assert answer["ok"], answer
    return list(answer["data"]["items"])


# Scheduled sends --------------------------------------------------------------------------------


async def test_a_scheduled_send_waits_in_the_scheduled_box_and_run_due_delivers_it_once(
    service: InMailService, client: Client
) -> None:
    rec, bob = await member(client, "recruiter"), await member(client)
    scheduled = await send(client, rec, bob, T0 + timedelta(hours=1), send_at=at(T0 + 2 * DAY))
    data = scheduled["data"]
    assert (data["scheduled_for"], data["charged"], data["credits_left"]) == (at(T0 + 2 * DAY), True, 149)
    [waiting] = await inbox(client, rec, "scheduled", scheduled["seq"])
    assert (waiting["inmail_id"], waiting["status"], waiting["scheduled_for"]) == (
        data["inmail_id"], "scheduled", at(T0 + 2 * DAY)
    )
    assert await inbox(client, bob, "received", scheduled["seq"]) == []
    assert service.due is not None and service.due.pending() == 1

    assert (await run_due(client, T0 + DAY))["data"] == {"performed": 0, "outcomes": {}}
    first = await run_due(client, T0 + 3 * DAY, command_id="due-once")
    assert first["data"] == {"performed": 1, "outcomes": {"delivered": 1}}
    assert (await run_due(client, T0 + 3 * DAY))["data"]["performed"] == 0
    assert await run_due(client, T0 + 5 * DAY, command_id="due-once") == first, "same command_id, same reply"

    [delivered] = await inbox(client, bob, "received", first["seq"])
    assert (delivered["status"], delivered["sent_at"]) == ("sent", at(T0 + 2 * DAY))
    assert await inbox(client, rec, "scheduled", first["seq"]) == []
    balance = await client.query("CreditBalance", member_id=rec, min_seq=first["seq"])
    assert (balance["data"]["spent"], balance["data"]["balance"]) == (1, 149)
    assert service.due.pending() == 0
    [alert] = await alerts_for(client, {data["inmail_id"]}, 1)
    # The email is stored sealed with the recipient's key (section 11; the mail service has the
    # service open it, tests/integration/test_erasure.py).
    email = parse(alert["email"])
    assert alert["recipient_id"] == bob and email is not None and email[:2] == (bob, "email")
    assert alert["sent_at"] == at(T0 + 2 * DAY)


async def test_cancelling_before_delivery_refunds_and_after_it_is_already_sent(
    service: InMailService, client: Client
) -> None:
    rec, bob, carol = await member(client, "recruiter_lite"), await member(client), await member(client)
    later = await send(client, rec, bob, T0, send_at=at(T0 + DAY))
    soon = await send(client, rec, carol, T0, send_at=at(T0 + DAY))
    cancelled = await client.ok(
        "CancelScheduledInMail", inmail_id=later["data"]["inmail_id"], member_id=rec, occurred_at=at(T0)
    )
    assert cancelled["data"] == {
        "inmail_id": later["data"]["inmail_id"], "refunded": True, "credits_left": 29
    }
    ran = await run_due(client, T0 + 2 * DAY)
    assert ran["data"] == {"performed": 1, "outcomes": {"delivered": 1}}
    too_late = await client.command(
        "CancelScheduledInMail", inmail_id=soon["data"]["inmail_id"], member_id=rec,
        occurred_at=at(T0 + 2 * DAY),
    )
    assert too_late["error"]["code"] == "ALREADY_SENT"
    ledger = await client.query("CreditLedger", member_id=rec, min_seq=ran["seq"])
    assert [e["reason"] for e in ledger["data"]["entries"]] == ["cancelled", "send", "send", "refresh"]
    [gone] = await inbox(client, rec, "scheduled", ran["seq"], status="cancelled")
    assert (gone["inmail_id"], gone["cancelled_reason"], gone["refunded"]) == (
        later["data"]["inmail_id"], "sender_cancelled", True
    )


async def test_a_block_before_delivery_cancels_it_with_the_credit_back(
    service: InMailService, client: Client
) -> None:
    rec, bob = await member(client, "recruiter"), await member(client)
    await send(client, rec, bob, T0, send_at=at(T0 + DAY))
    await client.ok("BlockMember", member_id=bob, blocked_member_id=rec,
                    occurred_at=at(T0 + timedelta(hours=2)))
    ran = await run_due(client, T0 + DAY)
    assert ran["data"]["outcomes"] == {"cancelled": 1}
    balance = await client.query("CreditBalance", member_id=rec, min_seq=ran["seq"])
    assert (balance["data"]["balance"], balance["data"]["refunded"]) == (150, 1)


async def test_run_due_is_refused_when_the_server_clock_drives_due_work(
    server: EmbeddedNatsServer, tmp_path: Path, client: Client
) -> None:
    async with running_service(settings_for(server, tmp_path, trust_client_time=False)):
        refused = await client.command("RunDue", until=at(T0))
    await delete_service_streams(server)
    assert refused["error"]["code"] == "INVALID_COMMAND"


async def test_the_server_clock_delivers_a_scheduled_send_when_it_is_due(
    server: EmbeddedNatsServer, tmp_path: Path, client: Client
) -> None:
    async with running_service(settings_for(server, tmp_path, trust_client_time=False)):
        rec, bob = await client.register("recruiter"), await client.register()
        soon = datetime.now(UTC) + timedelta(seconds=1)
        sent = await client.ok("SendInMail", sender_id=rec, recipient_id=bob, subject="Hi", body="Role",
                               send_at=at(soon))
        for _ in range(100):
            received = await inbox(client, bob, "received", sent["seq"])
            if received:
                break
            await asyncio.sleep(0.1)
    await delete_service_streams(server)
    assert [item["inmail_id"] for item in received] == [sent["data"]["inmail_id"]]
    assert datetime.fromisoformat(received[0]["sent_at"]) >= soon


# Automated follow-ups ------------------------------------------------------------------------------


async def test_follow_ups_go_out_when_unanswered_and_are_cancelled_when_answered(
    service: InMailService, client: Client
) -> None:
    rec, bob, carol, dan = (await member(client, "recruiter"), await member(client), await member(client),
                            await member(client))
    follow_up = {"after_days": 3, "subject": "Following up", "body": "Any thoughts?"}
    unanswered = await send(client, rec, bob, T0, automated_follow_up=follow_up)
    answered = await send(client, rec, carol, T0, automated_follow_up=follow_up)
    called_off = await send(client, rec, dan, T0, automated_follow_up=follow_up)
    await client.ok("DeclineInMail", inmail_id=answered["data"]["inmail_id"], member_id=carol,
                    occurred_at=at(T0 + DAY))
    call_off = await client.ok("CancelFollowUp", inmail_id=called_off["data"]["inmail_id"], member_id=rec,
                               occurred_at=at(T0 + DAY))
    # Read after the cancellation: the read model may not have applied it at the send's seq.
    planned = await inbox(client, rec, "scheduled", call_off["seq"], status="scheduled")
    assert len(planned) == 2 and {item["follow_up_of"] for item in planned} == {
        unanswered["data"]["inmail_id"], answered["data"]["inmail_id"]
    }

    ran = await run_due(client, T0 + 4 * DAY)
    assert ran["data"] == {"performed": 2, "outcomes": {"follow_up_cancelled": 1, "follow_up_sent": 1}}
    received = await inbox(client, bob, "received", ran["seq"])
    assert [(item["follow_up_of"], item["sent_at"]) for item in received] == [
        (unanswered["data"]["inmail_id"], at(T0 + 3 * DAY)), (None, at(T0))
    ]
    balance = await client.query("CreditBalance", member_id=rec, min_seq=ran["seq"])
    assert balance["data"]["spent"] == 4
    cancelled = await inbox(client, rec, "scheduled", ran["seq"], status="cancelled")
    assert sorted(item["cancelled_reason"] for item in cancelled) == ["responded", "sender_cancelled"]


# The response-rate floor -------------------------------------------------------------------------


async def test_a_sender_under_the_floor_is_warned_then_suspended_and_the_suspension_ends(
    server: EmbeddedNatsServer, service: InMailService, client: Client
) -> None:
    rec = await member(client, "recruiter")
    # Open Profile members: free InMails, so credits never run out.
    recipients = [await member(client, open_profile=True) for _ in range(4)]

    async def hundred(start: datetime) -> None:
        for n in range(100):
            await send(client, rec, recipients[n % 4], start + timedelta(minutes=n), command_id=new_id("s"))

    await hundred(T0 + timedelta(hours=1))
    ran = await run_due(client, T0 + 21 * DAY)  # the first period ended on day 14, assessed 7 days later
    assert ran["data"]["outcomes"] == {"warned": 1}
    status = await client.query("EnforcementStatus", member_id=rec, min_seq=ran["seq"])
    midnight = T0.replace(hour=0)
    assert status["data"] == {
        "stage": "warned", "since": at(midnight + 21 * DAY), "until": at(midnight + 35 * DAY),
        "period_start": at(midnight), "period_end": at(midnight + 14 * DAY), "sent": 100, "responded": 0,
        "rate": 0.0, "threshold": 0.13,
    }
    await hundred(T0 + 22 * DAY)
    ran = await run_due(client, T0 + 42 * DAY)
    # These InMails also fill a regular period, assessed meanwhile: the warning stays.
    assert ran["data"]["outcomes"] == {"assessed": 1, "suspended": 1}
    bulk = await client.command("SendBulkInMail", sender_id=rec, recipient_ids=recipients[:2],
                                subject="Roles", body="Hiring", occurred_at=at(T0 + 43 * DAY))
    assert bulk["error"]["code"] == "BULK_SUSPENDED" and at(midnight + 56 * DAY) in bulk["error"]["message"]
    ran = await run_due(client, T0 + 60 * DAY)
    assert ran["data"]["outcomes"]["suspension_ended"] == 1
    status = await client.query("EnforcementStatus", member_id=rec, min_seq=ran["seq"])
    assert (status["data"]["stage"], status["data"]["since"]) == ("ok", at(midnight + 56 * DAY))
    assert await differences(server.url, creds=server.creds("operator")) == []


# Email alerts --------------------------------------------------------------------------------------


async def test_each_delivered_inmail_alerts_a_recipient_who_wants_alerts_exactly_once(
    server: EmbeddedNatsServer, tmp_path: Path, client: Client
) -> None:
    settings = settings_for(server, tmp_path)
    # A duplicate window too short to help: only the service's own bookkeeping prevents doubles.
    short_window = dataclasses.replace(notifications_stream(), duplicate_window=0.2)
    await JetStreamEventStore(client.nc, short_window).ensure_stream()
    async with running_service(settings):
        rec = await member(client, "recruiter")
        wants, quiet, opted_out = await member(client), await member(client), await member(client)
        await client.ok("UpdatePreferences", member_id=quiet, email_notifications=False, occurred_at=at(T0))
        await client.ok("ConnectMembers", member_id=rec, other_member_id=opted_out, occurred_at=at(T0))
        await client.ok("UpdatePreferences", member_id=opted_out, inmail_opt_out=True, occurred_at=at(T0))
        now = await send(client, rec, wants, T0)
        later = await send(client, rec, wants, T0, send_at=at(T0 + DAY))
        await send(client, rec, quiet, T0)
        await send(client, rec, opted_out, T0)
        ids = {now["data"]["inmail_id"], later["data"]["inmail_id"]}
        [first] = await alerts_for(client, ids, 1)
        assert first["inmail_id"] == now["data"]["inmail_id"], "a scheduled send alerts when delivered"
        await run_due(client, T0 + 2 * DAY)
        await alerts_for(client, ids, 2)
    # Started again, it folds the log again: nothing is published twice, even when its saved
    # watermark is older than what it published (here: none at all).
    await (await client.nc.jetstream().key_value(BUCKET)).delete(WATERMARK_KEY)
    await asyncio.sleep(0.3)
    async with running_service(settings) as again:
        assert again.due is not None
        await again.due.caught_up(await again.due.events.last_seq())
        published = await alerts(client)
        assert await differences(server.url, creds=server.creds("operator")) == []
    await delete_service_streams(server)
    assert Counter(a["inmail_id"] for a in published) == dict.fromkeys(ids, 1)
    assert {a["recipient_id"] for a in published} == {wants}
    assert published[0].keys() == {
        "notification_id", "inmail_id", "recipient_id", "email", "sender_name", "subject", "sent_at"
    }
    sender_name = parse(published[0]["sender_name"])
    assert sender_name is not None and sender_name[:2] == (rec, "display_name")
