"""Safe retries: the service killed (SIGKILL) while sends are in flight; the client's retries
with the same command_ids, answered by a restarted service, make each send act exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from pathlib import Path

import msgspec
from nats.js.api import ConsumerConfig, DeliverPolicy

from bench.service import ServiceProcess
from contracts import subjects
from inmail.client import InMailClient
from inmail.natsserver import EmbeddedNatsServer
from tests.integration.service_env import new_id

SENDS = 20


async def test_sends_retried_across_a_killed_service_each_act_exactly_once(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    url = own_nats_server.url
    store = f"sqlite:///{tmp_path / 'readmodels.db'}"
    log = tmp_path / "service.log"
    service = ServiceProcess(url, store, projections=True, log_path=log)
    service.start()
    try:
        async with await InMailClient.connect(url, deadline=90) as client:
            sender = new_id("s")
            await client.register_member(sender, display_name="S", email="s@example.com", tier="recruiter")
            recipients = [new_id("r") for _ in range(SENDS)]
            for r in recipients:
                await client.register_member(r, display_name="R", email=f"{r}@example.com", tier="free")
            registered = (await client.nc.jetstream().stream_info(subjects.EVENTS_STREAM)).state.last_seq

            command_ids = [new_id("send") for _ in recipients]
            sends = [
                asyncio.create_task(
                    client.send_inmail(sender, recipient_id=r, subject="A role", body="Hi", command_id=c)
                )
                for r, c in zip(recipients, command_ids, strict=True)
            ]
            # The moment the first send is stored, the service dies: the others are in flight.
            await _stored_after(client, registered)
            os.kill(service.pid, signal.SIGKILL)
            service.stop()
            answered_before = sum(task.done() for task in sends)
            service = ServiceProcess(url, store, projections=True, log_path=log)
            service.start()

            sent = await asyncio.gather(*sends)

            assert answered_before < SENDS, "the kill came too late to matter"
            assert client.stats.retries > 0
            balance = await client.after(max(s.seq for s in sent)).credit_balance(sender)
            assert (balance.spent, balance.balance) == (SENDS, 150 - SENDS)
            stored = await _sent_events(client, sender)
    finally:
        service.stop()

    assert Counter(e["command_id"] for e in stored) == Counter(command_ids)
    assert sorted(e["inmail_id"] for e in stored) == sorted(s.inmail_id for s in sent)


async def _stored_after(client: InMailClient, seq: int) -> None:
    """Returns as soon as the stream holds an event after ``seq``."""
    after = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=seq + 1)
    watch = await client.nc.jetstream().subscribe(subjects.EVENTS_ALL, ordered_consumer=True, config=after)
    await watch.next_msg(timeout=30)
    await watch.unsubscribe()


async def _sent_events(client: InMailClient, member_id: str) -> list[dict[str, str]]:
    js = client.nc.jetstream()
    subject = subjects.member_events(member_id)
    sub = await js.subscribe(subject, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
    state = await js.stream_info(subjects.EVENTS_STREAM, subjects_filter=subject)
    total = (state.state.subjects or {}).get(subject, 0)
    events = [msgspec.json.decode((await sub.next_msg(timeout=5)).data) for _ in range(total)]
    await sub.unsubscribe()
    return [e for e in events if e["type"] == "InMailSent"]
