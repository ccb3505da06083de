"""Automated follow-ups: planned with a send, sent by themselves when unanswered, else cancelled with why."""

from datetime import timedelta

import msgspec
import pytest

from contracts.commands import DeclineInMail, RecordReply, SendBulkInMail, SendInMail
from contracts.events import FollowUpPlan, InMailScheduled, InMailSent
from services.domain import errors
from tests.unit.due_events import (
    cancel_follow_up,
    deliver,
    follow_up_cancelled,
    follow_up_spec,
    plan,
    scheduled,
    send_follow_up,
)
from tests.unit.scenario import (
    DAY,
    NEW,
    T0,
    Scenario,
    blocked,
    connected,
    given,
    preferences,
    registered,
    send,
    sent,
)

DUE = T0 + 7 * DAY


def recruiter_and_bob(tier="recruiter", **bob) -> Scenario:
    return given(registered("rec", tier), registered("bob", **bob))


def with_a_planned_follow_up(**bob) -> tuple[Scenario, InMailSent]:
    original = sent("rec", "bob", "1-o", sender_tier="recruiter", automated_follow_up=plan("1-f"))
    return recruiter_and_bob(**bob).given(original), original


def follow_up_sent(*, charged: bool = True, free_reason=None) -> InMailSent:
    return sent("rec", "bob", "1-f", sender_tier="recruiter", subject="Following up", body="Any thoughts?",
                follow_up_of="1-o", automated=True, charged=charged, free_reason=free_reason)


# Planning ---------------------------------------------------------------------------------------


def test_a_send_with_an_automated_follow_up_plans_it_with_an_id_of_its_own():
    s = recruiter_and_bob().when(send("rec", "bob", automated_follow_up=follow_up_spec(after_days=5)))
    [mail] = s.recorded_of(InMailSent)
    assert mail.automated_follow_up is not None
    follow_up_id = mail.automated_follow_up.inmail_id
    s.then(sent("rec", "bob", NEW, sender_tier="recruiter",
                automated_follow_up=plan(follow_up_id, after_days=5)))
    assert follow_up_id.startswith("1-") and follow_up_id != mail.inmail_id
    assert s.state("rec").follow_ups[follow_up_id].due_at == T0 + 5 * DAY
    assert s.state("rec").balance == 149, "the follow-up is charged when it is sent, not now"


def test_a_bulk_send_plans_one_follow_up_per_inmail():
    s = recruiter_and_bob().given(registered("carol"))
    s.when(SendBulkInMail(command_id="b", sender_id="rec", recipient_ids=["bob", "carol"], subject="Roles",
                          body="Hiring", automated_follow_up=follow_up_spec()))
    plans = [m.automated_follow_up for m in s.recorded_of(InMailSent)]
    assert all(isinstance(p, FollowUpPlan) for p in plans) and len({p.inmail_id for p in plans if p}) == 2


def test_only_the_recruiter_tier_may_plan_automated_follow_ups():
    recruiter_and_bob("recruiter_lite").when(
        send("rec", "bob", automated_follow_up=follow_up_spec())
    ).then_error(errors.TierNotAllowed)


def test_a_follow_up_message_obeys_the_message_rules():
    recruiter_and_bob().when(send("rec", "bob", automated_follow_up=follow_up_spec(subject=" "))).then_error(
        errors.EmptyMessage
    )
    recruiter_and_bob().when(
        send("rec", "bob", automated_follow_up=follow_up_spec(body="x" * 1901))
    ).then_error(errors.BodyTooLong)


@pytest.mark.parametrize("days", [2, 29])
def test_after_days_outside_3_to_28_is_refused_when_decoded(days):
    body = msgspec.json.encode({"command_id": "c", "sender_id": "rec", "recipient_id": "bob", "subject": "s",
                                "body": "b", "automated_follow_up": {"after_days": days, "subject": "s",
                                                                     "body": "b"}})
    with pytest.raises(msgspec.ValidationError, match="after_days"):
        msgspec.json.decode(body, type=SendInMail)


# Sending when due -------------------------------------------------------------------------------


def test_an_unanswered_inmail_gets_its_follow_up_at_its_time_charged_like_any_inmail():
    s, _ = with_a_planned_follow_up()
    s.when(send_follow_up("1-f"), at=DUE).then(follow_up_sent())
    assert (s.state("rec").balance, s.state("rec").spent) == (148, 2)
    assert s.state("rec").inmails["1-o"].followed_up


def test_a_follow_up_to_a_connection_is_free():
    s, _ = with_a_planned_follow_up()
    s.given(connected("bob", "rec", at=T0 + DAY))
    s.when(send_follow_up("1-f"), at=DUE).then(follow_up_sent(charged=False, free_reason="connection"))


def test_a_follow_up_is_sent_once_whoever_performs_it():
    s, _ = with_a_planned_follow_up()
    s.done(send_follow_up("1-f", command_id="due-a"), at=DUE)
    seq = s.state("rec").follow_ups["1-f"].outcome_seq
    s.when(send_follow_up("1-f", command_id="due-b"), at=DUE).then_nothing_new(seq)


