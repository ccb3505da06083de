"""What the recipient does with an InMail: read, acknowledge, reply, decline; and refunds."""

from datetime import timedelta

import pytest

from contracts.commands import AcknowledgeInMail, DeclineInMail, MarkInMailRead, RecordReply
from contracts.events import CreditRefunded, InMailDeclined, InMailReplied, InMailSent
from contracts.replies import InMailData, RespondedData
from services.domain import errors
from tests.unit.scenario import (
    DAY,
    NEW,
    T0,
    Scenario,
    acknowledged,
    blocked,
    declined,
    given,
    read,
    refreshed,
    refunded,
    registered,
    replied,
    send,
    sent,
)

REFUND_WINDOW = 90 * DAY
MAIL = sent("alice", "bob", "1-m1")
FREE_MAIL = sent("alice", "bob", "1-m1", charged=False, free_reason="open_profile")


def with_mail(*later) -> Scenario:
    """alice (seq 1) sent bob (seq 2) the charged InMail 1-m1 (seq 3) at T0; then ``later``."""
    return given(registered("alice"), registered("bob"), MAIL, *later)


def mark_read(member_id: str = "bob", command_id: str = "rd") -> MarkInMailRead:
    return MarkInMailRead(command_id=command_id, inmail_id="1-m1", member_id=member_id)


def acknowledge(member_id: str = "bob", command_id: str = "ack") -> AcknowledgeInMail:
    return AcknowledgeInMail(command_id=command_id, inmail_id="1-m1", member_id=member_id)


def reply(member_id: str = "bob", command_id: str = "re", body: str = "Happy to talk") -> RecordReply:
    return RecordReply(command_id=command_id, inmail_id="1-m1", member_id=member_id, body=body)


def decline(member_id: str = "bob", command_id: str = "dc", reason: str | None = None) -> DeclineInMail:
    return DeclineInMail(command_id=command_id, inmail_id="1-m1", member_id=member_id, reason=reason)


def assert_refund_names_its_response(
    s: Scenario, response_type: type[InMailReplied | InMailDeclined]
) -> None:
    [refund], [response] = s.recorded_of(CreditRefunded), s.recorded_of(response_type)
    assert refund.response_event_id == response.event_id


# Read receipts and acknowledgements ----------------------------------------------------


def test_marking_an_inmail_read_records_the_read_receipt_on_the_sender():
    s = with_mail().when(mark_read(), at=T0 + DAY)
    s.then(read(MAIL))
    assert s.state("alice").inmails["1-m1"].read_seq == 4
    assert s.reply == InMailData("1-m1")


def test_a_second_read_receipt_is_a_no_op_answering_with_the_first():
    s = with_mail(read(MAIL, at=T0 + DAY))  # seq 4
    s.when(mark_read(command_id="rd2"), at=T0 + 2 * DAY).then_nothing_new(4)


def test_acknowledging_an_inmail_records_the_acknowledgement():
    with_mail().when(acknowledge()).then(acknowledged(MAIL))


def test_a_second_acknowledgement_is_a_no_op_answering_with_the_first():
    s = with_mail()
    s.done(acknowledge())  # seq 4
    s.done(mark_read())  # seq 5
    s.when(acknowledge(command_id="ack2")).then_nothing_new(4)


def test_reading_and_acknowledging_are_recorded_independently():
    with_mail(read(MAIL)).when(acknowledge()).then(acknowledged(MAIL))


# Who may respond, to what ------------------------------------------------------------------

RECIPIENT_COMMANDS = [mark_read, acknowledge, reply, decline]


