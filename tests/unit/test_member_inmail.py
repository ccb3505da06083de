"""Sending InMail: who may be sent what, what it costs, bulk sends and follow-ups."""

from datetime import timedelta, timezone

import msgspec
import pytest

from contracts.commands import ChangeTier, MarkInMailRead, SendBulkInMail, SendInMail
from contracts.events import FreeReason, InMailSent, encode_event
from contracts.replies import BulkSentData, SentData
from contracts.types import InMailId, InMailKind, Tier
from services.domain import errors
from services.domain.decider import decide
from services.domain.ids import registered_seq_of
from services.domain.rules import Context
from services.domain.state import rebuild
from tests.unit.scenario import (
    DAY,
    NEW,
    T0,
    Scenario,
    blocked,
    connected,
    declined,
    given,
    preferences,
    read,
    registered,
    replied,
    send,
    sent,
)


def alice_and_bob(*, open_profile: bool = False, inmail_opt_out: bool = False) -> Scenario:
    bob = registered("bob", open_profile=open_profile, inmail_opt_out=inmail_opt_out)
    return given(registered("alice", "premium_career"), bob)


def bulk(*recipients: str, command_id: str = "b", **fields) -> SendBulkInMail:
    fields = {"subject": "Open roles", "body": "We are hiring"} | fields
    return SendBulkInMail(command_id=command_id, sender_id="rec", recipient_ids=list(recipients), **fields)


def bulk_sent(
    recipient: str,
    tier: Tier = "recruiter",
    *,
    charged: bool = True,
    free_reason: FreeReason | None = None,
    kind: InMailKind = "recruiter_outreach",
    template_id: str | None = None,
) -> InMailSent:
    return sent("rec", recipient, NEW, sender_tier=tier, subject="Open roles", body="We are hiring",
                bulk=True, charged=charged, free_reason=free_reason, kind=kind, template_id=template_id)


# One InMail -------------------------------------------------------------------------


def test_a_charged_inmail_costs_one_credit_and_answers_what_is_left():
    s = alice_and_bob().when(send("alice", "bob"))
    s.then(sent("alice", "bob", NEW, charged=True, free_reason=None, sender_tier="premium_career"))
    [mail] = s.recorded_of(InMailSent)
    assert (s.state("alice").balance, s.state("alice").spent) == (4, 1)
    assert s.reply == SentData(mail.inmail_id, True, None, 4)


def test_the_inmail_records_subject_body_kind_and_template():
    s = alice_and_bob().when(send("alice", "bob", subject="Ré: poste", body="Bonjour 👋",
                                  kind="talent_pipeline", template_id="tpl-7"))
    s.then(sent("alice", "bob", NEW, subject="Ré: poste", body="Bonjour 👋", kind="talent_pipeline",
                template_id="tpl-7"))


def test_inmail_ids_start_with_the_senders_registration_seq_in_base_36_and_route_to_the_sender():
    s = given(*(registered(f"m{n}") for n in range(82)), registered("alice"), registered("bob"))  # 83, 84
    s.done(send("alice", "bob"))
    [mail] = s.recorded_of(InMailSent)
    assert mail.inmail_id.startswith("2b-")
    assert registered_seq_of(mail.inmail_id) == 83
    assert msgspec.json.decode(f'"{mail.inmail_id}"', type=InMailId) == mail.inmail_id
    s.when(MarkInMailRead(command_id="r", inmail_id=mail.inmail_id, member_id="bob")).then(read(mail))


def test_an_inmail_to_a_connection_is_free():
    s = alice_and_bob().given(connected("alice", "bob")).when(send("alice", "bob"))
    s.then(sent("alice", "bob", NEW, charged=False, free_reason="connection"))
    assert (s.state("alice").balance, s.state("alice").spent) == (5, 0)
    assert s.reply == SentData(s.recorded_of(InMailSent)[0].inmail_id, False, "connection", 5)


def test_an_inmail_to_a_member_who_connected_with_the_sender_is_free():
    s = alice_and_bob().given(connected("bob", "alice")).when(send("alice", "bob"))
    s.then(sent("alice", "bob", NEW, charged=False, free_reason="connection"))


def test_an_inmail_to_an_open_profile_member_is_free():
    s = alice_and_bob(open_profile=True).when(send("alice", "bob"))
    s.then(sent("alice", "bob", NEW, charged=False, free_reason="open_profile"))


def test_a_free_tier_member_can_send_to_a_connection():
    s = given(registered("alice", "free"), registered("bob"), connected("bob", "alice"))
    s.when(send("alice", "bob"))
    s.then(sent("alice", "bob", NEW, charged=False, free_reason="connection", sender_tier="free"))


