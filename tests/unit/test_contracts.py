"""The wire contract: commands and queries decode strictly and totally; events evolve safely."""

from __future__ import annotations

import re
import typing
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from contracts import commands, events, queries, replies
from contracts.commands import COMMANDS, AnyCommand, Command
from contracts.events import EVENT_TYPES, UPCASTERS, decode_event, encode_event
from contracts.policy import CURRENT_POLICY, POLICY_V1
from contracts.queries import QUERIES
from contracts.types import ID_PATTERN, Tier
from services.domain import errors

T = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

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
}
ALL_COMMANDS = pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: c.__name__)


def payload(cmd: type[Command], **changes: Any) -> dict[str, Any]:
    return {"command_id": "cmd-1"} | VALID_COMMANDS[cmd] | changes


def encode(value: Any) -> bytes:
    return msgspec.json.encode(value)


def refused(data: bytes, cls: type) -> str:
    """The message of the error decoding ``data`` as ``cls`` raises."""
    with pytest.raises((msgspec.ValidationError, msgspec.DecodeError)) as caught:
        msgspec.json.decode(data, type=cls)
    return str(caught.value)


def id_fields(cmd: type[Command]) -> list[str]:
    return [f.name for f in msgspec.structs.fields(cmd) if f.name.endswith("_id") or f.name == "follow_up_of"]


def required_fields(cls: type[msgspec.Struct]) -> list[str]:
    return [f.name for f in msgspec.structs.fields(cls) if f.required]


BAD_IDS = ["", "a" * 65, "a.b", "a b", "a*", "a>", "alice\n", "ä", "a/b"]


def test_every_command_has_a_valid_example():
    assert set(VALID_COMMANDS) == set(COMMANDS)
    assert set(COMMANDS) == set(typing.get_args(AnyCommand))


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
    assert type(msgspec.json.decode(data, type=AnyCommand)) is cmd


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


# Events ---------------------------------------------------------------------------------------------

HEADER: dict[str, Any] = {"event_id": "ev-1", "occurred_at": T, "command_id": "cmd-1"}
IDS: dict[str, Any] = {"inmail_id": "1-x", "sender_id": "alice", "recipient_id": "bob"}
EXAMPLE_EVENTS: list[events.Event] = [
    events.MemberRegistered(**HEADER, member_id="alice", display_name="Alice", tier="recruiter",
                            open_profile=True, inmail_opt_out=False, month="2026-01", granted=150),
    events.TierChanged(**HEADER, member_id="alice", old_tier="free", tier="recruiter", month="2026-01",
                       granted=150),
    events.PreferencesUpdated(**HEADER, member_id="alice", open_profile=False, inmail_opt_out=True),
    events.MembersConnected(**HEADER, member_id="alice", other_member_id="bob"),
    events.MemberBlocked(**HEADER, member_id="alice", blocked_member_id="bob"),
    events.CreditsRefreshed(**HEADER, member_id="alice", month="2026-02", tier="recruiter", granted=150,
                            forfeited=3),
    events.CreditsForfeited(**HEADER, member_id="alice", amount=7, reason="tier_change"),
    events.InMailSent(**HEADER, **IDS, sender_tier="recruiter", subject="Ré", body="😀 hi",
                      kind="sales_prospecting", charged=False, template_id="t-1", follow_up_of="1-w",
                      free_reason="connection", bulk=True),
    events.InMailRead(**HEADER, **IDS),
    events.InMailAcknowledged(**HEADER, **IDS),
    events.InMailReplied(**HEADER, **IDS, body="Yes"),
    events.InMailDeclined(**HEADER, **IDS, reason="Not now"),
    events.CreditRefunded(**HEADER, member_id="alice", inmail_id="1-x", response_event_id="ev-0"),
]
ALL_EVENTS = pytest.mark.parametrize("event", EXAMPLE_EVENTS, ids=lambda e: type(e).__name__)


def test_every_event_type_has_an_example():
    assert {type(e) for e in EXAMPLE_EVENTS} == set(EVENT_TYPES) == set(typing.get_args(events.AnyEvent))


@ALL_EVENTS
def test_an_event_round_trips_through_its_stored_body(event):
    decoded = decode_event(encode_event(event))
    assert decoded == event and type(decoded) is type(event)


