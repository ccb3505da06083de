"""ResponseStats: counts and rates, the 30-day window, and every filter."""

from __future__ import annotations

from eventstore import JetStreamEventStore
from tests.integration.projections.support import caught_up, data, running
from tests.integration.projections.world import DAY, T0, World

NOTHING = {
    "sent": 0,
    "charged": 0,
    "read": 0,
    "replied": 0,
    "declined": 0,
    "responded": 0,
    "responded_30d": 0,
    "refunded": 0,
    "response_rate": 0.0,
    "response_rate_30d": 0.0,
    "read_rate": 0.0,
}


async def test_responses_count_once_per_inmail_and_the_30_day_window_uses_the_first_response(
    store: JetStreamEventStore, sqlite_url: str
) -> None:
    world = World(store)
    await world.register("alice", "recruiter")
    await world.register("carol", "sales_navigator")
    for name in ("bob", "dave", "erin", "fay"):
        await world.register(name)
    await world.connect("carol", "dave")
    quick = await world.send("alice", "bob", at=T0 + DAY)
    late = await world.send("alice", "dave", at=T0 + DAY)
    very_late = await world.send("alice", "erin", at=T0 + DAY)
    unanswered = await world.send("alice", "fay", at=T0 + DAY)
    free = await world.send("carol", "dave", at=T0 + 2 * DAY)
    await world.read(quick.inmail_id, at=T0 + 2 * DAY)
    await world.read(unanswered.inmail_id, at=T0 + 2 * DAY)
    await world.reply(quick.inmail_id, at=T0 + 11 * DAY)  # 10 days: in the window, refunded
    await world.decline(late.inmail_id, at=T0 + 32 * DAY)  # 31 days: refunded, not in the window
    await world.reply(very_late.inmail_id, at=T0 + 96 * DAY)  # 95 days: no refund
    await world.decline(free.inmail_id, at=T0 + 3 * DAY)  # free: responded, nothing to refund
    await world.reply(free.inmail_id, at=T0 + 4 * DAY)  # a change of mind: still one response

    async with running(store, sqlite_url) as (projections, service):
        await caught_up(projections, world.last_seq)
        everyone = await data(service, "ResponseStats")
        alice = await data(service, "ResponseStats", sender_id="alice")
        carol = await data(service, "ResponseStats", sender_id="carol")

    assert everyone == {
        "sent": 5,
        "charged": 4,
        "read": 2,
        "replied": 3,
        "declined": 2,
        "responded": 4,
        "responded_30d": 2,
        "refunded": 2,
        "response_rate": 0.8,
        "response_rate_30d": 0.4,
        "read_rate": 0.4,
    }
    assert alice == {
        "sent": 4,
        "charged": 4,
        "read": 2,
        "replied": 2,
        "declined": 1,
        "responded": 3,
        "responded_30d": 1,
        "refunded": 2,
        "response_rate": 0.75,
        "response_rate_30d": 0.25,
        "read_rate": 0.5,
    }
    assert (carol["sent"], carol["charged"], carol["responded"], carol["responded_30d"]) == (1, 0, 1, 1)
    assert (carol["replied"], carol["declined"], carol["refunded"]) == (1, 1, 0)


async def test_stats_filter_by_sender_tier_at_send_time_kind_template_and_sent_time(
    store: JetStreamEventStore, sqlite_url: str
) -> None:
    world = World(store)
    await world.register("alice", "premium_business")
    await world.register("bob")
    await world.send("alice", "bob", at=T0 + DAY, kind="talent_pipeline", template_id="t1")
    await world.send("alice", "bob", at=T0 + 2 * DAY, kind="sales_prospecting", template_id="t2")
    await world.change_tier("alice", "recruiter", at=T0 + 3 * DAY)
    await world.send("alice", "bob", at=T0 + 4 * DAY, kind="talent_pipeline", template_id="t2")
    await world.send("alice", "bob", at=T0 + 5 * DAY)

    async with running(store, sqlite_url) as (projections, service):
        await caught_up(projections, world.last_seq)

        async def sent(**filters: object) -> int:
            answer = await data(service, "ResponseStats", **filters)
            return int(answer["sent"])

        assert await sent(tier="premium_business") == 2
        assert await sent(tier="recruiter") == 2
        assert await sent(kind="talent_pipeline") == 2
        assert await sent(template_id="t2") == 2
        assert await sent(kind="talent_pipeline", template_id="t2", tier="recruiter") == 1
        # since is inclusive, until exclusive: adjacent windows never count one InMail twice.
        assert await sent(since=T0 + DAY, until=T0 + 2 * DAY) == 1
        assert await sent(since=T0 + 2 * DAY, until=T0 + 5 * DAY) == 2
        assert await sent(since=T0 + 5 * DAY) == 1
        assert await sent(sender_id="bob") == 0
        assert await data(service, "ResponseStats", sender_id="bob") == NOTHING
        assert await data(service, "ResponseStats", template_id="none-such") == NOTHING