def test_a_free_tier_member_can_send_to_an_open_profile_member():
    s = given(registered("alice", "free"), registered("bob", open_profile=True))
    s.when(send("alice", "bob"))
    s.then(sent("alice", "bob", NEW, charged=False, free_reason="open_profile", sender_tier="free"))


def test_a_free_tier_member_cannot_send_a_charged_inmail():
    s = given(registered("alice", "free"), registered("bob"))
    s.when(send("alice", "bob")).then_error(errors.TierNotAllowed)


def test_a_member_downgraded_to_free_cannot_send_a_charged_inmail():
    s = alice_and_bob()
    s.done(ChangeTier(command_id="t1", member_id="alice", tier="free"))
    s.when(send("alice", "bob")).then_error(errors.TierNotAllowed)


def test_an_opted_out_recipient_cannot_be_sent_inmail():
    alice_and_bob(inmail_opt_out=True).when(send("alice", "bob")).then_error(errors.RecipientOptedOut)


def test_opting_out_beats_open_profile():
    s = alice_and_bob(open_profile=True, inmail_opt_out=True).when(send("alice", "bob"))
    s.then_error(errors.RecipientOptedOut)


@pytest.mark.parametrize(("asker", "other"), [("alice", "bob"), ("bob", "alice")])
def test_opting_out_does_not_apply_to_connections(asker, other):
    s = alice_and_bob(inmail_opt_out=True).given(connected(asker, other)).when(send("alice", "bob"))
    s.then(sent("alice", "bob", NEW, charged=False, free_reason="connection"))


@pytest.mark.parametrize(("blocker", "blockee"), [("alice", "bob"), ("bob", "alice")])
def test_blocked_pairs_cannot_be_sent_inmail_in_either_direction(blocker, blockee):
    s = alice_and_bob().given(blocked(blocker, blockee))
    s.when(send("alice", "bob")).then_error(errors.Blocked)
    s.when(send("bob", "alice")).then_error(errors.Blocked)


@pytest.mark.parametrize(("blocker", "blockee"), [("alice", "bob"), ("bob", "alice")])
def test_a_block_beats_a_connection(blocker, blockee):
    s = alice_and_bob().given(connected("alice", "bob"), blocked(blocker, blockee))
    s.when(send("alice", "bob")).then_error(errors.Blocked)


def test_a_block_beats_open_profile():
    s = alice_and_bob(open_profile=True).given(blocked("bob", "alice"))
    s.when(send("alice", "bob")).then_error(errors.Blocked)


def test_a_member_cannot_send_inmail_to_themself():
    alice_and_bob().when(send("alice", "alice")).then_error(errors.SelfMessage)


@pytest.mark.parametrize(("sender", "recipient"), [("ghost", "bob"), ("alice", "ghost")])
def test_inmail_between_unknown_members_is_refused(sender, recipient):
    alice_and_bob().when(send(sender, recipient)).then_error(errors.UnknownMember)


def test_a_send_earlier_than_the_senders_latest_event_is_refused_as_invalid_time():
    s = alice_and_bob().given(preferences("alice", at=T0 + DAY))
    s.when(send("alice", "bob"), at=T0 + DAY - timedelta(seconds=1)).then_error(errors.InvalidTime)


def test_the_recipients_later_events_do_not_make_a_send_too_early():
    s = alice_and_bob().given(preferences("bob", at=T0 + DAY))
    s.when(send("alice", "bob"), at=T0 + timedelta(hours=1)).then(sent("alice", "bob", NEW))


def test_events_are_stamped_with_the_command_time_in_utc():
    in_paris = T0.astimezone(timezone(timedelta(hours=1)))
    [event] = alice_and_bob().when(send("alice", "bob"), at=in_paris).then(sent("alice", "bob", NEW))
    assert event.occurred_at == T0
    assert b'"occurred_at":"2026-01-05T09:00:00Z"' in encode_event(event)


def test_the_decider_itself_stamps_events_in_utc_whatever_offset_its_time_has():
    alice, bob = rebuild([(registered("alice"), 1)]), rebuild([(registered("bob"), 2)])
    in_paris = Context(now=T0.astimezone(timezone(timedelta(hours=1))), ids=iter(["e1", "m1"]))
    [event] = decide(send("alice", "bob"), alice, {"bob": bob}, in_paris).events
    assert b'"occurred_at":"2026-01-05T09:00:00Z"' in encode_event(event)


