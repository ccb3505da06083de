"""The member's profile: registration, preferences, tier, connections and blocks."""

from datetime import timedelta

import msgspec
import pytest

from contracts.commands import (
    BlockMember,
    ChangeTier,
    ConnectMembers,
    RecordReply,
    RefreshCredits,
    UpdatePreferences,
)
from contracts.events import CreditsForfeited, InMailSent, MemberRegistered, TierChanged
from contracts.replies import CommandOk, MemberRegisteredData, TierChangedData
from contracts.types import Tier
from services.domain import errors
from services.domain.decider import aggregate_of
from services.domain.state import evolve, rebuild
from tests.unit.scenario import (
    DAY,
    HEADER,
    T0,
    Scenario,
    blocked,
    connected,
    given,
    preferences,
    register,
    registered,
    send,
)


def alice_registered(
    tier: Tier, granted: int, *, open_profile: bool = False, inmail_opt_out: bool = False
) -> MemberRegistered:
    return MemberRegistered(**HEADER, member_id="alice", display_name="Alice", tier=tier,
                            open_profile=open_profile, inmail_opt_out=inmail_opt_out, month="2026-01",
                            granted=granted)


def alice_forfeited(amount: int) -> CreditsForfeited:
    return CreditsForfeited(**HEADER, member_id="alice", amount=amount, reason="tier_change")


def alice_tier_changed(old_tier: Tier, tier: Tier, granted: int) -> TierChanged:
    return TierChanged(**HEADER, member_id="alice", old_tier=old_tier, tier=tier, month="2026-01",
                       granted=granted)


# Registration -------------------------------------------------------------------


def test_registering_grants_the_first_months_allotment_inside_member_registered():
    s = Scenario().when(register("alice", "sales_navigator"))
    s.then(alice_registered("sales_navigator", 50))
    alice = s.state("alice")
    assert (alice.balance, alice.granted, alice.last_refreshed_month) == (50, 50, "2026-01")
    assert s.reply == MemberRegisteredData("alice", 50)


def test_registering_a_free_member_grants_nothing():
    Scenario().when(register("alice", "free")).then(alice_registered("free", 0))


def test_the_email_goes_to_the_contacts_and_not_into_the_registration_event():
    s = Scenario()
    [event] = s.when(register("alice")).then(alice_registered("premium_career", 5))
    assert "alice@example.com" not in msgspec.json.encode(event).decode()
    assert s.contacts.emails == {("alice", "reg-alice"): "alice@example.com"}


def test_registering_an_existing_member_is_refused_as_member_exists():
    s = given(registered("alice")).when(register("alice"))
    s.then_error(errors.MemberExists)
    assert s.contacts.emails == {}


def test_registering_again_with_the_same_command_id_answers_the_original():
    s = given(registered("bob"), registered("carol"))
    s.done(register("alice"))  # seq 3
    s.done(ChangeTier(command_id="t1", member_id="alice", tier="recruiter"))
    s.when(register("alice")).then_nothing_new(3)
    assert s.reply == MemberRegisteredData("alice", 5)


def test_open_profile_on_the_free_tier_is_refused_at_registration():
    Scenario().when(register("alice", "free", open_profile=True)).then_error(errors.TierNotAllowed)


def test_open_profile_and_opt_out_can_be_chosen_at_registration_on_a_paid_tier():
    s = Scenario().when(register("alice", "premium_career", open_profile=True, inmail_opt_out=True))
    s.then(alice_registered("premium_career", 5, open_profile=True, inmail_opt_out=True))


# Preferences --------------------------------------------------------------------


def test_updating_preferences_records_both_as_they_are_now():
    s = given(registered("alice", open_profile=True))
    s.when(UpdatePreferences(command_id="p1", member_id="alice", inmail_opt_out=True))
    s.then(preferences("alice", open_profile=True, inmail_opt_out=True))


def test_open_profile_can_be_turned_off_on_a_paid_tier():
    s = given(registered("alice", open_profile=True))
    s.when(UpdatePreferences(command_id="p1", member_id="alice", open_profile=False))
    s.then(preferences("alice", open_profile=False, inmail_opt_out=False))


def test_open_profile_on_the_free_tier_is_refused():
    s = given(registered("alice", "free"))
    s.when(UpdatePreferences(command_id="p1", member_id="alice", open_profile=True))
    s.then_error(errors.TierNotAllowed)


def test_a_free_member_may_opt_out_of_inmail():
    s = given(registered("alice", "free"))
    s.when(UpdatePreferences(command_id="p1", member_id="alice", inmail_opt_out=True))
    s.then(preferences("alice", inmail_opt_out=True))


def test_the_same_preferences_again_is_a_no_op_answering_with_the_event_that_recorded_them():
    s = given(registered("alice"), preferences("alice", inmail_opt_out=True))  # seqs 1, 2
    s.done(ChangeTier(command_id="t1", member_id="alice", tier="recruiter"), at=T0 + DAY)
    s.when(UpdatePreferences(command_id="p1", member_id="alice", inmail_opt_out=True), at=T0 + DAY)
    s.then_nothing_new(2)


