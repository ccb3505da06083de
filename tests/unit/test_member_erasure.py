"""Erasure (contract section 11): EraseMember, and every command naming an erased member."""

from __future__ import annotations

import msgspec

from contracts.commands import (
    AcknowledgeInMail,
    AnyCommand,
    BlockMember,
    ChangeTier,
    ConnectMembers,
    DeclineInMail,
    EraseMember,
    MarkInMailRead,
    RecordReply,
    RefreshCredits,
    UpdatePreferences,
)
from contracts.events import AnyEvent, MemberErased, MemberRegistered
from contracts.personal import is_sealed, token
from contracts.replies import CommandOk, MemberData
from contracts.types import Tier
from services.domain import errors
from services.due.index import DueIndex
from tests.unit.due_events import plan, scheduled
from tests.unit.scenario import DAY, HEADER, T0, Scenario, given, register, registered, send, sent


def sealed_registration(member_id: str, tier: Tier = "premium_career") -> MemberRegistered:
    """A registration as the service records it since encryption: the display name is a token."""
    return msgspec.structs.replace(
        registered(member_id, tier), display_name=token(member_id, "display_name", "c2VhbGVk")
    )


def erase(member_id: str = "alice", command_id: str = "erase") -> EraseMember:
    return EraseMember(command_id=command_id, member_id=member_id)


def erased_alice() -> Scenario:
    s = given(sealed_registration("alice", "recruiter"), sealed_registration("bob"))
    s.done(erase(), at=T0 + DAY)
    return s


def test_erasing_a_member_records_member_erased():
    s = given(sealed_registration("alice")).when(erase(), at=T0 + DAY)
    s.then(MemberErased(**HEADER, member_id="alice"))
    assert s.reply == MemberData("alice")
    assert s.state("alice").erased_seq is not None


def test_erasing_again_with_the_same_command_id_answers_the_original_reply_and_writes_nothing():
    s = erased_alice()
    assert isinstance(s.outcome, CommandOk)
    s.when(erase(), at=T0 + 2 * DAY).then_nothing_new(s.outcome.seq)


def test_erasing_an_erased_member_with_another_command_id_answers_member_erased():
    erased_alice().when(erase(command_id="erase-again"), at=T0 + 2 * DAY).then_error(errors.MemberErased)


def test_erasing_a_member_registered_before_encryption_answers_personal_data_in_clear():
    # Their name sits in a clear-text event that is never rewritten: destroying a key
    # could not forget it, so the erasure refuses rather than pretend.
    s = given(registered("alice")).when(erase(), at=T0 + DAY)
    refusal = s.then_error(errors.PersonalDataInClear)
    assert "before encryption" in refusal.error.message and "nothing was done" in refusal.error.message


def test_erasing_an_unknown_member_answers_unknown_member():
    Scenario().when(erase("nobody")).then_error(errors.UnknownMember)


def test_erasure_leaves_the_members_credits_and_inmails_as_they_were():
    s = given(sealed_registration("alice", "recruiter"), sealed_registration("bob"))
    s.done(send("alice", "bob"), at=T0 + DAY)
    before = s.state("alice")
    s.done(erase(), at=T0 + 2 * DAY)
    after = s.state("alice")
    assert (after.balance, after.spent, after.granted, after.refunded, after.forfeited) == (
        before.balance, before.spent, before.granted, before.refunded, before.forfeited
    )
    assert after.inmails.keys() == before.inmails.keys()


def test_an_erased_member_cannot_send():
    erased_alice().when(send("alice", "bob", "send-after"), at=T0 + 2 * DAY).then_error(errors.MemberErased)


def test_sending_to_an_erased_member_answers_member_erased():
    erased_alice().when(send("bob", "alice", "send-to"), at=T0 + 2 * DAY).then_error(errors.MemberErased)


def test_an_erased_member_cannot_be_registered_again():
    erased_alice().when(register("alice"), at=T0 + 2 * DAY).then_error(errors.MemberErased)


def test_commands_targeting_an_erased_member_answer_member_erased():
    commands: list[AnyCommand] = [
        ChangeTier(command_id="tier", member_id="alice", tier="free"),
        UpdatePreferences(command_id="prefs", member_id="alice", inmail_opt_out=True),
        RefreshCredits(command_id="refresh", member_id="alice", month="2026-02"),
        ConnectMembers(command_id="connect", member_id="alice", other_member_id="bob"),
        ConnectMembers(command_id="connect-back", member_id="bob", other_member_id="alice"),
        BlockMember(command_id="block", member_id="bob", blocked_member_id="alice"),
    ]
    s = erased_alice()
    for command in commands:
        s.when(command, at=T0 + 2 * DAY).then_error(errors.MemberErased)


def test_an_erased_recipient_can_no_longer_act_on_an_inmail_they_received():
    mail = sent("bob", "alice", "2-m1")
    s = given(sealed_registration("alice"), sealed_registration("bob"), mail)
    s.done(erase(), at=T0 + DAY)
    for command in (
        MarkInMailRead(command_id="read", inmail_id=mail.inmail_id, member_id="alice"),
        AcknowledgeInMail(command_id="ack", inmail_id=mail.inmail_id, member_id="alice"),
        RecordReply(command_id="reply", inmail_id=mail.inmail_id, member_id="alice", body="Yes"),
        DeclineInMail(command_id="decline", inmail_id=mail.inmail_id, member_id="alice"),
    ):
        s.when(command, at=T0 + 2 * DAY).then_error(errors.MemberErased)


def test_a_recipient_can_no_longer_act_on_an_inmail_from_an_erased_sender():
    mail = sent("alice", "bob", "1-m1")
    s = given(sealed_registration("alice"), sealed_registration("bob"), mail)
    s.done(erase(), at=T0 + DAY)
    reply = RecordReply(command_id="reply", inmail_id=mail.inmail_id, member_id="bob", body="Yes")
    s.when(reply, at=T0 + 2 * DAY).then_error(errors.MemberErased)


def test_the_sealed_form_is_what_tells_clear_text_apart():
    assert is_sealed(token("alice", "subject", "abc"))
    assert not is_sealed("A role for you")
    assert not is_sealed("enc1:alice:subject:")  # no payload: clear text that looks alike


def test_an_erased_member_has_no_due_work_and_no_email_alert_left():
    index = DueIndex()
    events: list[AnyEvent] = [
        sealed_registration("rec", "recruiter"),
        sealed_registration("bob"),
        sealed_registration("carol"),
        scheduled("rec", "bob", "1-s", send_at=T0 + 3 * DAY),
        scheduled("carol", "bob", "3-s", send_at=T0 + 3 * DAY),
        sent("carol", "bob", "3-m", automated_follow_up=plan("3-f"), sender_tier="recruiter"),
    ]
    for seq, event in enumerate(events, 1):
        index.apply(seq, event)
    assert index.pending() == 3
    index.apply(7, MemberErased(event_id="e", occurred_at=T0 + DAY, command_id="erase", member_id="rec"))
    assert index.pending() == 2, "the erased sender's scheduled send is gone"
    index.apply(8, MemberErased(event_id="f", occurred_at=T0 + DAY, command_id="erase", member_id="bob"))
    assert index.pending() == 0, "nothing is due any more towards an erased recipient"
    late = sent("carol", "bob", "3-late", at=T0 + 2 * DAY, sender_tier="recruiter")
    assert index.apply(9, late) is None, "no alert to an erased recipient"
