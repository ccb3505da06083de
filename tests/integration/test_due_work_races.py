"""Due work performed by several instances at once, across a restart, and across kill -9 of the
service in the middle of it: every item has one effect, never two, never none."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from contracts import subjects
from inmail.natsserver import EmbeddedNatsServer, NatsServerSettings
from inmail.ops.verify import differences
from tests.integration.clock import at
from tests.integration.service_env import (
    Client,
    client_for,
    delete_service_streams,
    new_id,
    running_service,
    settings_for,
)
from tests.integration.test_service_crash import start_service, until_answered

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNatsServer]:
    nats = EmbeddedNatsServer(
        NatsServerSettings(data_dir=tmp_path_factory.mktemp("race-nats"), port=0, durable=False)
    )
    nats.start()
    yield nats
    nats.stop()


async def schedule(client: Client, count: int, *, senders: int = 1) -> tuple[list[str], list[str]]:
    """``count`` sends scheduled at T0 for a day later by ``senders`` recruiters, each with a follow-up."""
    recruiters = [await client.register("recruiter", occurred_at=at(T0)) for _ in range(senders)]
    inmails = []
    for n in range(count):
        recipient = await client.register(occurred_at=at(T0))
        reply = await client.ok(
            "SendInMail", sender_id=recruiters[n % senders], recipient_id=recipient, subject="Role",
            body="Interested?", send_at=at(T0 + DAY), occurred_at=at(T0),
            automated_follow_up={"after_days": 3, "subject": "Again", "body": "Still interested?"},
        )
        inmails.append(reply["data"]["inmail_id"])
    return recruiters, inmails


async def events_of(client: Client, member_id: str) -> list[dict[str, Any]]:
    js = client.nc.jetstream()
    subject = subjects.member_events(member_id)
    info = await js.stream_info(subjects.EVENTS_STREAM, subjects_filter=subject)
    total = (info.state.subjects or {}).get(subject, 0)
    sub = await js.subscribe(subject, ordered_consumer=True)
    found = [msgspec.json.decode((await sub.next_msg(timeout=5)).data) for _ in range(total)]
    await sub.unsubscribe()
    return found


async def deliveries(client: Client, senders: list[str]) -> Counter[str]:
    """How often each InMail was sent (delivered, or sent as a follow-up), by id."""
    sent: Counter[str] = Counter()
    for sender in senders:
        sent.update(e["inmail_id"] for e in await events_of(client, sender) if e["type"] == "InMailSent")
    return sent


async def alerts(client: Client) -> Counter[str]:
    js = client.nc.jetstream()
    total = (await js.stream_info(subjects.NOTIFICATIONS_STREAM)).state.messages
    sub = await js.subscribe(f"{subjects.NOTIFICATIONS_ROOT}.>", ordered_consumer=True)
    found = Counter(
        [msgspec.json.decode((await sub.next_msg(timeout=5)).data)["inmail_id"] for _ in range(total)]
    )
    await sub.unsubscribe()
    return found


async def settled(client: Client, expected: int) -> Counter[str]:
    """The alerts once ``expected`` are published: they follow the log, a moment behind."""
    for _ in range(100):
        found = await alerts(client)
        if sum(found.values()) >= expected:
            return found
        await asyncio.sleep(0.1)
    return await alerts(client)


async def test_two_instances_performing_the_same_due_work_at_once_deliver_each_inmail_once(
    server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    async with (
        running_service(settings_for(server, tmp_path / "a")) as first,
        running_service(settings_for(server, tmp_path / "b", projections=False)) as second,
        client_for(server, "admin") as client,
    ):
        senders, inmails = await schedule(client, 24, senders=3)
        assert first.due is not None and second.due is not None
        for due in (first.due, second.due):
            await due.caught_up(await due.events.last_seq())
        until = T0 + 5 * DAY
        results = await asyncio.gather(
            first.due.perform_until(until, stamp=True), second.due.perform_until(until, stamp=True)
        )
        assert [failure for _, _, failure in results] == [None, None]
        # Between them they performed every delivery and every follow-up (each may count one
        # the other recorded first: the same command, the same id), and each happened once.
        assert sum(performed for performed, _, _ in results) >= 48
        sent = await deliveries(client, senders)
        assert len(sent) == 48 and set(sent.values()) == {1}
        assert set(inmails) <= set(sent)
        assert set((await settled(client, 48)).values()) == {1}
        assert await differences(server.url, creds=server.creds("operator")) == []
    await delete_service_streams(server)


async def test_two_instances_on_the_server_clock_deliver_each_inmail_once(
    server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    untrusting = {"trust_client_time": False}
    async with (
        running_service(settings_for(server, tmp_path / "a", **untrusting)) as first,
        running_service(settings_for(server, tmp_path / "b", projections=False, **untrusting)),
        client_for(server, "admin") as client,
    ):
        soon = datetime.now(UTC) + timedelta(seconds=2)
        recruiters = [await client.register("recruiter") for _ in range(2)]
        inmails = []
        for n in range(12):
            recipient = await client.register()
            reply = await client.ok("SendInMail", sender_id=recruiters[n % 2], recipient_id=recipient,
                                    subject="Role", body="Interested?", send_at=at(soon))
            inmails.append(reply["data"]["inmail_id"])
        assert first.due is not None
        for _ in range(100):
            if first.due.pending() == 0:
                break
            await asyncio.sleep(0.1)
        sent = await deliveries(client, recruiters)
        assert Counter({inmail: 1 for inmail in inmails}) == sent
        assert set((await settled(client, 12)).values()) == {1}
    await delete_service_streams(server)


async def test_due_work_left_pending_by_a_stopped_service_is_performed_by_the_next(
    server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    settings = settings_for(server, tmp_path)
    async with client_for(server, "admin") as client:
        async with running_service(settings):
            senders, inmails = await schedule(client, 5)
        async with running_service(settings) as again:
            assert again.due is not None and again.due.pending() == 5
            ran = await client.ok("RunDue", until=at(T0 + 2 * DAY))
            assert ran["data"] == {"performed": 5, "outcomes": {"delivered": 5}}
            assert again.due.pending() == 5, "their follow-ups are due three days after delivery"
            sent = await deliveries(client, senders)
            assert sent == Counter(dict.fromkeys(inmails, 1))
    await delete_service_streams(server)


async def test_killing_the_service_in_the_middle_of_due_work_loses_and_doubles_nothing(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    service = start_service(own_nats_server, tmp_path / "first")
    try:
        async with client_for(own_nats_server, "admin") as client:
            senders, inmails = await schedule(client, 60)
            run_due = {"command_id": new_id("due"), "until": at(T0 + 2 * DAY)}
            in_flight = asyncio.create_task(
                client.raw(subjects.command("RunDue"), msgspec.json.encode(run_due), wait=5)
            )
            await asyncio.sleep(0.05)
            service.send_signal(signal.SIGKILL)
            service.wait()
            with pytest.raises(Exception):  # noqa: B017 - no reply of any kind: the process is gone
                await in_flight
            before = sum((await deliveries(client, senders)).values())
            assert before < 60, "the kill came after the work was done"

            service = start_service(own_nats_server, tmp_path / "second")
            again = {"command_id": new_id("due"), "until": at(T0 + 2 * DAY)}
            answer = await until_answered(client, "RunDue", again)
            assert answer["ok"] and answer["data"]["performed"] == 60 - before, answer
            sent = await deliveries(client, senders)
            assert sent == Counter(dict.fromkeys(inmails, 1))
            published = await settled(client, 60)
            assert published == Counter(dict.fromkeys(inmails, 1))
    finally:
        service.kill()
        service.wait()
