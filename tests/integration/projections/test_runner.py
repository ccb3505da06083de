"""The checkpointed runner: read-your-writes, failing alone, exactly once through crashes, replay."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path

import msgspec
import psycopg
import pytest

from contracts.events import CreditsForfeited
from eventstore import JetStreamEventStore, StoredMessage
from inmail.natsserver import EmbeddedNatsServer
from projections.catalogue import CATALOGUE
from projections.runner import Projections
from tests.integration.projections.conftest import POSTGRES
from tests.integration.projections.support import (
    CATCH_UP,
    SimulatedCrash,
    SlowCredits,
    ask,
    catalogue_with,
    caught_up,
    crashing,
    data,
    everything,
    running,
)
from tests.integration.projections.world import DAY, T0, World, populate

TIMES = [T0 + n * 15 * DAY for n in range(-1, 14)]


async def populated(store: JetStreamEventStore, **options: int) -> World:
    world = World(store)
    await populate(world, **options)
    return world


async def answers_of(
    store: JetStreamEventStore, url: str, world: World, **options: object
) -> dict[str, object]:
    async with running(store, url, **options) as (projections, service):
        await caught_up(projections, world.last_seq)
        return await everything(service, world.members, TIMES)


# read your writes --------------------------------------------------------------------


async def test_a_query_with_min_seq_waits_for_that_event_and_says_as_of_what(
    store: JetStreamEventStore, sqlite_url: str
) -> None:
    world = World(store)
    await world.register("alice", "recruiter")
    await world.register("bob")
    async with running(store, sqlite_url) as (projections, service):
        await caught_up(projections, world.last_seq)
        sent = await world.send("alice", "bob", at=T0 + DAY)
        seq = world.last_seq
        reply = await ask(service, "Inbox", member_id="bob", box="received", min_seq=seq)
        balance = await ask(service, "CreditBalance", member_id="alice", min_seq=seq)
        health = await ask(service, "Health", min_seq=seq)
    assert reply["as_of_seq"] >= seq
    assert [item["inmail_id"] for item in reply["data"]["items"]] == [sent.inmail_id]
    assert balance["data"]["spent"] == 1 and balance["as_of_seq"] >= seq
    assert health["data"]["status"] == "ok"
    assert health["data"]["stream_seq"] == seq
    assert health["data"]["projections"] == {
        "inbox": seq, "credits": seq, "response_stats": seq, "enforcement": seq
    }


async def test_a_min_seq_the_read_model_does_not_reach_in_time_is_unavailable(
    store: JetStreamEventStore, sqlite_url: str
) -> None:
    world = World(store)
    await world.register("alice")
    async with running(store, sqlite_url) as (projections, service):
        await caught_up(projections, world.last_seq)
        service.min_seq_timeout = 0.2
        reply = await ask(service, "CreditBalance", member_id="alice", min_seq=world.last_seq + 100)
        invalid = await ask(service, "CreditBalance", member_id="alice", min_seq=-1)
    assert reply["ok"] is False and reply["error"]["code"] == "UNAVAILABLE"
    assert f"credits at {world.last_seq}" in reply["error"]["message"]
    assert invalid["error"]["code"] == "INVALID_QUERY" and "min_seq" in invalid["error"]["message"]


# failing alone ------------------------------------------------------------------------


async def test_a_projection_that_cannot_apply_an_event_stops_there_and_the_others_carry_on(
    store: JetStreamEventStore, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    world = World(store)
    await world.register("alice", "recruiter")
    await world.register("bob")
    await world.send("alice", "bob", at=T0 + DAY)
    bad = await world.append_raw(
        "ghost",
        msgspec.structs.asdict(
            CreditsForfeited(
                event_id="bad",
                occurred_at=T0 + DAY,
                command_id="c",
                member_id="ghost",
                amount=3,
                reason="tier_change",
            )
        )
        | {"type": "CreditsForfeited"},
    )
    after = await world.send("alice", "bob", at=T0 + 2 * DAY)

    with caplog.at_level(logging.ERROR, logger="inmail.projections"):
        async with running(store, sqlite_url) as (projections, service):
            await caught_up(projections, world.last_seq, ["inbox", "response_stats"])
            health = await data(service, "Health")
            unavailable = await ask(service, "CreditBalance", member_id="alice", min_seq=world.last_seq)
            inbox = await data(service, "Inbox", member_id="bob", box="received")
            stale = await ask(service, "CreditBalance", member_id="alice")
    # Stopped exactly before the bad event, having applied everything before it.
    assert projections.positions() == {
        "inbox": world.last_seq,
        "credits": bad - 1,
        "response_stats": world.last_seq,
        "enforcement": world.last_seq,
    }
    assert health["status"] == "degraded"
    assert health["problems"] == {
        "credits": f"stopped at seq {bad}: CreditsForfeited for unknown member ghost"
    }
    assert unavailable["error"]["code"] == "UNAVAILABLE"
    assert "stopped at seq" in unavailable["error"]["message"]
    assert inbox["items"][0]["inmail_id"] == after.inmail_id
    assert stale["as_of_seq"] == bad - 1 and stale["data"]["spent"] == 1
    assert any(f"stopped at seq {bad}" in record.getMessage() for record in caplog.records)

    # It never skips the event: not after a restart, not after a replay.
    async with running(store, sqlite_url) as (projections, service):
        await caught_up(projections, world.last_seq, ["inbox"])
        assert not await projections.wait_for(bad, 0.5, ["credits"])
        assert projections.problems()["credits"].startswith(f"stopped at seq {bad}")
        await projections.reset(["credits"])
        assert not await projections.wait_for(bad, CATCH_UP, ["credits"])
        assert projections.positions()["credits"] == bad - 1


# exactly once -------------------------------------------------------------------------


async def test_a_crash_in_the_middle_of_a_batch_then_a_restart_ends_as_a_clean_run(
    store: JetStreamEventStore, sqlite_url: str, tmp_path: Path
) -> None:
    world = await populated(store, steps=200)
    clean = await answers_of(store, f"sqlite:///{tmp_path / 'clean.db'}", world)

    for name in ("credits", "inbox"):
        dying = catalogue_with(**{name: crashing(CATALOGUE[name], after_batches=1)})
        # On a thread: the crash is raised in this process, where the test can see it.
        projections = Projections(store, sqlite_url, catalogue=dying, writer="thread", batch_size=40)
        await projections.start()
        with pytest.raises(SimulatedCrash):
            await asyncio.wait_for(projections.join(), CATCH_UP)
        assert 0 < projections.positions()[name] < world.last_seq
        await projections.stop()

    assert await answers_of(store, sqlite_url, world) == clean


async def test_kill_9_in_the_middle_of_a_rebuild_then_a_restart_ends_as_a_clean_run(
    store: JetStreamEventStore, private_nats: EmbeddedNatsServer, sqlite_url: str, tmp_path: Path
) -> None:
    world = await populated(store, steps=200)
    clean = await answers_of(store, f"sqlite:///{tmp_path / 'clean.db'}", world)
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.projections.rebuild_worker",
        private_nats.url,
        str(private_nats.creds("service")),
        sqlite_url,
        stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parents[3],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])},
    )
    assert worker.stdout is not None
    try:
        while True:
            line = await asyncio.wait_for(worker.stdout.readline(), CATCH_UP)
            assert line, "the worker ended"
            if json.loads(line)["credits"] >= world.last_seq // 3:
                break
    finally:
        worker.send_signal(signal.SIGKILL)
        await worker.wait()

    async with running(store, sqlite_url) as (projections, _service):
        # The killed run left credits somewhere in the middle, committed batches only.
        assert 0 < projections.positions()["credits"] < world.last_seq
    assert await answers_of(store, sqlite_url, world) == clean


async def test_a_killed_writer_process_is_started_again_and_the_result_is_a_clean_run(
    store: JetStreamEventStore, sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    world = await populated(store, steps=200)
    clean = await answers_of(store, f"sqlite:///{tmp_path / 'clean.db'}", world)
    slow = catalogue_with(credits=SlowCredits)
    async with running(store, sqlite_url, catalogue=slow, batch_size=10) as (projections, service):
        first = projections.writer_pid
        assert first is not None
        assert await projections.wait_for(world.last_seq // 3, CATCH_UP, ["credits"])
        os.kill(first, signal.SIGKILL)
        await caught_up(projections, world.last_seq)
        assert projections.writer_pid not in (None, first)
        assert projections.problems() == {}
        # Revived, and said so: an operator reading the log sees the writer died.
        assert "the writer process ended" in caplog.text and "starting it again" in caplog.text
        assert await everything(service, world.members, TIMES) == clean


async def test_events_delivered_again_are_ignored(store: JetStreamEventStore, sqlite_url: str) -> None:
    world = await populated(store, steps=120)
    async with running(store, sqlite_url) as (projections, service):
        await caught_up(projections, world.last_seq)
        before = await everything(service, world.members, TIMES)
        stored = await store.read_range(1, limit=world.last_seq)
        await projections.apply(stored)
        await projections.apply(stored[len(stored) // 2 :])
        assert projections.positions() == dict.fromkeys(projections.names, world.last_seq)
        assert await everything(service, world.members, TIMES) == before
        beyond = StoredMessage(seq=world.last_seq + 5, subject=stored[0].subject, data=stored[0].data)
        with pytest.raises(ValueError, match="after position"):
            await projections.apply([beyond])


# replay -------------------------------------------------------------------------------


async def test_replay_rebuilds_identical_answers(store: JetStreamEventStore, sqlite_url: str) -> None:
    world = await populated(store, steps=200)
    async with running(store, sqlite_url) as (projections, service):
        await caught_up(projections, world.last_seq)
        first = await everything(service, world.members, TIMES)
        from_seq, target = await projections.reset(None)
        assert (from_seq, target) == (1, world.last_seq)
        await caught_up(projections, target)
        assert await everything(service, world.members, TIMES) == first
        await projections.reset(["credits"])
        await caught_up(projections, target)
        assert await everything(service, world.members, TIMES) == first


async def test_replay_from_a_later_seq_ignores_the_events_before_it(
    store: JetStreamEventStore, sqlite_url: str
) -> None:
    world = World(store)
    await world.register("alice", "recruiter")
    await world.register("bob")
    old = await world.send("alice", "bob", at=T0 + DAY)
    start = world.last_seq + 1
    await world.register("carol", "premium_career")
    new = await world.send("alice", "bob", at=T0 + 2 * DAY)
    await world.reply(old.inmail_id, at=T0 + 3 * DAY)
    await world.send("carol", "bob", at=T0 + 4 * DAY)
    async with running(store, sqlite_url) as (projections, service):
        await caught_up(projections, world.last_seq)
        await projections.reset(None, from_seq=start)
        await caught_up(projections, world.last_seq)
        received = await data(service, "Inbox", member_id="carol", box="sent")
        bob = await ask(service, "Inbox", member_id="bob", box="received")
        alice = await ask(service, "CreditBalance", member_id="alice")
        carol = await data(service, "CreditBalance", member_id="carol")
        stats = await data(service, "ResponseStats")
    assert projections.problems() == {}
    assert len(received["items"]) == 1
    # Members registered before ``start`` are unknown to the rebuilt read models.
    assert bob["error"]["code"] == alice["error"]["code"] == "UNKNOWN_MEMBER"
    assert carol["spent"] == 1
    assert (stats["sent"], stats["replied"]) == (2, 0)
    assert new.inmail_id


# PostgreSQL ---------------------------------------------------------------------------


@pytest.mark.postgres
async def test_sqlite_and_postgresql_give_identical_answers(
    store: JetStreamEventStore, sqlite_url: str, postgres_url: str
) -> None:
    world = await populated(store, steps=250)
    assert await answers_of(store, postgres_url, world) == await answers_of(store, sqlite_url, world)


@pytest.mark.postgres
async def test_two_workers_on_one_postgresql_store_apply_every_batch_once(
    store: JetStreamEventStore, sqlite_url: str, postgres_url: str
) -> None:
    world = await populated(store, steps=250)
    expected = await answers_of(store, sqlite_url, world)
    async with (
        running(store, postgres_url, batch_size=7) as (first, service),
        running(store, postgres_url, batch_size=11) as (second, _),
    ):
        await caught_up(first, world.last_seq)
        await caught_up(second, world.last_seq)
        assert await everything(service, world.members, TIMES) == expected
        # A replay by one worker moves the other one back too (the epoch fence).
        await second.reset(["credits"])
        await caught_up(first, world.last_seq)
        await caught_up(second, world.last_seq)
        assert await everything(service, world.members, TIMES) == expected
    assert first.problems() == second.problems() == {}


@pytest.mark.postgres
async def test_lost_postgresql_connections_are_retried_not_taken_for_bad_events(
    store: JetStreamEventStore, sqlite_url: str, postgres_url: str
) -> None:
    world = World(store)
    await world.register("alice", "recruiter")
    await world.register("bob")
    async with running(store, postgres_url) as (projections, service):
        await caught_up(projections, world.last_seq)
        schema = postgres_url.rsplit("schema=", 1)[1]
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
                (f"inmail-projections:{schema}",),
            ).fetchone()
        assert killed is not None and killed[0] >= 1
        await world.send("alice", "bob", at=T0 + DAY)
        await populate(world, members=6, steps=60, seed=3)
        await caught_up(projections, world.last_seq)
        assert projections.problems() == {}
        answers = await everything(service, world.members, TIMES)
    assert answers == await answers_of(store, sqlite_url, world)