@ALL_EVENTS
def test_an_event_body_names_its_type_and_carries_its_header(event):
    body = msgspec.json.decode(encode_event(event))
    assert body["type"] == type(event).__name__
    assert {"event_id", "occurred_at", "command_id", "policy"} <= body.keys()
    assert body["policy"] == CURRENT_POLICY.version


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda c: c.__name__)
def test_no_event_type_carries_an_email(cls):
    assert not [f.name for f in msgspec.structs.fields(cls) if "email" in f.name.lower()]


@ALL_EVENTS
def test_unknown_fields_in_an_event_body_are_tolerated(event):
    body = msgspec.json.decode(encode_event(event)) | {"added_in_v2": {"nested": [1, 2]}, "note": "x"}
    assert decode_event(encode(body)) == event


def test_an_event_of_an_unknown_type_is_refused():
    with pytest.raises(msgspec.ValidationError):
        decode_event(b'{"type": "MemberTeleported", "event_id": "e", "occurred_at": "2026-01-05T09:00:00Z",'
                     b' "command_id": "c", "member_id": "alice"}')


def test_an_older_event_shape_is_upcast_on_read(monkeypatch):
    def opened_to_read(raw: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in raw.items() if k != "opened_by"} | {"type": "InMailRead",
                                                                     "recipient_id": raw["opened_by"]}

    monkeypatch.setitem(UPCASTERS, "InMailOpened", opened_to_read)
    old = encode({"type": "InMailOpened", "event_id": "e", "occurred_at": "2026-01-05T09:00:00Z",
                  "command_id": "c", "inmail_id": "1-x", "sender_id": "alice", "opened_by": "bob"})
    assert decode_event(old) == events.InMailRead(event_id="e", occurred_at=T, command_id="c", **IDS)


@ALL_EVENTS
def test_event_times_are_encoded_in_rfc_3339_utc_with_a_trailing_z(event):
    assert b'"occurred_at":"2026-01-05T09:00:00Z"' in encode_event(event)


def test_times_with_fractions_of_a_second_keep_them_and_the_z():
    event = msgspec.structs.replace(EXAMPLE_EVENTS[0], occurred_at=T.replace(microsecond=120000))
    assert b'"occurred_at":"2026-01-05T09:00:00.120000Z"' in encode_event(event)


def test_query_answers_encode_times_in_utc_with_a_trailing_z():
    entry = queries.LedgerEntry(seq=1, occurred_at=T, delta=-1, balance_after=4, reason="send")
    assert b'"occurred_at":"2026-01-05T09:00:00Z"' in replies.encode(replies.QueryOk(data=entry, as_of_seq=1))


# Queries -------------------------------------------------------------------------------------------

VALID_QUERIES: dict[type[queries.Query], dict[str, Any]] = {
    queries.Health: {},
    queries.Inbox: {"member_id": "alice", "box": "received"},
    queries.CreditBalance: {"member_id": "alice"},
    queries.CreditLedger: {"member_id": "alice"},
    queries.ResponseStats: {},
}
ALL_QUERIES = pytest.mark.parametrize("query", QUERIES, ids=lambda q: q.__name__)


def test_every_query_has_a_valid_example():
    assert set(VALID_QUERIES) == set(QUERIES)


@ALL_QUERIES
def test_a_valid_query_decodes_with_or_without_min_seq(query):
    assert msgspec.json.decode(encode(VALID_QUERIES[query]), type=query).min_seq is None
    assert msgspec.json.decode(encode(VALID_QUERIES[query] | {"min_seq": 7}), type=query).min_seq == 7


@ALL_QUERIES
@pytest.mark.parametrize("data", [b"nope", b"[]", b"3"])
def test_a_query_that_is_not_a_json_object_is_refused(query, data):
    refused(data, query)


@ALL_QUERIES
def test_a_query_with_an_unknown_field_is_refused(query):
    assert "`colour`" in refused(encode(VALID_QUERIES[query] | {"colour": "red"}), query)


@ALL_QUERIES
def test_a_negative_or_textual_min_seq_is_refused(query):
    for bad in (-1, "7", 1.5):
        assert "$.min_seq" in refused(encode(VALID_QUERIES[query] | {"min_seq": bad}), query)


@pytest.mark.parametrize(("query", "field"), [(queries.Inbox, "member_id"), (queries.Inbox, "box"),
                                              (queries.CreditBalance, "member_id"),
                                              (queries.CreditLedger, "member_id")])
def test_a_query_missing_a_required_field_is_refused(query, field):
    body = dict(VALID_QUERIES[query])
    del body[field]
    assert f"`{field}`" in refused(encode(body), query)


