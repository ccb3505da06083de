"""An event no one can read holds up its member's commands, and no one else's, until skipped.
And once the stream was replaced under the store, no command is acknowledged at all."""

import msgspec

from contracts.commands import ChangeTier, UpdatePreferences
from contracts.events import EventSkipped
from contracts.replies import CommandOk, Failure, SkippedData
from services.domain import errors
from tests.unit.scenario import DAY, T0, Scenario, given, register, registered, send

NEWER = b'{"type":"MemberTeleported","event_id":"x","occurred_at":"2026-01-05T09:00:00Z","command_id":"c"}'


def bob_holds_an_unreadable_event() -> tuple[Scenario, int]:
    s = given(registered("alice", "recruiter"), registered("bob"))
    return s, s.given_unreadable("bob", NEWER)


def test_the_members_commands_answer_unavailable_naming_the_sequence_and_write_nothing():
    s, seq = bob_holds_an_unreadable_event()
    s.when(UpdatePreferences(command_id="p1", member_id="bob", inmail_opt_out=True))
    failure = s.then_unavailable()
    assert f"the event at seq {seq} cannot be read" in failure.error.message
    assert "unknown event type 'MemberTeleported'" in failure.error.message
    assert f"inmail quarantine resolve {seq} --skip" in failure.error.message
    assert "internal error" not in failure.error.message


def test_a_command_that_reads_the_member_waits_too_and_every_other_member_is_served():
    s, _ = bob_holds_an_unreadable_event()
    s.when(send("alice", "bob")).then_unavailable()
    # Accepted: alice's own events are all readable.
    s.done(ChangeTier(command_id="t1", member_id="alice", tier="sales_navigator"), at=T0 + DAY)


def test_a_recorded_skip_serves_the_member_again_and_passes_over_the_event_on_every_load():
    s, seq = bob_holds_an_unreadable_event()
    skipped = s.skip(seq)
    assert skipped == CommandOk(data=SkippedData("bob", seq), seq=seq + 1)
    [record] = s.recorded
    assert isinstance(record, EventSkipped) and (record.member_id, record.seq) == ("bob", seq)
    s.done(UpdatePreferences(command_id="p1", member_id="bob", inmail_opt_out=True), at=T0 + DAY)
    # A fresh process loads bob the same way: past the skipped event, up to the new one.
    assert s.state("bob").inmail_opt_out is True


def test_a_skip_asked_twice_is_recorded_once():
    s, seq = bob_holds_an_unreadable_event()
    first = s.skip(seq)
    again = s.skip(seq)
    assert first == again and s.recorded == []


def test_only_an_unreadable_event_on_a_members_subject_can_be_skipped():
    s, _ = bob_holds_an_unreadable_event()
    readable = s.skip(1)
    nothing = s.skip(99)
    expected = ((readable, "is a readable MemberRegistered"), (nothing, "there is no event at seq 99"))
    for outcome, words in expected:
        assert isinstance(outcome, Failure) and outcome.error.code == errors.InvalidCommand.code
        assert words in outcome.error.message
    assert s.recorded == []


def test_a_second_unreadable_event_holds_the_member_up_again_at_its_own_sequence():
    s, first = bob_holds_an_unreadable_event()
    s.skip(first)
    second = s.given_unreadable("bob", b"not even json")
    failure = s.when(register("bob")).then_unavailable()
    assert f"the event at seq {second} cannot be read (the body is not valid JSON)" in failure.error.message


def test_once_the_stream_was_replaced_nothing_is_acknowledged_not_even_a_repeat():
    s = given(registered("alice"))
    s.done(ChangeTier(command_id="t1", member_id="alice", tier="recruiter"))
    s.store.replaced = "stream INMAIL_EVENTS was replaced"
    for cmd in (
        ChangeTier(command_id="t1", member_id="alice", tier="recruiter"),
        register("zoe"),
    ):
        failure = s.when(cmd).then_unavailable()
        assert "was replaced" in failure.error.message
        assert "inmail serve --new-stream" in failure.error.message
    assert isinstance(s.skip(1), Failure)


def test_events_without_the_fingerprint_field_still_decode():
    body = {"type": "PreferencesUpdated", "event_id": "e", "occurred_at": "2026-01-05T09:00:00Z",
            "command_id": "c", "member_id": "alice", "open_profile": False, "inmail_opt_out": True}
    s = given(registered("alice"))
    s.given_unreadable("alice", msgspec.json.encode(body))  # readable after all: an older writer's event
    assert s.state("alice").inmail_opt_out is True
