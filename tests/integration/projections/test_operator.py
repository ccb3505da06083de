"""The operator commands, over NATS alone, against a running query service."""

from __future__ import annotations

import asyncio
import io
import sqlite3

import msgspec
import pytest

from eventstore import JetStreamEventStore
from inmail.natsserver import EmbeddedNatsServer
from inmail.ops.client import OperatorError
from inmail.ops.events import events
from inmail.ops.replay import replay
from inmail.ops.status import status
from inmail.ops.verify import differences, verify
from tests.integration.projections.support import caught_up, everything, running
from tests.integration.projections.world import DAY, T0, World, populate

TIMES = [T0 + n * 20 * DAY for n in range(10)]


async def test_status_shows_the_stream_and_each_projection_with_its_lag(
    store: JetStreamEventStore, sqlite_url: str, private_nats: EmbeddedNatsServer
) -> None:
    world = World(store)
    await populate(world, steps=40)
    async with running(store, sqlite_url) as (projections, _service):
        await caught_up(projections, world.last_seq)
        out = io.StringIO()
        code = await status(private_nats.url, out=out, creds=private_nats.creds("operator"))
    lines = out.getvalue().splitlines()
    assert code == 0
    assert lines[0].startswith(f"stream INMAIL_EVENTS: {world.last_seq} events, ")
    assert lines[0].endswith(f"seq 1..{world.last_seq}")
    assert lines[1] == "service: ok"
    assert [line.split()[0] for line in lines[2:]] == ["credits", "enforcement", "inbox", "response_stats"]
    for line in lines[2:]:
        assert line.split()[3:6] == [str(world.last_seq), "lag", "0"]


async def test_replay_rebuilds_through_the_running_service_with_the_same_answers(
    store: JetStreamEventStore,
    sqlite_url: str,
    private_nats: EmbeddedNatsServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    world = World(store)
    await populate(world, steps=150)
    async with running(store, sqlite_url) as (projections, service):
        await caught_up(projections, world.last_seq)
        before = await everything(service, world.members, TIMES)
        code = await replay(private_nats.url, None, 1, progress=True, creds=private_nats.creds("operator"))
        assert code == 0
        assert projections.positions() == dict.fromkeys(projections.names, world.last_seq)
        code = await replay(
            private_nats.url, ["credits"], 1, progress=False, creds=private_nats.creds("operator")
        )
        after = await everything(service, world.members, TIMES)
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"replayed inbox, credits, response_stats, enforcement from seq 1 to {world.last_seq} "
        f"({world.last_seq} events) in {out[0].rsplit(' in ', 1)[1]}",
        f"replayed credits from seq 1 to {world.last_seq} ({world.last_seq} events) "
        f"in {out[1].rsplit(' in ', 1)[1]}",
    ]
    assert after == before


async def test_replay_names_what_is_wrong_in_one_line(
    store: JetStreamEventStore, sqlite_url: str, private_nats: EmbeddedNatsServer
) -> None:
    async with running(store, sqlite_url):
        with pytest.raises(OperatorError, match="answered INVALID_QUERY: names: unknown projection inbx"):
            await replay(private_nats.url, ["inbx"], 1, progress=False, creds=private_nats.creds("operator"))
        with pytest.raises(OperatorError, match="--from-seq must be 1 or more"):
            await replay(private_nats.url, None, 0, progress=False, creds=private_nats.creds("operator"))


async def test_verify_agrees_with_healthy_read_models_and_lists_every_tampered_value(
    store: JetStreamEventStore, sqlite_url: str, private_nats: EmbeddedNatsServer
) -> None:
    world = World(store)
    await populate(world, steps=200)
    async with running(store, sqlite_url) as (projections, _service):
        await caught_up(projections, world.last_seq)
        out = io.StringIO()
        assert await verify(private_nats.url, out=out, creds=private_nats.creds("operator")) == 0
        assert out.getvalue() == "0 differences\n"

        member = world.members[1]
        sender = next(s for s, sent in _replied_senders(world).items() if sent)
        with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as db:
            db.execute("UPDATE credit_balances SET balance = balance + 2 WHERE member_id = ?", (member,))
            db.execute("UPDATE response_stats SET replied = 0 WHERE sender_id = ?", (sender,))
        out = io.StringIO()
        assert await verify(private_nats.url, out=out, creds=private_nats.creds("operator")) == 1
        found = await differences(private_nats.url, creds=private_nats.creds("operator"))
    report = out.getvalue().splitlines()
    assert report[-1] == f"{len(found)} differences" and len(report) == len(found) + 1
    [balance] = [d for d in found if d.what == f"member {member}"]
    assert (balance.field, balance.actual - balance.expected) == ("balance", 2)  # type: ignore[operator]
    assert [d.field for d in found if d.what == f"sender {sender}"] == ["replied"]
    assert str(balance) == (
        f"member {member}: balance is {balance.actual} in the read model, {balance.expected} from the events"
    )