# Message lengths and emptiness ------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "body"),
    [("é" * 200, "ok"), ("ok", "😀" * 1900), ("x", "y"), ("  padded  ", "\n body \n")],
    ids=["200-accented-subject", "1900-emoji-body", "one-character-each", "surrounding-space"],
)
def test_subjects_up_to_200_and_bodies_up_to_1900_characters_are_accepted(subject, body):
    s = alice_and_bob().when(send("alice", "bob", subject=subject, body=body))
    s.then(sent("alice", "bob", NEW, subject=subject, body=body))


def test_a_subject_of_201_characters_is_refused_even_if_its_bytes_would_fit():
    s = alice_and_bob().when(send("alice", "bob", subject="é" * 201))
    s.then_error(errors.SubjectTooLong)


def test_a_body_of_1901_characters_is_refused():
    alice_and_bob().when(send("alice", "bob", body="😀" * 1901)).then_error(errors.BodyTooLong)


@pytest.mark.parametrize("blank", ["", " ", "\t\n", "\u00a0\u2003"], ids=repr)
@pytest.mark.parametrize("field", ["subject", "body"])
def test_an_empty_or_blank_subject_or_body_is_refused_as_empty_message(field, blank):
    s = alice_and_bob().when(send("alice", "bob", **{field: blank}))
    s.then_error(errors.EmptyMessage)


# Repeats ------------------------------------------------------------------------------


def test_a_repeated_send_answers_the_original_reply_even_after_other_sends():
    s = alice_and_bob()
    first = send("alice", "bob", "s1")
    s.done(first)  # seq 3
    [mail] = s.recorded_of(InMailSent)
    s.done(send("alice", "bob", "s2"))
    s.when(first).then_nothing_new(3)
    assert s.reply == SentData(mail.inmail_id, True, None, 4)


def test_a_repeated_send_writes_nothing_even_when_no_credit_is_left():
    s = alice_and_bob()
    first = send("alice", "bob", "s1")
    s.done(first)
    for n in range(4):
        s.done(send("alice", "bob", f"more{n}"))
    s.when(send("alice", "bob", "s6")).then_error(errors.InsufficientCredits)
    s.when(first).then_nothing_new(3)


# Bulk -----------------------------------------------------------------------------------


def recruiter_and_friends(tier: Tier = "recruiter", *, open_profile: bool = False) -> Scenario:
    bob = registered("bob", open_profile=open_profile)
    return given(registered("rec", tier), bob, registered("carol"), registered("dan"))


def test_bulk_inmail_sends_one_inmail_per_recipient():
    s = recruiter_and_friends().when(bulk("bob", "carol", "dan", kind="event_invitation", template_id="t1"))
    s.then(*(bulk_sent(rid, kind="event_invitation", template_id="t1") for rid in ("bob", "carol", "dan")))
    ids = [mail.inmail_id for mail in s.recorded_of(InMailSent)]
    assert len(set(ids)) == 3
    assert s.reply == BulkSentData(ids, 147)


def test_a_repeated_bulk_send_answers_the_original_ids():
    s = recruiter_and_friends()
    s.done(bulk("bob", "carol", command_id="b1"))
    ids = [mail.inmail_id for mail in s.recorded_of(InMailSent)]
    s.done(bulk("carol", "dan", command_id="b2"))
    s.when(bulk("bob", "carol", command_id="b1")).then_nothing_new(6)
    assert s.reply == BulkSentData(ids, 148)


@pytest.mark.parametrize("tier", ["free", "premium_career", "premium_business", "sales_navigator"])
def test_bulk_inmail_outside_recruiter_tiers_is_refused(tier):
    recruiter_and_friends(tier).when(bulk("bob", "carol")).then_error(errors.TierNotAllowed)


def test_recruiter_lite_may_send_bulk_inmail():
    s = recruiter_and_friends("recruiter_lite").when(bulk("bob", "carol"))
    s.then(bulk_sent("bob", "recruiter_lite"), bulk_sent("carol", "recruiter_lite"))


@pytest.mark.parametrize(
    ("erin", "error"),
    [
        ([registered("erin", inmail_opt_out=True)], errors.RecipientOptedOut),
        ([registered("erin"), blocked("erin", "rec")], errors.Blocked),
        ([registered("erin"), blocked("rec", "erin")], errors.Blocked),
        ([], errors.UnknownMember),
    ],
    ids=["opted-out", "blocked-by-recipient", "blocked-by-sender", "unknown"],
)
def test_one_bad_recipient_refuses_the_whole_bulk(erin, error):
    s = recruiter_and_friends(open_profile=True).given(*erin)
    s.when(bulk("bob", "erin", "carol")).then_error(error)