@pytest.mark.parametrize("command", RECIPIENT_COMMANDS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("who", ["alice", "carol"])
def test_only_the_recipient_may_read_acknowledge_reply_or_decline(command, who):
    with_mail(registered("carol")).when(command(member_id=who)).then_error(errors.NotRecipient)


@pytest.mark.parametrize("command", RECIPIENT_COMMANDS, ids=lambda c: c.__name__)
def test_an_inmail_the_sender_never_sent_is_unknown(command):
    s = given(registered("alice"), registered("bob"), sent("alice", "bob", "1-other"))
    s.when(command()).then_error(errors.UnknownInMail)


@pytest.mark.parametrize("command", RECIPIENT_COMMANDS, ids=lambda c: c.__name__)
def test_an_inmail_of_no_known_sender_is_unknown(command):
    Scenario().when(command()).then_error(errors.UnknownInMail)


@pytest.mark.parametrize("command", RECIPIENT_COMMANDS, ids=lambda c: c.__name__)
def test_a_response_earlier_than_the_senders_latest_event_is_refused_as_invalid_time(command):
    s = with_mail(registered("carol"), sent("alice", "carol", "1-m2", at=T0 + DAY))
    s.when(command(), at=T0 + DAY - timedelta(seconds=1)).then_error(errors.InvalidTime)


@pytest.mark.parametrize(("blocker", "blockee"), [("alice", "bob"), ("bob", "alice")])
def test_a_block_after_sending_does_not_stop_the_recipient_responding(blocker, blockee):
    s = with_mail(blocked(blocker, blockee))
    s.when(decline(), at=T0 + DAY).then(declined(MAIL), refunded(MAIL, NEW))


# Replies, declines and refunds ------------------------------------------------------------


def test_a_reply_within_90_days_refunds_the_charged_inmail():
    s = with_mail().when(reply(), at=T0 + 10 * DAY)
    s.then(replied(MAIL, body="Happy to talk"), refunded(MAIL, NEW))
    assert_refund_names_its_response(s, InMailReplied)
    alice = s.state("alice")
    assert (alice.balance, alice.refunded, alice.inmails["1-m1"].refunded) == (5, 1, True)
    assert s.reply == RespondedData("1-m1", True)


def test_a_reply_on_the_90th_day_exactly_still_refunds():
    s = with_mail().when(reply(), at=T0 + REFUND_WINDOW)
    s.then(
        refreshed("alice", "2026-02", granted=5),  # 9
        refreshed("alice", "2026-03", granted=5),  # 14
        refreshed("alice", "2026-04", granted=5, forfeited=4),  # 15, the cap
        replied(MAIL, body="Happy to talk"),
        refunded(MAIL, NEW),
    )


def test_reply_after_90_days_is_recorded_without_refund():
    s = with_mail().when(reply(), at=T0 + REFUND_WINDOW + timedelta(microseconds=1))
    s.then(replied(MAIL, body="Happy to talk"))
    assert s.reply == RespondedData("1-m1", False)
    assert s.state("alice").balance == 4


def test_a_decline_within_90_days_refunds_the_charged_inmail():
    s = with_mail().when(decline(reason="Not looking"), at=T0 + DAY)
    s.then(declined(MAIL, reason="Not looking"), refunded(MAIL, NEW))
    assert_refund_names_its_response(s, InMailDeclined)
    assert s.reply == RespondedData("1-m1", True)


def test_a_decline_after_90_days_is_recorded_without_refund():
    with_mail().when(decline(), at=T0 + 91 * DAY).then(declined(MAIL))


def test_a_response_to_a_free_inmail_refunds_nothing():
    s = given(registered("alice"), registered("bob", open_profile=True), FREE_MAIL)
    s.when(reply(), at=T0 + DAY).then(replied(FREE_MAIL, body="Happy to talk"))
    assert s.reply == RespondedData("1-m1", False)


def test_a_reply_after_a_decline_is_recorded_without_a_second_refund():
    decline_event = declined(MAIL, at=T0 + DAY)
    s = with_mail(decline_event, refunded(MAIL, decline_event.event_id, at=T0 + DAY))
    s.when(reply(), at=T0 + 2 * DAY).then(replied(MAIL, body="Happy to talk"))
    assert s.reply == RespondedData("1-m1", False)


def test_the_credit_comes_back_once_when_the_recipient_declines_then_replies():
    s = given(registered("alice"), registered("bob"))
    s.done(send("alice", "bob"))
    [mail] = s.recorded_of(InMailSent)
    s.done(DeclineInMail(command_id="dc", inmail_id=mail.inmail_id, member_id="bob"), at=T0 + DAY)
    s.done(RecordReply(command_id="re", inmail_id=mail.inmail_id, member_id="bob", body="Actually, yes"),
           at=T0 + 2 * DAY)
    alice = s.state("alice")
    assert (alice.balance, alice.spent, alice.refunded) == (5, 1, 1)
    assert alice.inmails[mail.inmail_id].replied_seq is not None
    assert alice.inmails[mail.inmail_id].declined_seq is not None


def test_a_reply_after_a_decline_that_came_too_late_earns_no_refund_either():
    s = with_mail(declined(MAIL, at=T0 + 95 * DAY))
    s.when(reply(), at=T0 + 96 * DAY).then(replied(MAIL, body="Happy to talk"))


def test_a_decline_after_a_reply_is_refused_as_already_responded():
    s = with_mail(replied(MAIL, at=T0 + DAY))
    s.when(decline(), at=T0 + 2 * DAY).then_error(errors.AlreadyResponded)


def test_a_second_reply_is_refused_as_already_responded():
    s = with_mail(replied(MAIL, at=T0 + DAY))
    s.when(reply(command_id="re2"), at=T0 + 2 * DAY).then_error(errors.AlreadyResponded)


def test_a_second_decline_is_refused_as_already_responded():
    s = with_mail(declined(MAIL, at=T0 + DAY))
    s.when(decline(command_id="dc2"), at=T0 + 2 * DAY).then_error(errors.AlreadyResponded)


@pytest.mark.parametrize(("body", "error"), [("", errors.EmptyMessage), (" \n", errors.EmptyMessage),
                                             ("ü" * 1901, errors.BodyTooLong)])
def test_a_reply_body_follows_the_message_rules(body, error):
    with_mail().when(reply(body=body)).then_error(error)


def test_a_reply_of_1900_characters_is_accepted():
    with_mail().when(reply(body="ü" * 1900)).then(replied(MAIL, body="ü" * 1900), refunded(MAIL, NEW))


# Repeats --------------------------------------------------------------------------------------


def test_a_repeated_reply_answers_that_it_was_refunded_even_after_other_events():
    s = with_mail()
    s.done(reply(), at=T0 + DAY)  # seqs 4, 5
    s.done(send("alice", "bob", "s2"), at=T0 + 2 * DAY)
    s.when(reply(), at=T0 + 3 * DAY).then_nothing_new(5)
    assert s.reply == RespondedData("1-m1", True)


def test_a_repeated_read_receipt_answers_with_its_own_event():
    s = with_mail()
    s.done(mark_read())  # seq 4
    s.done(acknowledge())
    s.when(mark_read()).then_nothing_new(4)