def test_updating_preferences_of_an_unknown_member_is_refused():
    s = Scenario().when(UpdatePreferences(command_id="p1", member_id="ghost", inmail_opt_out=True))
    s.then_error(errors.UnknownMember)


# Tier changes -------------------------------------------------------------------


def test_changing_tier_forfeits_the_old_balance_and_grants_the_new_allotment():
    s = given(registered("alice", "premium_career"))
    s.when(ChangeTier(command_id="t1", member_id="alice", tier="recruiter"), at=T0 + DAY)
    s.then(alice_forfeited(5), alice_tier_changed("premium_career", "recruiter", 150))
    alice = s.state("alice")
    assert (alice.tier, alice.balance, alice.granted, alice.forfeited) == ("recruiter", 150, 155, 5)
    assert s.reply == TierChangedData("alice", "recruiter", 150)


def test_changing_tier_with_nothing_banked_forfeits_nothing():
    s = given(registered("alice", "free"))
    s.when(ChangeTier(command_id="t1", member_id="alice", tier="premium_business"))
    s.then(alice_tier_changed("free", "premium_business", 15))


def test_downgrading_an_open_profile_member_to_free_turns_open_profile_off():
    s = given(registered("alice", "sales_navigator", open_profile=True, inmail_opt_out=True))
    s.when(ChangeTier(command_id="t1", member_id="alice", tier="free"))
    s.then(
        alice_forfeited(50),
        alice_tier_changed("sales_navigator", "free", 0),
        preferences("alice", open_profile=False, inmail_opt_out=True),
    )
    assert (s.state("alice").open_profile, s.state("alice").balance) == (False, 0)


def test_downgrading_an_open_profile_member_to_another_paid_tier_keeps_open_profile():
    s = given(registered("alice", "sales_navigator", open_profile=True))
    s.when(ChangeTier(command_id="t1", member_id="alice", tier="premium_career"))
    s.then(alice_forfeited(50), alice_tier_changed("sales_navigator", "premium_career", 5))


def test_changing_to_the_same_tier_is_a_no_op_answering_with_the_event_that_recorded_the_tier():
    s = given(registered("alice", "recruiter"), preferences("alice", inmail_opt_out=True))  # seqs 1, 2
    s.when(ChangeTier(command_id="t1", member_id="alice", tier="recruiter")).then_nothing_new(1)


def test_changing_tier_of_an_unknown_member_is_refused():
    s = Scenario().when(ChangeTier(command_id="t1", member_id="ghost", tier="recruiter"))
    s.then_error(errors.UnknownMember)


# Connections --------------------------------------------------------------------


def test_connecting_records_the_connection_on_the_member_who_asked():
    s = given(registered("alice"), registered("bob"))
    s.when(ConnectMembers(command_id="c1", member_id="alice", other_member_id="bob"))
    [event] = s.then(connected("alice", "bob"))
    assert aggregate_of(event) == "alice"
    assert (s.state("alice").connections, s.state("bob").connections) == ({"bob": 3}, {})


@pytest.mark.parametrize(("asker", "other"), [("alice", "bob"), ("bob", "alice")])
def test_connecting_again_from_either_side_is_a_no_op(asker, other):
    s = given(registered("alice"), registered("bob"), connected("alice", "bob"))  # seq 3
    s.when(ConnectMembers(command_id="c2", member_id=asker, other_member_id=other)).then_nothing_new(3)


@pytest.mark.parametrize(("asker", "other"), [("alice", "ghost"), ("ghost", "alice")])
def test_connecting_with_an_unknown_member_is_refused(asker, other):
    s = given(registered("alice"))
    s.when(ConnectMembers(command_id="c1", member_id=asker, other_member_id=other))
    s.then_error(errors.UnknownMember)


def test_connecting_earlier_than_the_other_members_registration_is_refused_as_invalid_time():
    s = given(registered("alice"), registered("bob", at=T0 + DAY))
    s.when(ConnectMembers(command_id="c1", member_id="alice", other_member_id="bob"), at=T0)
    failure = s.then_error(errors.InvalidTime)
    assert "registration of member bob" in failure.error.message


@pytest.mark.parametrize(("blocker", "blockee"), [("alice", "bob"), ("bob", "alice")])
def test_blocked_members_cannot_connect(blocker, blockee):
    s = given(registered("alice"), registered("bob"), blocked(blocker, blockee))
    s.when(ConnectMembers(command_id="c1", member_id="alice", other_member_id="bob"))
    s.then_error(errors.Blocked)


# Blocks -------------------------------------------------------------------------


