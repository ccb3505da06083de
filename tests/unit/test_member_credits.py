"""Credits: the monthly refresh, its cap, the refreshes of missed months, and what a send costs."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from contracts.commands import ChangeTier, RecordReply, RefreshCredits, SendBulkInMail
from contracts.events import CreditsForfeited, FreeReason, InMailSent, TierChanged
from contracts.replies import RefreshedData
from contracts.types import Tier
from services.domain import errors
from tests.unit.scenario import (
    DAY,
    HEADER,
    NEW,
    T0,
    Scenario,
    connected,
    given,
    preferences,
    refreshed,
    refunded,
    registered,
    replied,
    send,
    sent,
)

FEB_1 = datetime(2026, 2, 1, tzinfo=UTC)
MAR_10 = datetime(2026, 3, 10, 12, tzinfo=UTC)
APR_1 = datetime(2026, 4, 1, tzinfo=UTC)


def refresh(month: str, command_id: str = "r") -> RefreshCredits:
    return RefreshCredits(command_id=command_id, member_id="alice", month=month)


def bulk_to(*recipients: str) -> SendBulkInMail:
    return SendBulkInMail(command_id="b", sender_id="rec", recipient_ids=list(recipients), subject="Hi",
                          body="Hello")


def bulk_sent(
    recipient: str,
    tier: Tier = "recruiter_lite",
    *,
    charged: bool = True,
    free_reason: FreeReason | None = None,
) -> InMailSent:
    return sent("rec", recipient, NEW, sender_tier=tier, subject="Hi", body="Hello", bulk=True,
                charged=charged, free_reason=free_reason)


# The monthly refresh --------------------------------------------------------------


def test_the_monthly_refresh_adds_the_tiers_allotment():
    s = given(registered("alice", "premium_career"))
    s.when(refresh("2026-02"), at=FEB_1).then(refreshed("alice", "2026-02", granted=5))
    assert s.state("alice").balance == 10
    assert s.reply == RefreshedData("alice", "2026-02", 10)


def test_the_refresh_cuts_the_balance_to_the_cap_and_records_the_excess_as_forfeited():
    s = given(registered("alice", "premium_business"))  # 15 banked, cap 45
    s.done(refresh("2026-02", "r2"), at=FEB_1)
    s.done(refresh("2026-03", "r3"), at=MAR_10)  # 45
    s.when(refresh("2026-04", "r4"), at=APR_1)
    s.then(refreshed("alice", "2026-04", tier="premium_business", granted=15, forfeited=15))
    alice = s.state("alice")
    assert (alice.balance, alice.granted, alice.forfeited) == (45, 60, 15)


def test_a_refresh_after_missed_months_refreshes_each_month_in_one_decision():
    s = given(registered("alice", "premium_career"))
    s.when(refresh("2026-05"), at=datetime(2026, 5, 20, tzinfo=UTC))
    s.then(
        refreshed("alice", "2026-02", granted=5),
        refreshed("alice", "2026-03", granted=5),
        refreshed("alice", "2026-04", granted=5, forfeited=5),
        refreshed("alice", "2026-05", granted=5, forfeited=5),
    )
    assert (s.state("alice").balance, s.state("alice").forfeited) == (15, 10)


def test_missed_months_are_refreshed_across_the_year_end():
    s = given(registered("alice", "premium_career", at=datetime(2025, 11, 20, tzinfo=UTC)))
    s.when(refresh("2026-01"), at=T0)
    s.then(refreshed("alice", "2025-12", granted=5), refreshed("alice", "2026-01", granted=5))


def test_refreshing_a_month_already_refreshed_is_a_no_op_answering_with_its_refresh():
    s = given(registered("alice"))  # seq 1
    s.done(refresh("2026-02", "r1"), at=FEB_1)  # seq 2
    s.when(refresh("2026-02", "r2"), at=FEB_1 + DAY).then_nothing_new(2)
    assert s.reply == RefreshedData("alice", "2026-02", 10)


def test_refreshing_the_registration_month_is_a_no_op_answering_with_the_registration():
    s = given(registered("bob"), registered("alice"))  # alice at seq 2
    s.when(refresh("2026-01")).then_nothing_new(2)


def test_refreshing_a_month_before_registration_is_a_no_op_answering_with_the_registration():
    s = given(registered("bob"), registered("alice"))
    s.when(refresh("2025-06")).then_nothing_new(2)


def test_refreshing_a_month_inside_an_earlier_refresh_of_missed_months_answers_with_that_month():
    s = given(registered("alice"))  # seq 1
    s.done(refresh("2026-04", "r1"), at=datetime(2026, 4, 2, tzinfo=UTC))  # Feb 2, Mar 3, Apr 4
    s.when(refresh("2026-03", "r2"), at=datetime(2026, 4, 3, tzinfo=UTC)).then_nothing_new(3)


def test_refreshing_a_month_that_has_not_begun_is_refused_as_invalid_time():
    s = given(registered("alice"))
    s.when(refresh("2026-02"), at=FEB_1 - timedelta(microseconds=1)).then_error(errors.InvalidTime)


def test_a_month_begins_at_its_first_instant_in_utc():
    s = given(registered("alice"))
    s.when(refresh("2026-02"), at=FEB_1).then(refreshed("alice", "2026-02", granted=5))


def test_months_are_calendar_months_in_utc_whatever_offset_the_time_has():
    late_on_jan_31_in_the_azores = datetime(2026, 1, 31, 23, 30, tzinfo=timezone(-timedelta(hours=1)))
    s = given(registered("alice"), registered("bob"))
    s.when(send("alice", "bob"), at=late_on_jan_31_in_the_azores)
    s.then(refreshed("alice", "2026-02", granted=5), sent("alice", "bob", NEW))


def test_refreshing_an_unknown_member_is_refused():
    Scenario().when(refresh("2026-01")).then_error(errors.UnknownMember)


def test_the_refresh_uses_the_allotment_and_cap_of_the_tier_at_that_time():
    s = given(registered("alice", "premium_career"))
    s.done(ChangeTier(command_id="t1", member_id="alice", tier="recruiter_lite"))  # 30
    s.when(refresh("2026-02"), at=FEB_1)
    s.then(refreshed("alice", "2026-02", tier="recruiter_lite", granted=30))


# Refreshes come before the first credit movement of a month ----------------------


def test_the_refresh_is_recorded_before_the_first_charged_send_of_a_month():
    s = given(registered("alice"), registered("bob"))
    s.when(send("alice", "bob"), at=MAR_10)
    s.then(
        refreshed("alice", "2026-02", granted=5),
        refreshed("alice", "2026-03", granted=5),
        sent("alice", "bob", NEW),
    )
    assert s.state("alice").balance == 14


def test_a_free_send_in_a_new_month_moves_no_credit_and_refreshes_nothing():
    s = given(registered("alice"), registered("bob"), connected("alice", "bob"))
    s.when(send("alice", "bob"), at=MAR_10)
    s.then(sent("alice", "bob", NEW, charged=False, free_reason="connection"))


def test_the_refresh_is_recorded_before_a_bulk_send_of_a_new_month():
    s = given(registered("rec", "recruiter"), registered("bob"), registered("carol"))
    s.when(bulk_to("bob", "carol"), at=FEB_1)
    s.then(
        refreshed("rec", "2026-02", tier="recruiter", granted=150),
        bulk_sent("bob", "recruiter"),
        bulk_sent("carol", "recruiter"),
    )


def test_the_refresh_is_recorded_before_a_refund_of_a_new_month():
    mail = sent("alice", "bob", "1-m1", at=T0 + 10 * DAY)
    s = given(registered("alice"), registered("bob"), mail)
    s.when(RecordReply(command_id="r", inmail_id="1-m1", member_id="bob", body="Yes"), at=FEB_1 + DAY)
    s.then(refreshed("alice", "2026-02", granted=5), replied(mail, body="Yes"), refunded(mail, NEW))


def test_the_refresh_is_recorded_before_a_tier_change_of_a_new_month():
    s = given(registered("alice", "premium_career"))
    s.when(ChangeTier(command_id="t1", member_id="alice", tier="sales_navigator"), at=MAR_10)
    s.then(
        refreshed("alice", "2026-02", granted=5),
        refreshed("alice", "2026-03", granted=5),
        CreditsForfeited(**HEADER, member_id="alice", amount=15, reason="tier_change"),
        TierChanged(**HEADER, member_id="alice", old_tier="premium_career", tier="sales_navigator",
                    month="2026-03", granted=50),
    )


def test_refunded_credits_count_toward_the_cap_at_the_next_refresh():
    s = given(registered("alice", "premium_career"), registered("bob"))
    s.done(refresh("2026-03", "r3"), at=MAR_10)  # 15, the cap
    s.done(send("alice", "bob"), at=MAR_10)  # 14
    [mail] = s.recorded_of(InMailSent)
    s.done(RecordReply(command_id="rr", inmail_id=mail.inmail_id, member_id="bob", body="Yes"),
           at=MAR_10 + DAY)  # 15 again
    s.when(refresh("2026-04", "r4"), at=APR_1).then(refreshed("alice", "2026-04", granted=5, forfeited=5))


# What a send costs ------------------------------------------------------------------

SPENT = [sent("alice", "bob", f"1-m{n}") for n in range(5)]


def test_a_charged_send_without_credits_left_is_refused_as_insufficient_credits():
    s = given(registered("alice", "premium_career"), registered("bob"), *SPENT)
    s.when(send("alice", "bob")).then_error(errors.InsufficientCredits)


def test_the_refresh_due_this_month_can_pay_for_the_send():
    s = given(registered("alice", "premium_career"), registered("bob"), *SPENT)
    s.when(send("alice", "bob"), at=FEB_1).then(refreshed("alice", "2026-02", granted=5),
                                                 sent("alice", "bob", NEW))


def test_a_refused_send_records_no_refresh():
    s = given(registered("alice", "premium_career"), registered("bob", inmail_opt_out=True), *SPENT)
    s.when(send("alice", "bob"), at=FEB_1).then_error(errors.RecipientOptedOut)


@pytest.fixture
def recruiter_with_one_credit_left() -> Scenario:
    spent = [sent("rec", "bob", f"1-m{n}", sender_tier="recruiter_lite") for n in range(29)]
    return given(
        registered("rec", "recruiter_lite"), registered("bob"), registered("carol"), registered("dan"),
        *spent,
    )


def test_bulk_needing_more_credits_than_left_is_refused_whole(recruiter_with_one_credit_left):
    recruiter_with_one_credit_left.when(bulk_to("bob", "carol")).then_error(errors.InsufficientCredits)


def test_bulk_needs_credits_only_for_its_charged_recipients(recruiter_with_one_credit_left):
    s = recruiter_with_one_credit_left.given(connected("rec", "bob"), preferences("dan", open_profile=True))
    s.when(bulk_to("bob", "carol", "dan"))
    s.then(
        bulk_sent("bob", charged=False, free_reason="connection"),
        bulk_sent("carol"),
        bulk_sent("dan", charged=False, free_reason="open_profile"),
    )
    assert s.state("rec").balance == 0
