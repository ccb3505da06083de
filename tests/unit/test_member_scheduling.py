"""Scheduled sends: charged when accepted, delivered once at their time, or cancelled with the credit back."""

from datetime import timedelta

from contracts.commands import RecordReply
from contracts.events import CreditRefunded, CreditsRefreshed, InMailScheduled, ScheduledInMailCancelled
from contracts.replies import CancelledData, SentData
from services.domain import errors
from tests.unit.due_events import (
    cancel_refund,
    cancel_scheduled,
    deliver,
    schedule_cancelled,
    scheduled,
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

LATER = T0 + 2 * DAY


def recruiter_and_bob(tier="recruiter", **bob) -> Scenario:
    return given(registered("rec", tier), registered("bob", **bob))


def with_a_scheduled_inmail(**bob) -> tuple[Scenario, InMailScheduled]:
    mail = scheduled("rec", "bob", "1-s1", send_at=LATER)
    return recruiter_and_bob(**bob).given(mail), mail


# Scheduling -------------------------------------------------------------------------------------


def test_a_scheduled_send_is_charged_when_accepted_and_answers_its_time():
    s = recruiter_and_bob().when(send("rec", "bob", send_at=LATER))
    s.then(scheduled("rec", "bob", NEW, send_at=LATER))
    [mail] = s.recorded_of(InMailScheduled)
    assert s.reply == SentData(mail.inmail_id, True, None, 149, scheduled_for=LATER)
    assert (s.state("rec").balance, s.state("rec").spent) == (149, 1)
    assert mail.inmail_id not in s.state("rec").inmails, "not sent before its time"


def test_recruiter_lite_may_schedule_and_a_free_send_is_scheduled_free():
    s = recruiter_and_bob("recruiter_lite", open_profile=True).when(send("rec", "bob", send_at=LATER))
    s.then(scheduled("rec", "bob", NEW, send_at=LATER, sender_tier="recruiter_lite", charged=False,
                     free_reason="open_profile"))


def test_a_repeated_scheduled_send_answers_the_original_reply():
    s = recruiter_and_bob()
    s.done(send("rec", "bob", "once", send_at=LATER))
    first = s.reply
    s.when(send("rec", "bob", "once", send_at=LATER), at=T0 + timedelta(hours=1))
    assert s.recorded == [] and s.reply == first


def test_only_recruiter_tiers_may_schedule():
    given(registered("alice", "sales_navigator"), registered("bob")).when(
        send("alice", "bob", send_at=LATER)
    ).then_error(errors.TierNotAllowed)


def test_a_send_at_not_after_now_or_beyond_90_days_is_refused():
    recruiter_and_bob().when(send("rec", "bob", send_at=T0)).then_error(errors.InvalidTime)
    recruiter_and_bob().when(send("rec", "bob", send_at=T0 - DAY)).then_error(errors.InvalidTime)
    recruiter_and_bob().when(send("rec", "bob", send_at=T0 + 90 * DAY + timedelta(seconds=1))).then_error(
        errors.InvalidTime
    )
    recruiter_and_bob().when(send("rec", "bob", send_at=T0 + 90 * DAY)).then(
        scheduled("rec", "bob", NEW, send_at=T0 + 90 * DAY)
    )


def test_a_schedule_is_refused_like_a_send_when_blocked_opted_out_or_unaffordable():
    recruiter_and_bob(inmail_opt_out=True).when(send("rec", "bob", send_at=LATER)).then_error(
        errors.RecipientOptedOut
    )
    recruiter_and_bob().given(blocked("bob", "rec")).when(send("rec", "bob", send_at=LATER)).then_error(
        errors.Blocked
    )
    s = recruiter_and_bob()
    for n in range(150):
        s.done(send("rec", "bob", f"s{n}", send_at=LATER))
    s.when(send("rec", "bob", "one-more", send_at=LATER)).then_error(errors.InsufficientCredits)


# Delivery ---------------------------------------------------------------------------------------


def test_at_its_time_a_scheduled_inmail_is_delivered_once_without_a_second_charge():
    s, mail = with_a_scheduled_inmail()
    s.when(deliver(mail), at=LATER).then(sent("rec", "bob", "1-s1", sender_tier="recruiter", scheduled=True))
    assert (s.state("rec").balance, s.state("rec").spent) == (149, 1)
    assert s.state("rec").inmails["1-s1"].sent_at == LATER
    s.when(deliver(mail), at=LATER + timedelta(minutes=1)).then_nothing_new(s.state("rec").version)


def test_another_instance_performing_the_same_delivery_finds_it_done():
    s, mail = with_a_scheduled_inmail()
    s.done(deliver(mail, "due-a"), at=LATER)
    delivered_at = s.state("rec").scheduled["1-s1"].outcome_seq
    s.when(deliver(mail, "due-b"), at=LATER).then_nothing_new(delivered_at)


def test_a_delivery_asked_for_early_is_refused():
    s, mail = with_a_scheduled_inmail()
    s.when(deliver(mail), at=LATER - timedelta(seconds=1)).then_error(errors.InvalidTime)


def test_a_delivery_found_late_is_recorded_at_the_senders_latest_time():
    s, mail = with_a_scheduled_inmail()
    s.given(registered("carol"), sent("rec", "carol", "1-x", at=LATER + DAY, sender_tier="recruiter"))
    s.done(deliver(mail), at=LATER)
    [delivered] = s.recorded
    assert delivered.occurred_at == LATER + DAY


def test_a_block_since_scheduling_cancels_it_and_gives_the_credit_back():
    s, mail = with_a_scheduled_inmail()
    s.given(blocked("bob", "rec", at=T0 + DAY))
    s.when(deliver(mail), at=LATER).then(schedule_cancelled(mail, "blocked"), cancel_refund(mail))
    cancelled, refund = s.recorded
    assert isinstance(refund, CreditRefunded) and refund.response_event_id == cancelled.event_id
    assert (s.state("rec").balance, s.state("rec").refunded) == (150, 1)
    assert "1-s1" not in s.state("rec").inmails


def test_an_opt_out_since_scheduling_cancels_it_unless_they_are_connected():
    s, mail = with_a_scheduled_inmail()
    s.given(preferences("bob", inmail_opt_out=True, at=T0 + DAY))
    s.when(deliver(mail), at=LATER).then(schedule_cancelled(mail, "opted_out"), cancel_refund(mail))

    s, mail = with_a_scheduled_inmail()
    s.given(preferences("bob", inmail_opt_out=True, at=T0 + DAY), connected("bob", "rec", at=T0 + DAY))
    s.when(deliver(mail), at=LATER).then(sent("rec", "bob", "1-s1", sender_tier="recruiter", scheduled=True))


def test_a_free_scheduled_inmail_cancelled_gives_nothing_back():
    mail = scheduled("rec", "bob", "1-s1", send_at=LATER, charged=False, free_reason="open_profile")
    s = recruiter_and_bob(open_profile=True).given(mail, blocked("rec", "bob", at=T0 + DAY))
    s.when(deliver(mail), at=LATER).then(schedule_cancelled(mail, "blocked"))


def test_a_scheduled_follow_up_whose_original_was_answered_is_cancelled():
    original = sent("rec", "bob", "1-o", sender_tier="recruiter")
    mail = scheduled("rec", "bob", "1-s1", send_at=LATER, follow_up_of="1-o")
    s = recruiter_and_bob().given(original, mail)
    s.done(RecordReply(command_id="re", inmail_id="1-o", member_id="bob", body="Yes"), at=T0 + DAY)
    s.when(deliver(mail), at=LATER).then(schedule_cancelled(mail, "responded"), cancel_refund(mail))


def test_a_cancellation_refund_in_a_new_month_is_preceded_by_the_months_refresh():
    s, mail = with_a_scheduled_inmail()
    s.given(blocked("bob", "rec", at=T0 + DAY))
    next_month = T0 + 40 * DAY
    s.when(deliver(mail), at=next_month)
    assert [type(e) for e in s.recorded] == [CreditsRefreshed, ScheduledInMailCancelled, CreditRefunded]


# Cancelling -------------------------------------------------------------------------------------


def test_the_sender_cancels_before_delivery_and_gets_the_credit_back():
    s, mail = with_a_scheduled_inmail()
    s.when(cancel_scheduled("1-s1"), at=T0 + DAY).then(
        schedule_cancelled(mail, "sender_cancelled"), cancel_refund(mail)
    )
    assert s.reply == CancelledData("1-s1", True, 150)
    s.when(deliver(mail), at=LATER).then_nothing_new(s.state("rec").scheduled["1-s1"].outcome_seq)


def test_cancelling_twice_records_it_once():
    s, _ = with_a_scheduled_inmail()
    s.done(cancel_scheduled("1-s1"), at=T0 + DAY)
    seq = s.state("rec").scheduled["1-s1"].outcome_seq
    s.when(cancel_scheduled("1-s1", command_id="again"), at=T0 + DAY).then_nothing_new(seq)
    assert s.reply == CancelledData("1-s1", True, 150)


def test_cancelling_after_delivery_or_an_inmail_sent_at_once_is_already_sent():
    s, mail = with_a_scheduled_inmail()
    s.done(deliver(mail), at=LATER)
    s.when(cancel_scheduled("1-s1"), at=LATER).then_error(errors.AlreadySent)
    s.given(sent("rec", "bob", "1-now", at=LATER, sender_tier="recruiter"))
    s.when(cancel_scheduled("1-now"), at=LATER).then_error(errors.AlreadySent)


def test_only_the_sender_may_cancel_and_only_their_inmails():
    s, _ = with_a_scheduled_inmail()
    s.when(cancel_scheduled("1-s1", member_id="bob"), at=T0 + DAY).then_error(errors.UnknownInMail)
    s.when(cancel_scheduled("1-nothing"), at=T0 + DAY).then_error(errors.UnknownInMail)

