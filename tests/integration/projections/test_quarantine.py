"""Events the read models cannot read: quarantined, passed over, resolved by a recorded skip."""

from __future__ import annotations

import logging

import msgspec
import pytest

from contracts.events import EventSkipped
from eventstore import JetStreamEventStore
from tests.integration.projections.support import caught_up, data, everything, running
from tests.integration.projections.world import DAY, T0, World

UNKNOWN_TYPE = {"type": "MemberTeleported", "event_id": "x", "member_id": "bob"}
TORN = {"type": "InMailRead", "event_id": "y"}


async def skip(world: World, member_id: str, seq: int) -> int:
    """An operator's skip of the event at ``seq``, recorded as the service records it."""
    event = EventSkipped(
        event_id=f"skip{seq}",
        occurred_at=T0,
        command_id=f"skip-{seq}",
        member_id=member_id,
        seq=seq,
        reason="a newer version wrote it",
        operator="ops",
    )
    return await world.append_raw(member_id, msgspec.to_builtins(event) | {"type": "EventSkipped"})


async def test_an_unreadable_event_is_quarantined_by_every_projection_and_they_go_on(
    store: JetStreamEventStore, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    world = World(store)
    await world.register("alice", "recruiter")
    await world.register("bob")
    torn = await world.append_raw("alice", TORN)
    unknown = await world.append_raw("bob", UNKNOWN_TYPE)
    sent = await world.send("alice", "bob", at=T0 + DAY)
    with caplog.at_level(logging.WARNING, logger="inmail.projections"):
        async with running(store, sqlite_url) as (projections, service):
            await caught_up(projections, world.last_seq)
            health = await data(service, "Health")
            inbox = await data(service, "Inbox", member_id="bob", box="received")
    assert projections.problems() == {}
    assert [item["inmail_id"] for item in inbox["items"]] == [sent.inmail_id]
    assert health["status"] == "degraded"
    assert health["quarantined"] == [
        {"seq": torn, "subject": "inmail.evt.member.alice", "error": "InMailRead: inmail_id is required"},
        {
            "seq": unknown,
            "subject": "inmail.evt.member.bob",
            "error": "unknown event type 'MemberTeleported' (written by a newer version?)",
        },
    ]
    assert any(f"seq {unknown} (inmail.evt.member.bob) quarantined" in r.getMessage() for r in caplog.records)


async def test_a_recorded_skip_resolves_it_and_every_replay_passes_over_it_the_same_way(
    store: JetStreamEventStore, sqlite_url: str
) -> None:
    world = World(store)
    await world.register("alice", "recruiter")
    await world.register("bob")
    unknown = await world.append_raw("bob", UNKNOWN_TYPE)
    async with running(store, sqlite_url) as (projections, service):
        await caught_up(projections, unknown)
        assert [q["seq"] for q in (await data(service, "Health"))["quarantined"]] == [unknown]
        skipped = await skip(world, "bob", unknown)
        await world.send("alice", "bob", at=T0 + DAY)
        await caught_up(projections, world.last_seq)
        health = await data(service, "Health")
        before = await everything(service, world.members, [T0, T0 + DAY])
        await projections.reset(None)
        await caught_up(projections, world.last_seq)
        assert await everything(service, world.members, [T0, T0 + DAY]) == before
        again = await data(service, "Health")
    assert skipped < world.last_seq
    assert (health["status"], health["quarantined"]) == ("ok", [])
    assert (again["status"], again["quarantined"]) == ("ok", [])