@pytest.mark.parametrize(
    ("query", "changes", "field"),
    [
        (queries.Inbox, {"box": "archive"}, "box"),
        (queries.Inbox, {"status": "unread"}, "status"),
        (queries.Inbox, {"limit": 0}, "limit"),
        (queries.Inbox, {"limit": 201}, "limit"),
        (queries.Inbox, {"member_id": "a.b"}, "member_id"),
        (queries.Inbox, {"before": ""}, "before"),
        (queries.CreditLedger, {"limit": 500}, "limit"),
        (queries.CreditBalance, {"at": "2026-01-05T09:00:00"}, "at"),
        (queries.ResponseStats, {"tier": "gold"}, "tier"),
        (queries.ResponseStats, {"kind": "spam"}, "kind"),
        (queries.ResponseStats, {"since": "last week"}, "since"),
        (queries.ResponseStats, {"sender_id": "a b"}, "sender_id"),
    ],
)
def test_a_query_field_out_of_its_range_is_refused_naming_it(query, changes, field):
    assert f"$.{field}" in refused(encode(VALID_QUERIES[query] | changes), query)


@pytest.mark.parametrize("limit", [1, 200])
def test_inbox_limits_of_1_to_200_are_accepted(limit):
    body = VALID_QUERIES[queries.Inbox] | {"limit": limit, "status": "replied", "before": "cursor-1"}
    assert msgspec.json.decode(encode(body), type=queries.Inbox).limit == limit


def test_inbox_limit_defaults_to_50():
    assert msgspec.json.decode(encode(VALID_QUERIES[queries.Inbox]), type=queries.Inbox).limit == 50


# Replies and error codes ----------------------------------------------------------------------------

CONTRACT_ERROR_CODES = {
    "INVALID_COMMAND", "INVALID_TIME", "SUBJECT_TOO_LONG", "BODY_TOO_LONG", "EMPTY_MESSAGE", "MEMBER_EXISTS",
    "UNKNOWN_MEMBER", "UNKNOWN_INMAIL", "SELF_MESSAGE", "TIER_NOT_ALLOWED", "RECIPIENT_OPTED_OUT", "BLOCKED",
    "INSUFFICIENT_CREDITS", "NOT_RECIPIENT", "ALREADY_RESPONDED", "INVALID_FOLLOW_UP", "UNAVAILABLE",
}


def test_every_contract_error_code_is_in_the_reply_vocabulary():
    assert set(typing.get_args(replies.ErrorCode)) >= CONTRACT_ERROR_CODES


def test_each_domain_error_maps_to_its_own_contract_code():
    codes = [cls.code for cls in errors.DomainError.__subclasses__()]
    assert len(codes) == len(set(codes))
    assert set(codes) == CONTRACT_ERROR_CODES - {"UNAVAILABLE"}


def test_the_failure_envelope_has_ok_false_and_a_coded_error():
    assert replies.encode(replies.failure("INVALID_TIME", "too early")) == (
        b'{"ok":false,"error":{"code":"INVALID_TIME","message":"too early"}}'
    )


def test_the_success_envelope_has_ok_true_data_and_seq():
    ok = replies.CommandOk(data=replies.SentData("1-x", True, None, 4), seq=12)
    assert msgspec.json.decode(replies.encode(ok)) == {
        "ok": True, "seq": 12,
        "data": {"inmail_id": "1-x", "charged": True, "free_reason": None, "credits_left": 4},
    }


# Policy v1 as data ----------------------------------------------------------------------------------


def test_policy_v1_is_the_contracts_tier_table():
    table = {tier: (rules.monthly_allotment, rules.cap, rules.paid, rules.bulk)
             for tier, rules in POLICY_V1.tiers.items()}
    assert table == {
        "free": (0, 0, False, False),
        "premium_career": (5, 15, True, False),
        "premium_business": (15, 45, True, False),
        "sales_navigator": (50, 150, True, False),
        "recruiter_lite": (30, 120, True, True),
        "recruiter": (150, 600, True, True),
    }
    assert set(POLICY_V1.tiers) == set(typing.get_args(Tier))


def test_policy_v1_limits_are_the_contracts():
    p = POLICY_V1
    assert (p.subject_max_chars, p.body_max_chars, p.inmail_cost) == (200, 1900, 1)
    assert (p.refund_window, p.bulk_min_recipients, p.bulk_max_recipients) == (timedelta(days=90), 2, 25)