def test_a_follow_up_asked_for_early_is_refused():
    s, _ = with_a_planned_follow_up()
    s.when(send_follow_up("1-f"), at=DUE - timedelta(seconds=1)).then_error(errors.InvalidTime)


@pytest.mark.parametrize("response", [RecordReply, DeclineInMail])
def test_a_response_before_its_time_cancels_it_as_responded(response):
    s, _ = with_a_planned_follow_up()
    fields = {"body": "No thanks"} if response is RecordReply else {}
    s.done(response(command_id="r", inmail_id="1-o", member_id="bob", **fields), at=T0 + DAY)
    s.when(send_follow_up("1-f"), at=DUE).then(follow_up_cancelled("1-f", "1-o", "responded"))


def test_a_block_or_an_opt_out_since_cancels_it_saying_which():
    s, _ = with_a_planned_follow_up()
    s.given(blocked("rec", "bob", at=T0 + DAY))
    s.when(send_follow_up("1-f"), at=DUE).then(follow_up_cancelled("1-f", "1-o", "blocked"))
    s, _ = with_a_planned_follow_up()
    s.given(preferences("bob", inmail_opt_out=True, at=T0 + DAY))
    s.when(send_follow_up("1-f"), at=DUE).then(follow_up_cancelled("1-f", "1-o", "opted_out"))


def test_without_credits_left_it_is_cancelled_as_insufficient_credits():
    s, _ = with_a_planned_follow_up()
    s.given(registered("carol"))
    for n in range(149):
        s.done(send("rec", "carol", f"s{n}"), at=T0 + DAY)
    s.when(send_follow_up("1-f"), at=DUE).then(follow_up_cancelled("1-f", "1-o", "insufficient_credits"))


# Cancelling -------------------------------------------------------------------------------------


@pytest.mark.parametrize("named_by", ["1-o", "1-f"])
def test_the_sender_cancels_it_by_either_inmails_id(named_by):
    s, _ = with_a_planned_follow_up()
    s.when(cancel_follow_up(named_by), at=T0 + DAY)
    s.then(follow_up_cancelled("1-f", "1-o", "sender_cancelled"))
    seq = s.state("rec").follow_ups["1-f"].outcome_seq
    s.when(send_follow_up("1-f"), at=DUE).then_nothing_new(seq)
    s.when(cancel_follow_up(named_by, command_id="again"), at=DUE).then_nothing_new(seq)


def test_cancelling_a_follow_up_already_sent_is_already_sent():
    s, _ = with_a_planned_follow_up()
    s.done(send_follow_up("1-f"), at=DUE)
    s.when(cancel_follow_up("1-o"), at=DUE).then_error(errors.AlreadySent)


def test_cancelling_where_there_is_no_automated_follow_up():
    s = recruiter_and_bob().given(sent("rec", "bob", "1-o", sender_tier="recruiter"))
    s.when(cancel_follow_up("1-o"), at=T0 + DAY).then_error(errors.InvalidFollowUp)
    s.when(cancel_follow_up("1-zz"), at=T0 + DAY).then_error(errors.UnknownInMail)
    s.when(cancel_follow_up("1-o", member_id="bob"), at=T0 + DAY).then_error(errors.UnknownInMail)


def test_a_manual_follow_up_waits_until_the_automated_one_is_cancelled():
    s, _ = with_a_planned_follow_up()
    s.when(send("rec", "bob", "manual", follow_up_of="1-o"), at=T0 + DAY).then_error(errors.InvalidFollowUp)
    s.done(cancel_follow_up("1-o"), at=T0 + DAY)
    s.when(send("rec", "bob", "manual", follow_up_of="1-o"), at=T0 + DAY)
    [manual] = s.recorded_of(InMailSent)
    assert manual.follow_up_of == "1-o"


# With a scheduled send ---------------------------------------------------------------------------


def test_a_scheduled_send_carries_its_plan_to_delivery_and_the_follow_up_counts_from_there():
    mail = scheduled("rec", "bob", "1-s", send_at=T0 + 2 * DAY, automated_follow_up=plan("1-f", after_days=3))
    s = recruiter_and_bob().given(mail)
    s.done(deliver(mail), at=T0 + 2 * DAY)
    assert s.state("rec").follow_ups["1-f"].due_at == T0 + 5 * DAY


def test_a_plan_cancelled_before_delivery_is_not_delivered():
    mail = scheduled("rec", "bob", "1-s", send_at=T0 + 2 * DAY, automated_follow_up=plan("1-f"))
    s = recruiter_and_bob().given(mail)
    s.when(cancel_follow_up("1-s"), at=T0 + DAY).then(follow_up_cancelled("1-f", "1-s", "sender_cancelled"))
    s.done(deliver(mail), at=T0 + 2 * DAY)
    [delivered] = s.recorded
    assert isinstance(delivered, InMailSent) and delivered.automated_follow_up is None
    assert s.state("rec").follow_ups == {}


def test_a_scheduled_send_with_a_follow_up_records_the_plan_when_scheduled():
    s = recruiter_and_bob().when(send("rec", "bob", send_at=T0 + DAY, automated_follow_up=follow_up_spec()))
    [mail] = s.recorded_of(InMailScheduled)
    assert mail.automated_follow_up is not None and mail.automated_follow_up.after_days == 7