def test_blocking_records_the_block_on_the_blocker():
    s = given(registered("alice"), registered("bob"))
    s.when(BlockMember(command_id="b1", member_id="bob", blocked_member_id="alice"))
    [event] = s.then(blocked("bob", "alice"))
    assert aggregate_of(event) == "bob"
    assert (s.state("bob").blocked, s.state("alice").blocked) == ({"alice": 3}, {})


def test_blocking_again_is_a_no_op_answering_with_the_original_block():
    s = given(registered("alice"), registered("bob"), blocked("bob", "alice"))  # seq 3
    s.when(BlockMember(command_id="b2", member_id="bob", blocked_member_id="alice")).then_nothing_new(3)


def test_a_blocked_member_can_block_back():
    s = given(registered("alice"), registered("bob"), blocked("bob", "alice"))
    s.when(BlockMember(command_id="b2", member_id="alice", blocked_member_id="bob"))
    s.then(blocked("alice", "bob"))


def test_blocking_a_connection_is_recorded():
    s = given(registered("alice"), registered("bob"), connected("alice", "bob"))
    s.when(BlockMember(command_id="b1", member_id="alice", blocked_member_id="bob"))
    s.then(blocked("alice", "bob"))


def test_blocking_an_unknown_member_is_refused():
    s = given(registered("alice"))
    s.when(BlockMember(command_id="b1", member_id="alice", blocked_member_id="ghost"))
    s.then_error(errors.UnknownMember)


# Time ---------------------------------------------------------------------------

PROFILE_COMMANDS = [
    ChangeTier(command_id="x", member_id="alice", tier="recruiter"),
    UpdatePreferences(command_id="x", member_id="alice", inmail_opt_out=True),
    ConnectMembers(command_id="x", member_id="alice", other_member_id="bob"),
    BlockMember(command_id="x", member_id="alice", blocked_member_id="bob"),
    RefreshCredits(command_id="x", member_id="alice", month="2026-01"),
]


@pytest.mark.parametrize("cmd", PROFILE_COMMANDS, ids=lambda c: type(c).__name__)
def test_a_command_earlier_than_the_members_latest_event_is_refused_as_invalid_time(cmd):
    latest = T0 + timedelta(hours=5)
    s = given(registered("alice"), registered("bob"), preferences("alice", open_profile=True, at=latest))
    s.when(cmd, at=latest - timedelta(microseconds=1)).then_error(errors.InvalidTime)
    assert isinstance(s.when(cmd, at=latest).outcome, CommandOk)


# Repeats and the state they answer from --------------------------------------------


def test_a_repeated_command_id_answers_the_original_even_after_other_events():
    s = given(registered("alice", "premium_business"))
    change = ChangeTier(command_id="t1", member_id="alice", tier="recruiter")
    s.done(change)  # CreditsForfeited at 2, TierChanged at 3
    s.done(ChangeTier(command_id="t2", member_id="alice", tier="premium_career"))
    s.when(change).then_nothing_new(3)
    assert s.reply == TierChangedData("alice", "recruiter", 150)


def test_a_command_id_reused_by_another_command_is_refused_as_an_idempotency_conflict():
    s = given(registered("alice"), registered("bob"))
    s.done(ChangeTier(command_id="c1", member_id="alice", tier="recruiter"))
    s.when(send("alice", "bob", "c1")).then_error(errors.IdempotencyConflict)
    s.when(register("alice", command_id="c1")).then_error(errors.IdempotencyConflict)


def test_a_reply_reusing_the_command_id_of_the_send_is_refused_rather_than_dropped():
    s = given(registered("alice"), registered("bob"))
    s.done(send("alice", "bob", "c1"))
    [mail] = s.recorded_of(InMailSent)
    s.when(RecordReply(command_id="c1", inmail_id=mail.inmail_id, member_id="bob", body="Yes"))
    s.then_error(errors.IdempotencyConflict)


def test_rebuilding_from_the_recorded_events_gives_the_state_evolved_as_they_were_appended():
    s = given(registered("bob"), registered("carol", "free"))
    s.done(register("alice", "premium_career", open_profile=True))
    s.done(ConnectMembers(command_id="c1", member_id="alice", other_member_id="bob"))
    s.done(BlockMember(command_id="b1", member_id="alice", blocked_member_id="carol"))
    s.done(send("alice", "bob", "s1"))
    s.done(ChangeTier(command_id="t1", member_id="alice", tier="free"), at=T0 + 40 * DAY)
    s.done(UpdatePreferences(command_id="p1", member_id="alice", inmail_opt_out=True), at=T0 + 41 * DAY)
    assert s.state("alice") == s.evolved("alice")


def test_evolve_refuses_a_second_registration_of_the_same_member():
    alice = rebuild([(registered("alice"), 1)])
    with pytest.raises(ValueError, match="registered twice"):
        evolve(alice, registered("alice"), 2)


def test_evolve_refuses_an_event_before_the_members_registration():
    with pytest.raises(ValueError, match="precedes"):
        evolve(None, preferences("alice"), 1)
