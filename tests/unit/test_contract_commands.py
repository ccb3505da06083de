"""The wire contract of commands: they decode strictly and totally, or are refused naming the field."""

from __future__ import annotations

import re
import typing
from datetime import timedelta
from typing import Any

import msgspec
import pytest

from contracts import commands
from contracts.commands import COMMANDS, DUE_COMMANDS, AnyCommand, Command, RunDue
from contracts.types import ID_PATTERN
from tests.unit.wire import T, encode, refused

VALID_COMMANDS: dict[type[Command], dict[str, Any]] = {
    commands.RegisterMember: {"member_id": "alice", "display_name": "Alice", "email": "alice@example.com",
                              "tier": "recruiter"},
    commands.ChangeTier: {"member_id": "alice", "tier": "free"},
    commands.UpdatePreferences: {"member_id": "alice"},
    commands.ConnectMembers: {"member_id": "alice", "other_member_id": "bob"},
    commands.BlockMember: {"member_id": "alice", "blocked_member_id": "bob"},
    commands.RefreshCredits: {"member_id": "alice", "month": "2026-01"},
    commands.SendInMail: {"sender_id": "alice", "recipient_id": "bob", "subject": "Hi", "body": "Hello"},
    commands.SendBulkInMail: {"sender_id": "alice", "recipient_ids": ["bob", "carol"], "subject": "Hi",
                              "body": "Hello"},
    commands.MarkInMailRead: {"inmail_id": "1-x", "member_id": "bob"},
    commands.AcknowledgeInMail: {"inmail_id": "1-x", "member_id": "bob"},
    commands.RecordReply: {"inmail_id": "1-x", "member_id": "bob", "body": "Sure"},
    commands.DeclineInMail: {"inmail_id": "1-x", "member_id": "bob"},
    commands.CancelScheduledInMail: {"inmail_id": "1-x", "member_id": "alice"},
    commands.CancelFollowUp: {"inmail_id": "1-x", "member_id": "alice"},
    commands.EraseMember: {"member_id": "alice"},
    commands.RunDue: {"until": "2026-01-05T09:00:00Z"},
}
ALL_COMMANDS = pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: c.__name__)


def payload(cmd: type[Command], **changes: Any) -> dict[str, Any]:
    return {"command_id": "cmd-1"} | VALID_COMMANDS[cmd] | changes


def id_fields(cmd: type[Command]) -> list[str]:
    return [f.name for f in msgspec.structs.fields(cmd) if f.name.endswith("_id") or f.name == "follow_up_of"]


def required_fields(cls: type[msgspec.Struct]) -> list[str]:
    return [f.name for f in msgspec.structs.fields(cls) if f.required]


BAD_IDS = ["", "a" * 65, "a.b", "a b", "a*", "a>", "alice\n", "ä", "a/b"]


def test_every_command_has_a_valid_example():
    assert set(VALID_COMMANDS) == set(COMMANDS)
    assert set(COMMANDS) == set(typing.get_args(AnyCommand)) - set(DUE_COMMANDS) | {RunDue}


# Valid commands --------------------------------------------------------------------------------


@ALL_COMMANDS
def test_a_valid_command_decodes_without_a_type_tag(cmd):
    decoded = msgspec.json.decode(encode(payload(cmd)), type=cmd)
    assert type(decoded) is cmd
    assert decoded.command_id == "cmd-1" and decoded.occurred_at is None


@ALL_COMMANDS
def test_a_valid_command_decodes_with_its_type_tag_alone_or_in_the_union(cmd):
    data = encode(payload(cmd, type=cmd.__name__))
    assert type(msgspec.json.decode(data, type=cmd)) is cmd
    assert type(msgspec.json.decode(data, type=AnyCommand | RunDue)) is cmd


@ALL_COMMANDS
def test_a_command_with_another_commands_type_tag_is_refused(cmd):
    other = next(c for c in COMMANDS if c is not cmd)
    assert "$.type" in refused(encode(payload(cmd, type=other.__name__)), cmd)


