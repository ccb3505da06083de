"""The response-rate floor: periods assessed from event times, warnings, suspensions ending by themselves."""

from datetime import UTC, datetime, timedelta

from contracts.commands import SendBulkInMail
from contracts.events import AnyEvent, BulkSuspensionEnded, ResponseRateAssessed, Stage
from contracts.policy import CURRENT_POLICY
from services.domain import errors
from services.domain.enforcement import period_start
from tests.unit.due_events import assess, end_suspension
from tests.unit.scenario import DAY, T0, Scenario, given, meta, registered, replied, send, sent

MIDNIGHT = datetime(2026, 1, 5, tzinfo=UTC)
"""The day of the first InMail: the first period starts then."""
ASSESSED = MIDNIGHT + 21 * DAY
"""The first period ends after 14 days and is assessed 7 days later."""
WARNING_ASSESSED = ASSESSED + 21 * DAY


def history(sent_count: int, responded: int, *, start: datetime = T0, respond_at: datetime | None = None,
            tier="recruiter", prefix: str = "p") -> list[AnyEvent]:
    """``sent_count`` InMails from rec to bob from ``start``, the first ``responded`` of them answered."""
    mails = [sent("rec", "bob", f"1-{prefix}{n}", at=start + timedelta(minutes=n), sender_tier=tier)
             for n in range(sent_count)]
    answer_time = respond_at or start + DAY
    return [*mails, *(replied(mail, at=answer_time) for mail in mails[:responded])]


def recruiter(*events: AnyEvent, tier="recruiter") -> Scenario:
    return given(registered("rec", tier), registered("bob"), *events)


def assessed(
    start: datetime, sent_count: int, responded: int, previous: Stage, stage: Stage,
    since: datetime | None, until: datetime | None, *, warning: bool = False,
) -> ResponseRateAssessed:
    rules = CURRENT_POLICY.enforcement
    return ResponseRateAssessed(
        **meta(T0), member_id="rec", period_start=start, period_end=start + 14 * DAY, warning_period=warning,
        sent=sent_count, responded=responded, rate=responded / sent_count if sent_count else 0.0,
        threshold=rules.rate_floor, min_inmails=rules.min_inmails, previous_stage=previous, stage=stage,
        since=since, until=until,
    )


def warned() -> Scenario:
    s = recruiter(*history(100, 12))
    s.done(assess(MIDNIGHT), at=ASSESSED)
    return s


def bulk(command_id: str = "bulk") -> SendBulkInMail:
    return SendBulkInMail(command_id=command_id, sender_id="rec", recipient_ids=["bob", "carol"],
                          subject="Roles", body="Hiring")


# Periods ----------------------------------------------------------------------------------------


def test_periods_are_14_days_from_midnight_of_the_day_of_the_first_inmail():
    first = datetime(2026, 1, 5, 17, 30, tzinfo=UTC)
    assert period_start(first, first, CURRENT_POLICY) == MIDNIGHT
    assert period_start(first, MIDNIGHT + 13 * DAY + timedelta(hours=23), CURRENT_POLICY) == MIDNIGHT
    assert period_start(first, MIDNIGHT + 14 * DAY, CURRENT_POLICY) == MIDNIGHT + 14 * DAY
    assert period_start(first, MIDNIGHT + 100 * DAY, CURRENT_POLICY) == MIDNIGHT + 98 * DAY


# Assessments ------------------------------------------------------------------------------------


def test_a_period_under_13_percent_while_ok_warns_for_the_next_14_days():
    s = recruiter(*history(100, 12)).when(assess(MIDNIGHT), at=ASSESSED)
    s.then(assessed(MIDNIGHT, 100, 12, "ok", "warned", ASSESSED, ASSESSED + 14 * DAY))


def test_a_period_at_13_percent_stays_ok_and_is_recorded_with_its_inputs():
    s = recruiter(*history(100, 13)).when(assess(MIDNIGHT), at=ASSESSED)
    s.then(assessed(MIDNIGHT, 100, 13, "ok", "ok", None, None))


def test_a_period_under_100_inmails_changes_nothing():
    s = recruiter(*history(99, 0)).when(assess(MIDNIGHT), at=ASSESSED)
    s.then(assessed(MIDNIGHT, 99, 0, "ok", "ok", None, None))


