"""A command_id is one request: a retry gets the original answer, another request a conflict.
And a command's time may not come before the registration of a member it names."""

from datetime import timedelta

import msgspec
import pytest

from contracts.commands import (
    BlockMember,
    ChangeTier,
    ConnectMembers,
    RefreshCredits,
    SendBulkInMail,
    SendInMail,
    UpdatePreferences,
)
from contracts.events import InMailSent
from contracts.replies import SentData
from services.domain import errors
from services.domain.rules import fingerprint
from tests.unit.scenario import DAY, T0, Scenario, given, register, registered, send


def alice_and_bob() -> Scenario:
    return given(registered("alice", "recruiter"), registered("bob"), registered("carol"))


# Same command_id, same request ---------------------------------------------------------------


def test_a_retry_stamped_anew_is_the_same_request_and_gets_the_original_answer():
    s = alice_and_bob()
    [mail] = [e for e in s.done(send("alice", "bob", "s1")) if isinstance(e, InMailSent)]
    s.when(send("alice", "bob", "s1"), at=T0 + DAY).then_nothing_new(4)
    assert s.reply == SentData(mail.inmail_id, True, None, 149)


def test_the_fingerprint_is_of_what_is_asked_not_how_it_is_written():
    decode = msgspec.json.Decoder(SendInMail).decode
    written_out = decode(
        b'{"command_id":"c","sender_id":"a","recipient_id":"b","subject":"S","body":"B",'
        b'"kind":"recruiter_outreach","occurred_at":"2026-01-05T09:00:00Z"}'
    )
    left_out = decode(b'{"body":"B","subject":"S","recipient_id":"b","sender_id":"a","command_id":"c"}')
    assert fingerprint(written_out) == fingerprint(left_out)
    assert fingerprint(left_out) != fingerprint(msgspec.structs.replace(left_out, body="B2"))


# Same command_id, another request ------------------------------------------------------------


@pytest.mark.parametrize(
    "changed",
    [
        {"body": "Another text"},
        {"recipient_id": "carol"},
        {"kind": "talent_pipeline"},
        {"template_id": "t2"},
    ],
    ids=["body", "recipient", "kind", "template"],
)
def test_a_command_id_reused_with_another_payload_is_an_idempotency_conflict(changed):
    s = alice_and_bob()
    s.done(send("alice", "bob", "s1"))
    again = msgspec.structs.replace(send("alice", "bob", "s1"), **changed)
    failure = s.when(again).then_error(errors.IdempotencyConflict)
    assert "command_id s1 was already used on member alice for another SendInMail" in failure.error.message


def test_a_conflicting_registration_is_refused_even_though_the_member_exists():
    s = Scenario()
    s.done(register("alice", "recruiter"))
    s.when(register("alice", "premium_career")).then_error(errors.IdempotencyConflict)
    s.when(register("alice", "recruiter")).then_nothing_new(1)


def test_a_command_id_reused_for_a_bulk_send_of_other_recipients_is_a_conflict():
    s = alice_and_bob().given(registered("dave"))
    first = SendBulkInMail(command_id="b1", sender_id="alice", recipient_ids=["bob", "carol"],
                           subject="Roles", body="Interested?")
    s.done(first)
    s.when(msgspec.structs.replace(first, recipient_ids=["bob", "dave"]))
    s.then_error(errors.IdempotencyConflict)


def test_events_recorded_before_fingerprints_answer_repeats_by_command_type_as_before():
    s = alice_and_bob()
    s.done(ChangeTier(command_id="t1", member_id="bob", tier="sales_navigator"))
    old = [msgspec.structs.replace(event, fingerprint="") for event in s.recorded]
    s = alice_and_bob().given(*old)
    # Without a fingerprint there is nothing to compare the payload with.
    s.when(ChangeTier(command_id="t1", member_id="bob", tier="recruiter")).then_nothing_new(5)


# Time before a registration -------------------------------------------------------------------


@pytest.mark.parametrize(
    "cmd",
    [
        send("alice", "dave", "s1"),
        SendBulkInMail(
            command_id="b1", sender_id="alice", recipient_ids=["bob", "dave"], subject="S", body="B"
        ),
        ConnectMembers(command_id="c1", member_id="alice", other_member_id="dave"),
        BlockMember(command_id="k1", member_id="alice", blocked_member_id="dave"),
    ],
    ids=["send", "bulk", "connect", "block"],
)
def test_a_command_earlier_than_a_named_members_registration_is_invalid_time_not_unknown_member(cmd):
    s = alice_and_bob().given(registered("dave", at=T0 + DAY))
    failure = s.when(cmd, at=T0 + DAY - timedelta(seconds=1)).then_error(errors.InvalidTime)
    assert "earlier than the registration of member dave" in failure.error.message


def test_a_command_earlier_than_its_own_members_registration_is_invalid_time():
    s = given(registered("dave", at=T0 + DAY))
    s.when(UpdatePreferences(command_id="p1", member_id="dave", inmail_opt_out=True), at=T0)
    s.then_error(errors.InvalidTime)


def test_a_refresh_for_a_month_not_begun_is_invalid_time_whoever_the_member():
    s = Scenario().when(RefreshCredits(command_id="r1", member_id="ghost", month="2026-02"), at=T0)
    s.then_error(errors.InvalidTime)