@ALL_COMMANDS
def test_occurred_at_decodes_as_an_aware_time(cmd):
    decoded = msgspec.json.decode(encode(payload(cmd, occurred_at="2026-01-05T09:00:00Z")), type=cmd)
    assert decoded.occurred_at == T and decoded.occurred_at.utcoffset() == timedelta(0)


def test_occurred_at_with_an_offset_means_the_same_instant():
    data = encode(payload(commands.ChangeTier, occurred_at="2026-01-05T10:00:00+01:00"))
    assert msgspec.json.decode(data, type=commands.ChangeTier).occurred_at == T


def test_optional_fields_take_their_contract_defaults():
    reg = msgspec.json.decode(encode(payload(commands.RegisterMember)), type=commands.RegisterMember)
    assert (reg.open_profile, reg.inmail_opt_out) == (False, False)
    send = msgspec.json.decode(encode(payload(commands.SendInMail)), type=commands.SendInMail)
    assert (send.kind, send.template_id, send.follow_up_of) == ("recruiter_outreach", None, None)
    prefs = msgspec.json.decode(encode(payload(commands.UpdatePreferences)), type=commands.UpdatePreferences)
    assert (prefs.open_profile, prefs.inmail_opt_out) == (None, None)


def test_subject_and_body_lengths_are_left_to_the_domain():
    data = encode(payload(commands.SendInMail, subject="s" * 201, body=""))
    assert msgspec.json.decode(data, type=commands.SendInMail).subject == "s" * 201


# Malformed commands -----------------------------------------------------------------------------


@ALL_COMMANDS
@pytest.mark.parametrize("data", [b"", b"not json", b"{", b'{"command_id": "c",}', b"\xff\xfe"])
def test_a_body_that_is_not_json_is_refused(cmd, data):
    with pytest.raises(msgspec.DecodeError):
        msgspec.json.decode(data, type=cmd)


@ALL_COMMANDS
@pytest.mark.parametrize("data", [b"[]", b'[{"command_id": "c"}]', b"1", b'"text"', b"null", b"true"])
def test_a_body_that_is_not_an_object_is_refused(cmd, data):
    assert "Expected `object`" in refused(data, cmd)


@ALL_COMMANDS
def test_a_missing_field_is_refused_naming_it(cmd):
    fields = required_fields(cmd)
    assert "command_id" in fields
    for name in fields:
        body = payload(cmd)
        del body[name]
        assert f"`{name}`" in refused(encode(body), cmd)


@ALL_COMMANDS
def test_an_unknown_field_is_refused_naming_it(cmd):
    assert "`colour`" in refused(encode(payload(cmd, colour="red")), cmd)


@ALL_COMMANDS
def test_a_field_of_the_wrong_type_is_refused_naming_it(cmd):
    for name, value in payload(cmd, occurred_at="2026-01-05T09:00:00Z").items():
        wrong = 42 if isinstance(value, str) else "yes" if isinstance(value, bool) else "bob"
        assert f"$.{name}" in refused(encode(payload(cmd, **{name: wrong})), cmd)


@ALL_COMMANDS
@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_a_bad_id_is_refused_naming_the_field(cmd, bad):
    for name in id_fields(cmd):
        assert f"$.{name}" in refused(encode(payload(cmd, **{name: bad})), cmd)


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_the_id_pattern_refuses_bad_ids_even_with_re_match(bad):
    assert re.match(ID_PATTERN, bad) is None
    assert re.match(ID_PATTERN, "alice") is not None


@ALL_COMMANDS
def test_ids_of_1_and_64_characters_of_the_allowed_alphabet_are_accepted(cmd):
    for good in ["a", "Z" * 64, "A-z_0-9"]:
        for name in id_fields(cmd):
            msgspec.json.decode(encode(payload(cmd, **{name: good})), type=cmd)


@ALL_COMMANDS
def test_a_command_id_over_64_characters_is_refused(cmd):
    msgspec.json.decode(encode(payload(cmd, command_id="c" * 64)), type=cmd)
    assert "$.command_id" in refused(encode(payload(cmd, command_id="c" * 65)), cmd)


