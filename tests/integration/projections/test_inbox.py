"""The Inbox query: received and sent boxes, status filter, newest first, cursor pagination."""

from __future__ import annotations

from eventstore import JetStreamEventStore
from tests.integration.projections.support import ask, ask_raw, caught_up, data, pages, running
from tests.integration.projections.world import DAY, T0, World


def rfc3339(moment: object) -> str:
    text = moment.isoformat()  # type: ignore[attr-defined]
    return str(text).replace("+00:00", "Z")


async def test_inbox_shows_each_inmail_with_names_status_and_times(
    store: JetStreamEventStore, sqlite_url: str
) -> None:
    world = World(store)
    await world.register("alice", "recruiter", display_name="Alice Recruiter")
    await world.register("bob", display_name="Bob Candidate")
    await world.register("carol", "premium_career", open_profile=True, display_name="Carol Open")
    first = await world.send("alice", "bob", at=T0 + DAY, subject="Role", body="Join us", template_id="t1")
    free = await world.send("alice", "carol", at=T0 + 2 * DAY, kind="event_invitation")
    await world.read(first.inmail_id, at=T0 + 3 * DAY)
    await world.acknowledge(first.inmail_id, at=T0 + 4 * DAY)
    await world.decline(first.inmail_id, at=T0 + 5 * DAY)
    await world.reply(first.inmail_id, at=T0 + 6 * DAY)

    async with running(store, sqlite_url) as (projections, service):
        await caught_up(projections, world.last_seq)
        received = await data(service, "Inbox", member_id="bob", box="received")
        sent = await data(service, "Inbox", member_id="alice", box="sent")

    assert received == {
        "items": [
            {
                "inmail_id": first.inmail_id,
                "sender_id": "alice",
                "sender_name": "Alice Recruiter",
                "recipient_id": "bob",
                "recipient_name": "Bob Candidate",
                "subject": "Role",
                "body": "Join us",
                "kind": "recruiter_outreach",
                # A reply after a decline: replied, responded at the decline, refunded once.
                "status": "replied",
                "charged": True,
                "refunded": True,
                "follow_up_of": None,
                "sent_at": rfc3339(T0 + DAY),
                "read_at": rfc3339(T0 + 3 * DAY),
                "acknowledged_at": rfc3339(T0 + 4 * DAY),
                "responded_at": rfc3339(T0 + 5 * DAY),
                "free_reason": None,
                "template_id": "t1",
                "scheduled_for": None,
                "cancelled_reason": None,
            }
        ],
        "next": None,
    }
    assert [item["inmail_id"] for item in sent["items"]] == [free.inmail_id, first.inmail_id]
    newest = sent["items"][0]
    assert (newest["charged"], newest["free_reason"], newest["status"], newest["recipient_name"]) == (
        False,
        "open_profile",
        "sent",
        "Carol Open",
    )
    assert "email" not in str(received) + str(sent)


async def test_inbox_filters_by_status_and_pages_newest_first_with_an_opaque_cursor(
    store: JetStreamEventStore, sqlite_url: str
) -> None:
    world = World(store)
    await world.register("alice", "sales_navigator")
    await world.register("bob")
    mails = [await world.send("alice", "bob", at=T0 + n * DAY) for n in range(1, 8)]
    for mail in mails[::2]:
        await world.read(mail.inmail_id, at=T0 + 10 * DAY)
    await world.decline(mails[1].inmail_id, at=T0 + 11 * DAY)
    follow_up = await world.send("alice", "bob", at=T0 + 12 * DAY, follow_up_of=mails[3].inmail_id)

    async with running(store, sqlite_url) as (projections, service):
        await caught_up(projections, world.last_seq)
        first_page = await data(service, "Inbox", member_id="bob", box="received", limit=3)
        everything = await pages(service, "Inbox", "items", member_id="bob", box="received", limit=3)
        read = await pages(service, "Inbox", "items", member_id="bob", box="received", status="read", limit=2)
        declined = await data(service, "Inbox", member_id="bob", box="received", status="declined")
        nothing_sent_to_alice = await data(service, "Inbox", member_id="alice", box="received")

    newest_first = [follow_up.inmail_id] + [m.inmail_id for m in reversed(mails)]
    assert [i["inmail_id"] for i in first_page["items"]] == newest_first[:3]
    assert first_page["next"] and "alice" not in first_page["next"]
    assert [i["inmail_id"] for i in everything] == newest_first
    assert everything[0]["follow_up_of"] == mails[3].inmail_id
    assert [i["inmail_id"] for i in read] == [m.inmail_id for m in reversed(mails[::2])]
    assert [i["inmail_id"] for i in declined["items"]] == [mails[1].inmail_id]
    assert nothing_sent_to_alice == {"items": [], "next": None}


async def test_inbox_refuses_malformed_queries_naming_the_field(
    store: JetStreamEventStore, sqlite_url: str
) -> None:
    world = World(store)
    await world.register("bob")
    async with running(store, sqlite_url) as (projections, service):
        await caught_up(projections, world.last_seq)
        bad_limit = await ask(service, "Inbox", member_id="bob", box="received", limit=0)
        bad_box = await ask(service, "Inbox", member_id="bob", box="spam")
        unknown_field = await ask(service, "Inbox", member_id="bob", box="sent", colour="red")
        bad_cursor = await ask(service, "Inbox", member_id="bob", box="sent", before="bm90LWEtY3Vyc29y")
        unknown_member = await ask(service, "Inbox", member_id="nobody", box="sent")
        not_json = await ask_raw(service, "Inbox", b"{not json")
    assert bad_limit["error"]["code"] == "INVALID_QUERY" and "limit" in bad_limit["error"]["message"]
    assert bad_box["error"]["code"] == "INVALID_QUERY" and "box" in bad_box["error"]["message"]
    assert "colour" in unknown_field["error"]["message"]
    assert bad_cursor["error"]["code"] == "INVALID_QUERY" and "before" in bad_cursor["error"]["message"]
    assert unknown_member["error"]["code"] == "UNKNOWN_MEMBER"
    assert not_json["error"]["code"] == "INVALID_QUERY" and "not JSON" in not_json["error"]["message"]
