"""The monthly refresh: every member once per month, across runs and restarts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contracts import commands as c
from contracts.types import month_of
from inmail.natsserver import EmbeddedNatsServer
from services.executor import CommandExecutor, CommandSettings
from services.monthly_refresh import BUCKET, DONE_KEY, MonthlyRefresh, member_ids, refresh_command_id
from services.repository import MemberRepository
from tests.integration.clock import ShiftedClock, at_any_time
from tests.integration.commands_env import Env, command_env, new_id
from tests.integration.service_env import client_for, running_service, settings_for

MARCH = datetime(2026, 3, 1, 0, 5, tzinfo=UTC)


@pytest.fixture
async def env(nats_server: EmbeddedNatsServer) -> AsyncIterator[Env]:
    async with command_env(nats_server) as environment:
        yield environment
        with contextlib.suppress(Exception):
            await environment.store.js.delete_key_value(BUCKET)


def scheduler_for(env: Env) -> MonthlyRefresh:
    executor = CommandExecutor(
        MemberRepository(env.store), env.contacts, CommandSettings(), clock=lambda: MARCH
    )
    return MonthlyRefresh(executor, env.store, clock=lambda: MARCH, check_every=0.05)


async def register_in_january(env: Env, tier: str) -> str:
    member_id = new_id("m")
    await env.ok(
        c.RegisterMember(
            command_id=new_id("reg"),
            member_id=member_id,
            display_name="M",
            email="m@e.io",
            tier=tier,  # type: ignore[arg-type]
            occurred_at=datetime(2026, 1, 10, tzinfo=UTC),
        )
    )
    return member_id


async def test_a_month_refreshes_every_member_once_catching_up_skipped_months(env: Env) -> None:
    members = [await register_in_january(env, tier) for tier in ("premium_career", "recruiter", "free")]
    assert sorted([m async for m in member_ids(env.store)]) == sorted(members)
    refresh = scheduler_for(env)
    assert await refresh.refresh_month("2026-03") == 0
    before = await env.store.last_seq()
    assert await scheduler_for(env).refresh_month("2026-03") == 0
    assert await env.store.last_seq() == before, "a second run wrote again"
    for member_id in members:
        months = [e["month"] for e in await env.events_of(member_id) if e["type"] == "CreditsRefreshed"]
        assert months == ["2026-02", "2026-03"]
        commands = {
            e["command_id"] for e in await env.events_of(member_id) if e["type"] == "CreditsRefreshed"
        }
        assert commands == {refresh_command_id("2026-03", member_id)}
    [career] = [e for e in await env.events_of(members[0]) if e.get("month") == "2026-03"]
    assert career["granted"] == 5 and career["forfeited"] == 0


async def done_month(env: Env, month: str) -> bool:
    """Whether the scheduler records ``month`` as done within 10 s."""
    for _ in range(200):
        await asyncio.sleep(0.05)
        try:
            kv = await env.store.js.key_value(BUCKET)
            if (await kv.get(DONE_KEY)).value == month.encode():
                return True
        except Exception:
            continue
    return False


async def test_the_running_scheduler_remembers_the_month_it_finished(env: Env) -> None:
    member_id = await register_in_january(env, "premium_business")
    first = asyncio.create_task(scheduler_for(env).run())
    finished = await done_month(env, "2026-03")
    first.cancel()
    assert finished
    refreshed = await env.store.last_seq()
    # A restart in the same month finds the month done and walks no member again.
    second = asyncio.create_task(scheduler_for(env).run())
    await asyncio.sleep(0.3)
    second.cancel()
    assert await env.store.last_seq() == refreshed
    assert [e["month"] for e in await env.events_of(member_id) if e["type"] == "CreditsRefreshed"] == [
        "2026-02",
        "2026-03",
    ]


@at_any_time
async def test_the_service_refreshes_and_stamps_commands_by_its_own_clock(
    env: Env, nats_server: EmbeddedNatsServer, tmp_path: Path, clock: ShiftedClock
) -> None:
    settings = settings_for(nats_server, tmp_path, scheduler=True, projections=False, clock=clock)
    async with running_service(settings), client_for(nats_server) as client:
        assert await done_month(env, month_of(clock()))
        before = clock()
        member_id = await client.register()
        after = clock()
    registered, *_ = await env.events_of(member_id)
    assert before <= datetime.fromisoformat(registered["occurred_at"]) <= after


def test_refresh_command_ids_fit_the_id_rules_even_for_long_member_ids() -> None:
    long_id = "m" * 64
    command_id = refresh_command_id("2026-03", long_id)
    assert len(command_id) <= 64 and command_id != refresh_command_id("2026-03", "m" * 63 + "n")