def test_only_responses_until_the_assessment_count():
    late = recruiter(*history(100, 20, respond_at=ASSESSED + timedelta(seconds=1)))
    late.when(assess(MIDNIGHT), at=ASSESSED + DAY)
    [assessment] = late.recorded
    assert isinstance(assessment, ResponseRateAssessed)
    assert (assessment.responded, assessment.stage, assessment.since) == (0, "warned", ASSESSED)


def test_inmails_of_another_period_or_tier_do_not_count():
    s = recruiter(
        *history(100, 0, start=T0 + 14 * DAY),
        *history(60, 0, tier="sales_navigator", prefix="q"),
        sent("rec", "bob", "1-first", at=T0 - timedelta(hours=1), sender_tier="sales_navigator"),
    )
    s.when(assess(MIDNIGHT), at=ASSESSED).then(assessed(MIDNIGHT, 0, 0, "ok", "ok", None, None))


def test_an_assessment_is_recorded_once_and_never_before_it_is_due():
    s = recruiter(*history(100, 12))
    s.when(assess(MIDNIGHT), at=ASSESSED - timedelta(seconds=1)).then_error(errors.InvalidTime)
    s.done(assess(MIDNIGHT), at=ASSESSED)
    seq = s.state("rec").enforcement_seq
    s.when(assess(MIDNIGHT, command_id="other-instance"), at=ASSESSED).then_nothing_new(seq)


def test_a_warning_period_under_the_floor_again_suspends_bulk_for_14_days():
    s = warned().given(*history(100, 5, start=ASSESSED + DAY, prefix="w"))
    s.when(assess(ASSESSED, warning=True), at=WARNING_ASSESSED).then(
        assessed(ASSESSED, 100, 5, "warned", "suspended", WARNING_ASSESSED, WARNING_ASSESSED + 14 * DAY,
                 warning=True)
    )


def test_a_warning_period_at_the_floor_or_with_few_inmails_ends_the_warning():
    s = warned().given(*history(100, 40, start=ASSESSED + DAY, prefix="w"))
    s.when(assess(ASSESSED, warning=True), at=WARNING_ASSESSED).then(
        assessed(ASSESSED, 100, 40, "warned", "ok", WARNING_ASSESSED, None, warning=True)
    )
    s = warned().given(*history(30, 0, start=ASSESSED + DAY, prefix="w"))
    s.when(assess(ASSESSED, warning=True), at=WARNING_ASSESSED).then(
        assessed(ASSESSED, 30, 0, "warned", "ok", WARNING_ASSESSED, None, warning=True)
    )


def test_a_regular_period_assessed_during_a_warning_keeps_the_warning():
    s = warned().given(*history(100, 0, start=T0 + 14 * DAY, prefix="n"))
    s.when(assess(MIDNIGHT + 14 * DAY), at=ASSESSED + 14 * DAY).then(
        assessed(MIDNIGHT + 14 * DAY, 100, 0, "warned", "warned", ASSESSED, ASSESSED + 14 * DAY)
    )


# Suspension -------------------------------------------------------------------------------------


def suspended() -> Scenario:
    s = warned().given(*history(100, 5, start=ASSESSED + DAY, prefix="w"), registered("carol"))
    s.done(assess(ASSESSED, warning=True), at=WARNING_ASSESSED)
    return s


def test_while_suspended_bulk_is_refused_naming_the_end_and_single_sends_go_on():
    s = suspended()
    failure = s.when(bulk(), at=WARNING_ASSESSED + DAY).then_error(errors.BulkSuspended)
    assert "2026-03-02T00:00:00Z" in failure.error.message
    s.done(send("rec", "bob", "single"), at=WARNING_ASSESSED + DAY)


def test_a_suspension_ends_by_itself_at_its_time():
    s = suspended()
    until = WARNING_ASSESSED + 14 * DAY
    s.done(bulk("on-the-hour"), at=until)
    s.when(end_suspension(WARNING_ASSESSED), at=until).then(
        BulkSuspensionEnded(**meta(T0), member_id="rec", since=WARNING_ASSESSED, until=until)
    )
    assert (s.state("rec").stage, s.state("rec").stage_since) == ("ok", until)
    s.when(end_suspension(WARNING_ASSESSED, command_id="again"), at=until).then_nothing_new(
        s.state("rec").enforcement_seq
    )


def test_the_end_of_a_suspension_is_not_recorded_early():
    s = suspended()
    s.when(end_suspension(WARNING_ASSESSED), at=WARNING_ASSESSED + 13 * DAY).then_error(errors.InvalidTime)
