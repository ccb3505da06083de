"""The due work index: a pure fold of events into what is still to do, and which deliveries alert."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import msgspec

from contracts.events import AnyEvent, BulkSuspensionEnded, ResponseRateAssessed, Stage
from contracts.policy import CURRENT_POLICY
from services.due import items
from services.due.index import Alert, DueIndex
from tests.unit.due_events import plan, schedule_cancelled, scheduled
from tests.unit.scenario import DAY, T0, meta, preferences, registered, sent

MIDNIGHT = T0.replace(hour=0)


def fold(*events: AnyEvent) -> tuple[DueIndex, list[Alert]]:
    index = DueIndex()
    alerts = [index.apply(seq, event) for seq, event in enumerate(events, 1)]
    return index, [alert for alert in alerts if alert is not None]


def assessed(stage: Stage, previous: Stage, since: datetime, until: datetime, *, warning: bool = False,
             start: datetime = MIDNIGHT) -> ResponseRateAssessed:
    return ResponseRateAssessed(
        **meta(since), member_id="rec", period_start=start, period_end=start + 14 * DAY,
        warning_period=warning, sent=100, responded=0, rate=0.0, threshold=0.13, min_inmails=100,
        previous_stage=previous, stage=stage, since=since, until=until,
    )


def test_a_scheduled_send_is_due_at_its_time_until_delivered_or_cancelled():
    mail = scheduled("rec", "bob", "1-s", send_at=T0 + DAY)
    index, _ = fold(registered("rec", "recruiter"), registered("bob"), mail)
    assert index.pending() == 1 and index.next_due() == T0 + DAY
    assert index.members_due(T0) == [] and index.members_due(T0 + DAY) == ["rec"]
    item = index.next_for("rec", T0 + DAY)
    assert item is not None and item.command.command_id == "due-deliver-1-s"
    assert item.stamped().occurred_at == T0 + DAY

    index.apply(4, sent("rec", "bob", "1-s", at=T0 + DAY, sender_tier="recruiter", scheduled=True))
    assert index.pending() == 0 and index.next_due() is None
    cancelled, _ = fold(registered("rec", "recruiter"), registered("bob"), mail,
                        schedule_cancelled(mail, "sender_cancelled"))
    assert cancelled.pending() == 0


def test_a_planned_follow_up_is_due_after_its_days_counted_from_delivery():
    planned = sent("rec", "bob", "1-o", at=T0, sender_tier="recruiter",
                   automated_follow_up=plan("1-f", after_days=4))
    index, _ = fold(registered("rec", "recruiter"), registered("bob"), planned)
    item = index.next_for("rec", T0 + 10 * DAY)
    assert item is not None
    assert (item.kind, item.due_at, item.key) == ("follow_up", T0 + 4 * DAY, "follow-up-1-f")


def test_the_outcome_of_a_watched_item_is_what_resolved_it():
    mail = scheduled("rec", "bob", "1-s", send_at=T0 + DAY)
    index, _ = fold(registered("rec", "recruiter"), registered("bob"), mail)
    index.watch("deliver-1-s")
    index.apply(4, schedule_cancelled(mail, "blocked"))
    assert index.outcome("deliver-1-s") == "cancelled"
    assert index.outcome("deliver-1-s") is None, "no longer watched"


def test_a_period_reaching_the_minimum_is_due_for_assessment_a_week_after_it_ends():
    events = [sent("rec", "bob", f"1-p{n}", at=T0 + timedelta(minutes=n), sender_tier="recruiter")
              for n in range(CURRENT_POLICY.enforcement.min_inmails)]
    index, _ = fold(registered("rec", "recruiter"), registered("bob"), *events[:-1])
    assert index.pending() == 0
    index.apply(200, events[-1])
    item = index.next_for("rec", MIDNIGHT + 30 * DAY)
    assert item is not None and (item.kind, item.due_at) == ("assessment", MIDNIGHT + 21 * DAY)
    other_tier, _ = fold(registered("rec"), registered("bob"),
                         *(msgspec.structs.replace(e, sender_tier="sales_navigator") for e in events))
    assert other_tier.pending() == 0


def test_a_warning_makes_its_own_assessment_due_and_a_suspension_its_end():
    since = MIDNIGHT + 21 * DAY
    index, _ = fold(registered("rec", "recruiter"), assessed("warned", "ok", since, since + 14 * DAY))
    warning = index.next_for("rec", since + 100 * DAY)
    assert warning is not None and warning.due_at == since + 21 * DAY
    assert warning.key == items.assessment_key("rec", since, True)
    suspended_at = since + 21 * DAY
    index.apply(3, assessed("suspended", "warned", suspended_at, suspended_at + 14 * DAY, warning=True,
                            start=since))
    end = index.next_for("rec", since + 100 * DAY)
    assert end is not None and (end.kind, end.due_at) == ("end_suspension", suspended_at + 14 * DAY)
    index.apply(4, BulkSuspensionEnded(**meta(T0), member_id="rec", since=suspended_at,
                                       until=suspended_at + 14 * DAY))
    assert index.pending() == 0


def test_deliveries_alert_recipients_who_want_alerts_as_the_stream_stood_then():
    bob = registered("bob")
    index, alerts = fold(
        registered("rec", "recruiter"), bob, registered("quiet"), registered("away"),
        preferences("quiet", email_notifications=False),
        preferences("away", inmail_opt_out=True),
        sent("rec", "bob", "1-a", sender_tier="recruiter"),
        sent("rec", "quiet", "1-b", sender_tier="recruiter"),
        sent("rec", "away", "1-c", sender_tier="recruiter"),
        scheduled("rec", "bob", "1-s", send_at=T0 + DAY),
    )
    assert [(a.inmail_id, a.recipient_id, a.sender_name, a.registered_by) for a in alerts] == [
        ("1-a", "bob", "Rec", bob.command_id)
    ], "none for notifications off or opted out, none for a send only scheduled"
    delivery = sent("rec", "bob", "1-s", at=T0 + DAY, sender_tier="recruiter", scheduled=True)
    delivered = index.apply(11, delivery)
    assert delivered is not None and (delivered.inmail_id, delivered.sent_at) == ("1-s", T0 + DAY)
    index.apply(12, preferences("bob", email_notifications=False))
    assert index.apply(13, sent("rec", "bob", "1-d", at=T0 + DAY, sender_tier="recruiter")) is None


def test_command_ids_derive_from_the_item_and_stay_ids():
    short = items.delivery("rec", "1-s", "bob", T0)
    assert short.command.command_id == "due-deliver-1-s"
    long_id = "1-" + "x" * 62
    derived = items.delivery("rec", long_id, "bob", T0).command.command_id
    assert len(derived) <= 64 and derived == items.delivery("rec", long_id, "bob", T0).command.command_id
    assert derived != items.follow_up("rec", long_id, "bob", T0).command.command_id


def test_a_members_items_run_in_due_order_with_ties_in_a_fixed_order():
    at = T0 + DAY
    made = [items.follow_up("rec", "1-f", "bob", at), items.delivery("rec", "1-s", "bob", at),
            items.assessment("rec", MIDNIGHT, False, at), items.end_of_suspension("rec", MIDNIGHT, at)]
    for permutation in itertools.permutations(made):
        assert [item.kind for item in sorted(permutation)] == [
            "end_suspension", "assessment", "delivery", "follow_up"
        ]