def test_bulk_including_the_sender_is_refused_as_self_message():
    recruiter_and_friends().when(bulk("bob", "rec")).then_error(errors.SelfMessage)


def test_bulk_to_connections_and_open_profiles_only_costs_nothing():
    s = recruiter_and_friends(open_profile=True).given(connected("carol", "rec"))
    s.when(bulk("bob", "carol"))
    s.then(bulk_sent("bob", charged=False, free_reason="open_profile"),
           bulk_sent("carol", charged=False, free_reason="connection"))
    assert s.reply == BulkSentData([m.inmail_id for m in s.recorded_of(InMailSent)], 150)


@pytest.mark.parametrize(
    ("fields", "error"),
    [({"subject": " "}, errors.EmptyMessage), ({"subject": "s" * 201}, errors.SubjectTooLong),
     ({"body": ""}, errors.EmptyMessage), ({"body": "b" * 1901}, errors.BodyTooLong)],
)
def test_bulk_messages_follow_the_same_length_rules(fields, error):
    recruiter_and_friends().when(bulk("bob", "carol", **fields)).then_error(error)


# Follow-ups ---------------------------------------------------------------------------


def test_a_follow_up_is_recorded_and_charged_like_any_inmail():
    s = alice_and_bob().given(sent("alice", "bob", "1-m1"))
    s.when(send("alice", "bob", follow_up_of="1-m1"), at=T0 + 7 * DAY)
    s.then(sent("alice", "bob", NEW, follow_up_of="1-m1", charged=True))
    assert s.state("alice").balance == 3


def test_a_follow_up_to_a_connection_is_free():
    mail = sent("alice", "bob", "1-m1", charged=False, free_reason="connection")
    s = alice_and_bob().given(connected("alice", "bob"), mail)
    s.when(send("alice", "bob", follow_up_of="1-m1"))
    s.then(sent("alice", "bob", NEW, follow_up_of="1-m1", charged=False, free_reason="connection"))


def test_a_follow_up_of_an_unknown_inmail_is_refused():
    s = alice_and_bob().when(send("alice", "bob", follow_up_of="1-nope"))
    s.then_error(errors.InvalidFollowUp)


def test_a_follow_up_of_another_senders_inmail_is_refused():
    s = alice_and_bob().given(registered("carol"), sent("carol", "bob", "3-m1"))
    s.when(send("alice", "bob", follow_up_of="3-m1")).then_error(errors.InvalidFollowUp)


def test_a_follow_up_to_another_recipient_is_refused():
    s = alice_and_bob().given(registered("carol"), sent("alice", "bob", "1-m1"))
    s.when(send("alice", "carol", follow_up_of="1-m1")).then_error(errors.InvalidFollowUp)


@pytest.mark.parametrize("response", [replied, declined])
def test_a_follow_up_of_an_inmail_with_a_response_is_refused(response):
    mail = sent("alice", "bob", "1-m1")
    s = alice_and_bob().given(mail, response(mail))
    s.when(send("alice", "bob", follow_up_of="1-m1")).then_error(errors.InvalidFollowUp)


def test_only_one_follow_up_per_inmail():
    s = alice_and_bob().given(sent("alice", "bob", "1-m1"), sent("alice", "bob", "1-m2", follow_up_of="1-m1"))
    s.when(send("alice", "bob", follow_up_of="1-m1")).then_error(errors.InvalidFollowUp)


def test_a_follow_up_may_itself_be_followed_up():
    s = alice_and_bob().given(sent("alice", "bob", "1-m1"), sent("alice", "bob", "1-m2", follow_up_of="1-m1"))
    s.when(send("alice", "bob", follow_up_of="1-m2")).then(sent("alice", "bob", NEW, follow_up_of="1-m2"))


def test_a_follow_up_to_a_recipient_who_opted_out_since_is_refused():
    s = alice_and_bob().given(sent("alice", "bob", "1-m1"), preferences("bob", inmail_opt_out=True))
    s.when(send("alice", "bob", follow_up_of="1-m1")).then_error(errors.RecipientOptedOut)


def test_a_follow_up_without_credits_is_refused():
    spent = [sent("alice", "bob", f"1-m{n}") for n in range(5)]
    s = alice_and_bob().given(*spent)
    s.when(send("alice", "bob", follow_up_of="1-m0")).then_error(errors.InsufficientCredits)


def test_the_send_command_default_kind_is_recruiter_outreach():
    cmd = SendInMail(command_id="c", sender_id="a", recipient_id="b", subject="s", body="b")
    assert cmd.kind == "recruiter_outreach"
