"""CreditBalance (now and ``at`` a past time) and CreditLedger (newest first, with provenance)."""

from __future__ import annotations

from contracts.events import CreditRefunded, InMailReplied
from eventstore import JetStreamEventStore
from tests.integration.projections.support import ask, caught_up, data, pages, running
from tests.integration.projections.world import DAY, T0, World


async def test_ledger_names_the_inmail_and_the_response_that_earned_each_refund(
    store: JetStreamEventStore, sqlite_url: str
) -> None:
    world = World(store)
    await world.register("alice", "premium_business")
    await world.register("bob")
    mails = [await world.send("alice", "bob", at=T0 + n * DAY) for n in (1, 2, 3)]
    decided = await world.reply(mails[0].inmail_id, at=T0 + 4 * DAY)
    [reply] = [e for e in decided if isinstance(e, InMailReplied)]
    [refund] = [e for e in decided if isinstance(e, CreditRefunded)]

    async with running(store, sqlite_url) as (projections, service):
        await caught_up(projections, world.last_seq)
        balance = await data(service, "CreditBalance", member_id="alice")
        ledger = await data(service, "CreditLedger", member_id="alice")

    assert balance == {
        "member_id": "alice",
        "tier": "premium_business",
        "balance": 13,
        "monthly_allotment": 15,
        "cap": 45,
        "granted": 15,
        "spent": 3,
        "refunded": 1,
        "forfeited": 0,
    }
    entries = ledger["entries"]
    assert [(e["reason"], e["delta"], e["balance_after"]) for e in entries] == [
        ("refund", 1, 13),
        ("send", -1, 12),
        ("send", -1, 13),
        ("send", -1, 14),
        ("refresh", 15, 15),
    ]
    assert entries[0]["inmail_id"] == mails[0].inmail_id
    assert entries[0]["response_event_id"] == reply.event_id == refund.response_event_id
    assert [e.get("inmail_id") for e in entries[1:4]] == [m.inmail_id for m in reversed(mails)]
    assert "response_event_id" not in entries[1] and "inmail_id" not in entries[4]
    assert entries[0]["seq"] == world.last_seq
    assert ledger["next"] is None


async def test_refresh_cap_and_tier_changes_move_credits_and_balance_at_answers_the_past(
    store: JetStreamEventStore, sqlite_url: str
) -> None:
    world = World(store)
    await world.register("alice", "premium_career", at=T0)  # January: 5
    await world.register("bob", at=T0)
    await world.refresh("alice", "2026-02", at=T0 + 30 * DAY)  # 10
    await world.refresh("alice", "2026-04", at=T0 + 90 * DAY)  # March 15, April 20 -> cap 15, forfeit 5
    await world.send("alice", "bob", at=T0 + 91 * DAY)  # 14
    await world.change_tier("alice", "sales_navigator", at=T0 + 92 * DAY)  # forfeit 14, grant 50
    await world.change_tier("alice", "free", at=T0 + 93 * DAY)  # forfeit 50, grant 0

    async with running(store, sqlite_url) as (projections, service):
        await caught_up(projections, world.last_seq)
        ledger = await pages(service, "CreditLedger", "entries", member_id="alice", limit=2)
        now = await data(service, "CreditBalance", member_id="alice")
        then = {
            day: await data(service, "CreditBalance", member_id="alice", at=T0 + day * DAY)
            for day in (0, 45, 90.5, 92.5)
        }
        before_registration = await ask(service, "CreditBalance", member_id="alice", at=T0 - DAY)
        unknown = await ask(service, "CreditBalance", member_id="nobody")
        unknown_ledger = await ask(service, "CreditLedger", member_id="nobody")
        inbox_cursor = await data(service, "Inbox", member_id="bob", box="received", limit=1)
        wrong_cursor = await ask(service, "CreditLedger", member_id="alice", before="aW5ib3g6MTox")

    assert [(e["reason"], e["delta"], e["balance_after"]) for e in ledger] == [
        ("tier_change", -50, 0),
        ("tier_change", 50, 50),
        ("tier_change", -14, 0),
        ("send", -1, 14),
        ("forfeit", -5, 15),
        ("refresh", 5, 20),
        ("refresh", 5, 15),
        ("refresh", 5, 10),
        ("refresh", 5, 5),
    ]
    assert now == {
        "member_id": "alice",
        "tier": "free",
        "balance": 0,
        "monthly_allotment": 0,
        "cap": 0,
        "granted": 70,
        "spent": 1,
        "refunded": 0,
        "forfeited": 69,
    }
    assert (then[0]["balance"], then[0]["tier"]) == (5, "premium_career")
    assert (then[45]["balance"], then[45]["granted"]) == (10, 10)
    assert (then[90.5]["balance"], then[90.5]["forfeited"]) == (15, 5)
    assert then[92.5] == {
        "member_id": "alice",
        "tier": "sales_navigator",
        "balance": 50,
        "monthly_allotment": 50,
        "cap": 150,
        "granted": 70,
        "spent": 1,
        "refunded": 0,
        "forfeited": 19,
    }
    assert before_registration["error"]["code"] == "UNKNOWN_MEMBER"
    assert unknown["error"]["code"] == unknown_ledger["error"]["code"] == "UNKNOWN_MEMBER"
    assert inbox_cursor["next"] is None
    assert wrong_cursor["error"]["code"] == "INVALID_QUERY"


async def test_a_free_member_has_a_balance_from_registration_and_an_empty_ledger(
    store: JetStreamEventStore, sqlite_url: str
) -> None:
    world = World(store)
    await world.register("fred", "free", at=T0)
    async with running(store, sqlite_url) as (projections, service):
        await caught_up(projections, world.last_seq)
        at_registration = await data(service, "CreditBalance", member_id="fred", at=T0)
        ledger = await data(service, "CreditLedger", member_id="fred")
    assert (at_registration["tier"], at_registration["balance"], at_registration["cap"]) == ("free", 0, 0)
    assert ledger == {"entries": [], "next": None}