def _replied_senders(world: World) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sender in world.members:
        counts[sender] = sum(1 for mail in world.state(sender).inmails.values() if mail.replied_seq)
    return counts


async def test_events_prints_json_lines_and_picks_a_members_events(
    store: JetStreamEventStore, private_nats: EmbeddedNatsServer
) -> None:
    world = World(store)
    await world.register("alice", "recruiter")
    await world.register("bob")
    await world.register("carol")
    sent = await world.send("alice", "bob", at=T0 + DAY)
    await world.send("alice", "carol", at=T0 + DAY)
    await world.reply(sent.inmail_id, at=T0 + 2 * DAY)

    everything_out, bob_out, later_out = io.StringIO(), io.StringIO(), io.StringIO()
    await events(private_nats.url, out=everything_out, creds=private_nats.creds("operator"))
    await events(private_nats.url, "bob", out=bob_out, creds=private_nats.creds("operator"))
    await events(private_nats.url, None, 4, out=later_out, creds=private_nats.creds("operator"))

    lines = [msgspec.json.decode(line) for line in everything_out.getvalue().splitlines()]
    assert [line["seq"] for line in lines] == list(range(1, world.last_seq + 1))
    assert lines[0]["subject"] == "inmail.evt.member.alice"
    assert lines[0]["event"]["type"] == "MemberRegistered" and "email" not in lines[0]["event"]
    bobs = [msgspec.json.decode(line) for line in bob_out.getvalue().splitlines()]
    # Bob's own registration, the InMail to him and its reply and refund (on alice's subject).
    assert [b["event"]["type"] for b in bobs] == ["MemberRegistered", "InMailSent", "InMailReplied"]
    assert [msgspec.json.decode(line)["seq"] for line in later_out.getvalue().splitlines()] == list(
        range(4, world.last_seq + 1)
    )


async def test_events_follow_keeps_printing_new_events(
    store: JetStreamEventStore, private_nats: EmbeddedNatsServer
) -> None:
    world = World(store)
    await world.register("alice")
    out = io.StringIO()
    following = asyncio.create_task(
        events(private_nats.url, follow=True, out=out, creds=private_nats.creds("operator"))
    )
    try:
        await world.register("bob")
        for _ in range(200):
            if out.getvalue().count("\n") == 2:
                break
            await asyncio.sleep(0.05)
    finally:
        following.cancel()
    seqs = [msgspec.json.decode(line)["seq"] for line in out.getvalue().splitlines()]
    assert seqs == [1, 2]


async def test_operator_mistakes_and_missing_servers_are_one_line_errors(
    store: JetStreamEventStore, private_nats: EmbeddedNatsServer
) -> None:
    unreachable = "nats://127.0.0.1:1"
    for call in (
        status(unreachable),
        verify(unreachable),
        replay(unreachable, None, 1, progress=False),
        events(unreachable),
    ):
        with pytest.raises(OperatorError, match=r"^cannot reach NATS at nats://127\.0\.0\.1:1") as raised:
            await call
        assert "\n" not in str(raised.value)
    with pytest.raises(OperatorError, match="is not a member id"):
        await events(private_nats.url, "not a member", creds=private_nats.creds("operator"))
    # No service running: status still shows the stream, says so, and exits 1.
    out = io.StringIO()
    assert await status(private_nats.url, out=out, creds=private_nats.creds("operator")) == 1
    assert "service: not answering (no InMail service answers on inmail.query.Health" in out.getvalue()
    with pytest.raises(OperatorError, match=r"no InMail service answers on inmail\.admin\.Replay"):
        await replay(private_nats.url, None, 1, progress=False, creds=private_nats.creds("operator"))
