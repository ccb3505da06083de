"""The client library against the whole service on a real nats-server: typed round trips and events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contracts.events import InMailSent, MemberRegistered
from contracts.types import month_of
from inmail.app import InMailService
from inmail.client import Delivery, InMailClient, InMailError
from inmail.natsserver import EmbeddedNatsServer
from tests.conftest import secured_server
from tests.integration.service_env import (
    delete_service_streams,
    new_id,
    running_service,
    settings_for,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNatsServer]:
    nats = secured_server(tmp_path_factory.mktemp("client-nats"), durable=False)
    nats.start()
    yield nats
    nats.stop()


@pytest.fixture
async def service(server: EmbeddedNatsServer, tmp_path: Path) -> AsyncIterator[InMailService]:
    async with running_service(settings_for(server, tmp_path)) as svc:
        yield svc
    # Each test starts from empty streams (the service's record of them included).
    await delete_service_streams(server)


@pytest.fixture
async def client(server: EmbeddedNatsServer, service: InMailService) -> AsyncIterator[InMailClient]:
    async with await InMailClient.connect(server.url, creds=server.creds("client")) as c:
        yield c


@pytest.fixture
async def subscriber(server: EmbeddedNatsServer, service: InMailService) -> AsyncIterator[InMailClient]:
    """A billing service's client: it reads events, with the subscriber role's credentials."""
    async with await InMailClient.connect(server.url, creds=server.creds("subscriber")) as c:
        yield c


async def register(client: InMailClient, tier: str = "premium_career", **fields: bool) -> str:
    member_id = new_id("m")
    await client.register_member(
        member_id, display_name=f"Member {member_id}", email=f"{member_id}@example.com",
        tier=tier, **fields,  # type: ignore[arg-type]
    )  # fmt: skip
    return member_id


async def test_write_then_read_is_one_line_each(client: InMailClient) -> None:
    alice = await register(client, "recruiter")
    bob = await register(client)

    sent = await client.send_inmail(alice, recipient_id=bob, subject="A role", body="Interested?")
    balance = await client.after(sent).credit_balance(alice)
    inbox = await client.after(sent).inbox(bob, box="received")

    assert (sent.charged, sent.free_reason, sent.credits_left) == (True, None, 149)
    assert (balance.balance, balance.spent, balance.as_of_seq >= sent.seq) == (149, 1, True)
    assert [item.inmail_id for item in inbox.items] == [sent.inmail_id]
    replied = await client.record_reply(sent.inmail_id, member_id=bob, body="Yes")
    assert replied.refunded is True
    ledger = await client.after(replied).credit_ledger(alice)
    assert [entry.reason for entry in ledger.entries] == ["refund", "send", "refresh"]
    health = await client.health(min_seq=replied.seq)
    assert health.status == "ok" and health.stream_seq >= replied.seq


async def test_every_command_and_query_answers_its_typed_result(client: InMailClient) -> None:
    recruiter = await register(client, "recruiter")
    members = [await register(client) for _ in range(3)]
    a, b, c = members
    seqs = [
        (await client.change_tier(c, tier="premium_business")).seq,
        (await client.update_preferences(c, open_profile=True)).seq,
        (await client.connect_members(recruiter, other_member_id=a)).seq,
        (await client.block_member(b, blocked_member_id=c)).seq,
        (await client.refresh_credits(recruiter, month=month_of(datetime.now(UTC)))).seq,
    ]
    bulk = await client.send_bulk_inmail(recruiter, recipient_ids=[b, c], subject="Roles", body="Both?")
    sent = await client.send_inmail(recruiter, recipient_id=b, subject="A role", body="Hi", template_id="t1")
    read = await client.mark_inmail_read(sent.inmail_id, member_id=b)
    acknowledged = await client.acknowledge_inmail(sent.inmail_id, member_id=b)
    declined = await client.decline_inmail(bulk.inmail_ids[0], member_id=b, reason="busy")
    replied = await client.record_reply(sent.inmail_id, member_id=b, body="Tell me more")

    assert all(seq > 0 for seq in seqs)
    assert (read.inmail_id, acknowledged.inmail_id) == (sent.inmail_id, sent.inmail_id)
    assert (declined.refunded, replied.refunded) == (True, True)
    after = client.after(replied)
    assert len((await after.inbox(b, box="received", status="replied")).items) == 1
    assert (await after.credit_ledger(recruiter, limit=2)).entries[0].reason == "refund"
    stats = await after.response_stats(sender_id=recruiter, template_id="t1")
    assert (stats.sent, stats.replied, stats.response_rate) == (1, 1, 1.0)
    assert (await after.health()).projections


async def test_a_refusal_raises_with_the_contracts_code(client: InMailClient) -> None:
    free = await register(client, "free")
    other = await register(client)

    with pytest.raises(InMailError) as refused:
        await client.send_inmail(free, recipient_id=other, subject="Hi", body="Hello")

    assert refused.value.code == "TIER_NOT_ALLOWED"


async def test_a_repeated_command_id_answers_the_original_reply(client: InMailClient) -> None:
    alice = await register(client, "recruiter")
    bob = await register(client)

    first = await client.send_inmail(alice, recipient_id=bob, subject="Hi", body="Yes?", command_id="c-once")
    again = await client.send_inmail(alice, recipient_id=bob, subject="Hi", body="Yes?", command_id="c-once")

    assert again == first
    assert (await client.after(again).credit_balance(alice)).spent == 1


async def test_the_blocking_client_offers_the_same_methods(
    server: EmbeddedNatsServer, service: InMailService
) -> None:
    def as_a_script_would() -> tuple[int, int, str]:
        with (
            InMailClient.connect_sync(server.url, creds=server.creds("client")) as sync,
            InMailClient.connect_sync(server.url, creds=server.creds("subscriber")) as reader,
        ):
            member = new_id("m")
            registered = sync.register_member(
                member, display_name="Sync", email=f"{member}@example.com", tier="sales_navigator"
            )
            balance = sync.after(registered).credit_balance(member).balance
            with reader.events(new_id("script"), from_seq=registered.seq) as events:
                delivery = next(events)
                delivery.ack()
            return registered.credits_left, balance, delivery.type

    # The service runs on this event loop: the blocking client must wait elsewhere.
    assert await asyncio.to_thread(as_a_script_would) == (50, 50, "MemberRegistered")


async def consume(client: InMailClient, durable: str, count: int, **options: object) -> list[Delivery]:
    """The next ``count`` events for ``durable``, each acknowledged."""
    taken: list[Delivery] = []
    events = client.events(durable, **options)  # type: ignore[arg-type]
    async with asyncio.timeout(30):
        async for delivery in events:
            await delivery.ack()
            taken.append(delivery)
            if len(taken) == count:
                break
    return taken


async def test_a_subscriber_stopped_mid_stream_resumes_with_nothing_lost_or_doubled(
    server: EmbeddedNatsServer, client: InMailClient
) -> None:
    for _ in range(12):
        await register(client)
    durable = new_id("billing")

    # A subscriber takes 5 events, then dies without a word: its connection is simply gone.
    # With the subscriber role's credentials, as a billing service runs.
    crashed = await InMailClient.connect(server.url, creds=server.creds("subscriber"))
    first = await consume(crashed, durable, 5, ack_wait=1.0, batch=4)
    await crashed.nc.close()
    for _ in range(6):  # the world goes on meanwhile
        await register(client)

    async with await InMailClient.connect(server.url, creds=server.creds("subscriber")) as restarted:
        rest = await consume(restarted, durable, 13)

    seqs = [d.seq for d in first + rest]
    assert sorted(seqs) == list(range(1, 19))
    assert all(isinstance(d.event, MemberRegistered) for d in first + rest)
    # What the crashed subscriber had fetched but not acknowledged comes again, marked so.
    assert all(d.redelivered for d in rest if d.seq <= 8)


async def test_a_subscriber_starts_where_asked_and_keeps_only_types_it_wants(
    client: InMailClient, subscriber: InMailClient
) -> None:
    alice = await register(client, "recruiter")
    bob = await register(client)
    sent = [await client.send_inmail(alice, recipient_id=bob, subject="Hi", body=f"#{n}") for n in range(3)]

    taken = await consume(subscriber, new_id("mailer"), 2, from_seq=sent[1].seq, types=[InMailSent])

    assert [d.seq for d in taken] == [s.seq for s in sent[1:]]
    assert [d.type for d in taken] == ["InMailSent", "InMailSent"]
    assert [d.event.inmail_id for d in taken if isinstance(d.event, InMailSent)] == [
        s.inmail_id for s in sent[1:]
    ]


async def test_leaving_the_events_early_hands_unseen_events_back_at_once(
    client: InMailClient, subscriber: InMailClient
) -> None:
    for _ in range(4):
        await register(client)
    durable = new_id("audit")

    async with subscriber.events(durable) as events:
        first = await anext(events)
        await first.ack()
    again = await consume(subscriber, durable, 3)  # well within the default 30 s ack wait

    assert [d.seq for d in [first, *again]] == [1, 2, 3, 4]