@pytest.mark.parametrize("cmd", [commands.RegisterMember, commands.ChangeTier])
@pytest.mark.parametrize("tier", ["gold", "Free", "", "premium career"])
def test_an_unknown_tier_is_refused(cmd, tier):
    assert "$.tier" in refused(encode(payload(cmd, tier=tier)), cmd)


@pytest.mark.parametrize("cmd", [commands.SendInMail, commands.SendBulkInMail])
@pytest.mark.parametrize("kind", ["spam", "Recruiter_Outreach", ""])
def test_an_unknown_kind_is_refused(cmd, kind):
    assert "$.kind" in refused(encode(payload(cmd, kind=kind)), cmd)


@pytest.mark.parametrize("count", [0, 1, 26])
def test_bulk_recipients_must_number_2_to_25(count):
    recipients = [f"m{n}" for n in range(count)]
    data = encode(payload(commands.SendBulkInMail, recipient_ids=recipients))
    assert "$.recipient_ids" in refused(data, commands.SendBulkInMail)


@pytest.mark.parametrize("count", [2, 25])
def test_bulk_of_2_or_25_recipients_decodes(count):
    recipients = [f"m{n}" for n in range(count)]
    data = encode(payload(commands.SendBulkInMail, recipient_ids=recipients))
    assert msgspec.json.decode(data, type=commands.SendBulkInMail).recipient_ids == recipients


def test_bulk_recipients_must_be_distinct():
    data = encode(payload(commands.SendBulkInMail, recipient_ids=["bob", "carol", "bob"]))
    assert "$.recipient_ids" in refused(data, commands.SendBulkInMail)


def test_a_bad_bulk_recipient_id_is_refused_naming_its_position():
    data = encode(payload(commands.SendBulkInMail, recipient_ids=["bob", "c.d"]))
    assert "$.recipient_ids[1]" in refused(data, commands.SendBulkInMail)


@ALL_COMMANDS
@pytest.mark.parametrize("when", ["2026-01-05T09:00:00", "2026-01-05", "09:00:00Z", "yesterday", ""])
def test_a_naive_or_malformed_occurred_at_is_refused(cmd, when):
    assert "$.occurred_at" in refused(encode(payload(cmd, occurred_at=when)), cmd)


@pytest.mark.parametrize(
    "month", ["2026-13", "2026-00", "2026-1", "26-01", "2026/01", "2026-01-01", "2026-01\n", "٢٠٢٦-01", ""]
)
def test_a_bad_month_is_refused(month):
    data = encode(payload(commands.RefreshCredits, month=month))
    assert "$.month" in refused(data, commands.RefreshCredits)


@pytest.mark.parametrize(("cmd", "field"), [(commands.ConnectMembers, "other_member_id"),
                                            (commands.BlockMember, "blocked_member_id")])
def test_a_member_cannot_connect_with_or_block_themself(cmd, field):
    assert f"$.{field}" in refused(encode(payload(cmd, **{field: "alice"})), cmd)


@pytest.mark.parametrize("email", ["alice", "alice@", "@example.com", "a b@example.com", "a@b\n", "a@b@c",
                                   "a" * 310 + "@example.com"])
def test_a_bad_email_is_refused(email):
    data = encode(payload(commands.RegisterMember, email=email))
    assert "$.email" in refused(data, commands.RegisterMember)


@pytest.mark.parametrize("name", ["", "n" * 201])
def test_a_display_name_must_have_1_to_200_characters(name):
    data = encode(payload(commands.RegisterMember, display_name=name))
    assert "$.display_name" in refused(data, commands.RegisterMember)


def test_a_decline_reason_over_500_characters_is_refused():
    data = encode(payload(commands.DeclineInMail, reason="r" * 501))
    assert "$.reason" in refused(data, commands.DeclineInMail)
    longest = encode(payload(commands.DeclineInMail, reason="r" * 500))
    assert msgspec.json.decode(longest, type=commands.DeclineInMail).reason == "r" * 500


@pytest.mark.parametrize("value", ["true", 1, None])
def test_booleans_are_not_coerced(value):
    data = encode(payload(commands.RegisterMember, open_profile=value))
    assert "$.open_profile" in refused(data, commands.RegisterMember)
