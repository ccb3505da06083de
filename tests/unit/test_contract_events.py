"""The wire contract of events: every type round-trips, carries its header, and evolves safely."""

from __future__ import annotations

import typing
from datetime import timedelta
from typing import Any

import msgspec
import pytest

from contracts import events, queries, replies
from contracts.events import EVENT_TYPES, UPCASTERS, decode_event, encode_event
from contracts.policy import CURRENT_POLICY
from tests.unit.wire import T, encode

HEADER: dict[str, Any] = {"event_id": "ev-1", "occurred_at": T, "command_id": "cmd-1"}
IDS: dict[str, Any] = {"inmail_id": "1-x", "sender_id": "alice", "recipient_id": "bob"}
EXAMPLE_EVENTS: list[events.Event] = [
    events.MemberRegistered(**HEADER, member_id="alice", display_name="Alice", tier="recruiter",
                            open_profile=True, inmail_opt_out=False, month="2026-01", granted=150),
    events.TierChanged(**HEADER, member_id="alice", old_tier="free", tier="recruiter", month="2026-01",
                       granted=150),
    events.PreferencesUpdated(**HEADER, member_id="alice", open_profile=False, inmail_opt_out=True),
    events.MembersConnected(**HEADER, member_id="alice", other_member_id="bob"),
    events.MemberBlocked(**HEADER, member_id="alice", blocked_member_id="bob"),
    events.CreditsRefreshed(**HEADER, member_id="alice", month="2026-02", tier="recruiter", granted=150,
                            forfeited=3),
    events.CreditsForfeited(**HEADER, member_id="alice", amount=7, reason="tier_change"),
    events.InMailSent(**HEADER, **IDS, sender_tier="recruiter", subject="Ré", body="😀 hi",
                      kind="sales_prospecting", charged=False, template_id="t-1", follow_up_of="1-w",
                      free_reason="connection", bulk=True),
    events.InMailRead(**HEADER, **IDS),
    events.InMailAcknowledged(**HEADER, **IDS),
    events.InMailReplied(**HEADER, **IDS, body="Yes"),
    events.InMailDeclined(**HEADER, **IDS, reason="Not now"),
    events.CreditRefunded(**HEADER, member_id="alice", inmail_id="1-x", response_event_id="ev-0"),
    events.EventSkipped(**HEADER, member_id="alice", seq=7, reason="unreadable", operator="ops"),
    events.InMailScheduled(**HEADER, **IDS, sender_tier="recruiter", subject="Later", body="Hi",
                           kind="talent_pipeline", charged=True, send_at=T + timedelta(days=2),
                           automated_follow_up=events.FollowUpPlan(inmail_id="1-y", after_days=7,
                                                                   subject="Again", body="Hi again")),
    events.ScheduledInMailCancelled(**HEADER, **IDS, reason="blocked"),
    events.FollowUpCancelled(**HEADER, inmail_id="1-y", follow_up_of="1-x", sender_id="alice",
                             recipient_id="bob", reason="insufficient_credits"),
    events.ResponseRateAssessed(**HEADER, member_id="alice", period_start=T - timedelta(days=21),
                                period_end=T - timedelta(days=7), warning_period=False, sent=120,
                                responded=12, rate=0.1, threshold=0.13, min_inmails=100,
                                previous_stage="ok", stage="warned", since=T, until=T + timedelta(days=14)),
    events.BulkSuspensionEnded(**HEADER, member_id="alice", since=T - timedelta(days=14), until=T),
    events.MemberErased(**HEADER, member_id="alice"),
]
ALL_EVENTS = pytest.mark.parametrize("event", EXAMPLE_EVENTS, ids=lambda e: type(e).__name__)


def test_every_event_type_has_an_example():
    assert {type(e) for e in EXAMPLE_EVENTS} == set(EVENT_TYPES) == set(typing.get_args(events.AnyEvent))


@ALL_EVENTS
def test_an_event_round_trips_through_its_stored_body(event):
    decoded = decode_event(encode_event(event))
    assert decoded == event and type(decoded) is type(event)


@ALL_EVENTS
def test_an_event_body_names_its_type_and_carries_its_header(event):
    body = msgspec.json.decode(encode_event(event))
    assert body["type"] == type(event).__name__
    assert {"event_id", "occurred_at", "command_id", "policy"} <= body.keys()
    assert body["policy"] == CURRENT_POLICY.version


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda c: c.__name__)
def test_no_event_type_carries_an_email(cls):
    # A preference about emails (a flag) is no email.
    fields = msgspec.structs.fields(cls)
    assert not [f.name for f in fields if "email" in f.name.lower() and f.type is not bool]


@ALL_EVENTS
def test_unknown_fields_in_an_event_body_are_tolerated(event):
    body = msgspec.json.decode(encode_event(event)) | {"added_in_v2": {"nested": [1, 2]}, "note": "x"}
    assert decode_event(encode(body)) == event


def test_an_event_of_an_unknown_type_is_refused():
    with pytest.raises(msgspec.ValidationError):
        decode_event(b'{"type": "MemberTeleported", "event_id": "e", "occurred_at": "2026-01-05T09:00:00Z",'
                     b' "command_id": "c", "member_id": "alice"}')


def test_an_older_event_shape_is_upcast_on_read(monkeypatch):
    def opened_to_read(raw: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in raw.items() if k != "opened_by"} | {"type": "InMailRead",
                                                                     "recipient_id": raw["opened_by"]}

    monkeypatch.setitem(UPCASTERS, "InMailOpened", opened_to_read)
    old = encode({"type": "InMailOpened", "event_id": "e", "occurred_at": "2026-01-05T09:00:00Z",
                  "command_id": "c", "inmail_id": "1-x", "sender_id": "alice", "opened_by": "bob"})
    assert decode_event(old) == events.InMailRead(event_id="e", occurred_at=T, command_id="c", **IDS)


@ALL_EVENTS
def test_event_times_are_encoded_in_rfc_3339_utc_with_a_trailing_z(event):
    assert b'"occurred_at":"2026-01-05T09:00:00Z"' in encode_event(event)


def test_times_with_fractions_of_a_second_keep_them_and_the_z():
    event = msgspec.structs.replace(EXAMPLE_EVENTS[0], occurred_at=T.replace(microsecond=120000))
    assert b'"occurred_at":"2026-01-05T09:00:00.120000Z"' in encode_event(event)


def test_query_answers_encode_times_in_utc_with_a_trailing_z():
    entry = queries.LedgerEntry(seq=1, occurred_at=T, delta=-1, balance_after=4, reason="send")
    assert b'"occurred_at":"2026-01-05T09:00:00Z"' in replies.encode(replies.QueryOk(data=entry, as_of_seq=1))
