"""A body that does not decode is refused with the field and its rule in words, never a regex."""

from __future__ import annotations

import msgspec
import pytest

from contracts.admin import Replay, SkipEvent
from contracts.commands import DeclineInMail, RefreshCredits, RegisterMember, SendBulkInMail, SendInMail
from contracts.queries import CreditBalance, Inbox, ResponseStats
from contracts.replies import Failure
from contracts.validation import explain, explain_event
from services.executor import decode_command

REGISTER = {
    "command_id": "c1",
    "member_id": "alice",
    "display_name": "Alice",
    "email": "a@b.io",
    "tier": "free",
}
SEND = {"command_id": "c1", "sender_id": "alice", "recipient_id": "bob", "subject": "S", "body": "B"}
ID_RULE = "an id: 1 to 64 characters, each a letter, a digit, '_' or '-'"
TIME_RULE = "a time in RFC 3339 with its offset, e.g. 2026-11-29T13:00:00Z"

COMMAND_CASES = [
    (RegisterMember, REGISTER | {"member_id": "bad id!"}, f"member_id must be {ID_RULE}"),
    (RegisterMember, REGISTER | {"member_id": "x" * 65}, f"member_id must be {ID_RULE}"),
    (RegisterMember, REGISTER | {"member_id": "alice\n"}, f"member_id must be {ID_RULE}"),
    (RegisterMember, REGISTER | {"command_id": ""}, f"command_id must be {ID_RULE}"),
    (RegisterMember, REGISTER | {"display_name": ""}, "display_name must be text of 1 to 200 characters"),
    (
        RegisterMember,
        REGISTER | {"display_name": "x" * 201},
        "display_name must be text of 1 to 200 characters",
    ),
    (
        RegisterMember,
        REGISTER | {"email": "no-at-sign"},
        "email must be an email address (name@domain, without spaces) of at most 320 characters",
    ),
    (RegisterMember, REGISTER | {"email": "a@" + "b" * 320}, "email must be an email address"),
    (
        RegisterMember,
        REGISTER | {"tier": "gold"},
        "tier must be one of free, premium_business, "
        "premium_career, recruiter, recruiter_lite, sales_navigator, not 'gold'",
    ),
    (RegisterMember, REGISTER | {"open_profile": "yes"}, "open_profile must be true or false, not text"),
    (RegisterMember, REGISTER | {"occurred_at": "2026-01-05T09:00:00"}, f"occurred_at must be {TIME_RULE}"),
    (RegisterMember, REGISTER | {"occurred_at": "yesterday"}, f"occurred_at must be {TIME_RULE}"),
    (
        RegisterMember,
        REGISTER | {"occurred_at": 5},
        f"occurred_at must be {TIME_RULE} (or null), not a number",
    ),
    (RegisterMember, {k: v for k, v in REGISTER.items() if k != "tier"}, "tier is required"),
    (RegisterMember, REGISTER | {"nickname": "al"}, "nickname is not a field of RegisterMember"),
    (RegisterMember, REGISTER | {"type": "ChangeTier"}, "type must be RegisterMember on this subject"),
    (
        RefreshCredits,
        {"command_id": "c", "member_id": "a", "month": "2026-13"},
        "month must be a month written YYYY-MM, e.g. 2026-01",
    ),
    (SendInMail, SEND | {"kind": "spam"}, "kind must be one of employer_branding"),
    (SendInMail, SEND | {"template_id": "t 1"}, f"template_id must be {ID_RULE} (or null)"),
    (SendInMail, SEND | {"subject": 7}, "subject must be text, not a number"),
    (
        SendBulkInMail,
        SEND | {"recipient_ids": ["bob"]},
        f"recipient_ids must be a list of 2 to 25 items, each {ID_RULE}",
    ),
    (SendBulkInMail, SEND | {"recipient_ids": ["b"] * 26}, "recipient_ids must be a list of 2 to 25 items"),
    (SendBulkInMail, SEND | {"recipient_ids": ["bob", "c d"]}, f"recipient_ids[1] must be {ID_RULE}"),
    (SendBulkInMail, SEND | {"recipient_ids": ["bob", "bob"]}, "recipient_ids: recipients must be distinct"),
    (
        DeclineInMail,
        {"command_id": "c", "inmail_id": "1-x", "member_id": "b", "reason": "x" * 501},
        "reason must be text of at most 500 characters (or null)",
    ),
]


def _without_the_recipient(case: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in case.items() if k != "recipient_id"}


@pytest.mark.parametrize(("kind", "body", "message"), COMMAND_CASES)
def test_a_command_that_breaks_a_rule_is_refused_with_the_field_and_the_rule(kind, body, message):
    if kind is SendBulkInMail:
        body = _without_the_recipient(body)
    reply = decode_command(kind.__name__, msgspec.json.encode(body))
    assert isinstance(reply, Failure) and reply.error.code == "INVALID_COMMAND"
    assert message in reply.error.message
    _no_regex(reply.error.message)


QUERY_CASES = [
    (Inbox, {"member_id": "a", "box": "received", "limit": 0}, "limit must be a whole number from 1 to 200"),
    (
        Inbox,
        {"member_id": "a", "box": "received", "limit": 201},
        "limit must be a whole number from 1 to 200",
    ),
    (
        Inbox,
        {"member_id": "a", "box": "received", "limit": 1.5},
        "limit must be a whole number from 1 to 200, not a fractional number",
    ),
    (Inbox, {"member_id": "a", "box": "received", "before": ""}, "before must be text of 1 to 64 characters"),
    (
        Inbox,
        {"member_id": "a", "box": "received", "min_seq": -1},
        "min_seq must be a whole number, 0 or more",
    ),
    (Inbox, {"member_id": "a b", "box": "received"}, f"member_id must be {ID_RULE}"),
    (Inbox, {"member_id": "a", "box": "maybe"}, "box must be one of received, scheduled, sent, not 'maybe'"),
    (Inbox, {"member_id": "a"}, "box is required"),
    (CreditBalance, {"member_id": "a", "at": "2026-01-05"}, f"at must be {TIME_RULE}"),
    (ResponseStats, {"since": "2026-01-05T09:00:00"}, f"since must be {TIME_RULE}"),
    (ResponseStats, {"tier": "gold"}, "tier must be one of"),
    (Replay, {"from_seq": 0}, "from_seq must be a whole number, 1 or more"),
    (SkipEvent, {"seq": 3, "reason": "", "operator": "ops"}, "reason must be text of 1 to 500 characters"),
]


@pytest.mark.parametrize(("kind", "body", "message"), QUERY_CASES)
def test_a_query_that_breaks_a_rule_is_explained_with_the_field_and_the_rule(kind, body, message):
    with pytest.raises(msgspec.ValidationError) as raised:
        msgspec.json.decode(msgspec.json.encode(body), type=kind)
    explained = explain(raised.value, kind)
    assert message in explained
    _no_regex(explained)


def test_a_body_that_is_not_an_object_says_so():
    reply = decode_command("SendInMail", b"[1]")
    assert isinstance(reply, Failure) and reply.error.message == "the body must be a JSON object, not a list"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "the body is not valid JSON"),
        (b'{"event_id": "e"}', "the body is not an event: it has no type"),
        (
            b'{"type": "MemberTeleported"}',
            "unknown event type 'MemberTeleported' (written by a newer version?)",
        ),
        (
            b'{"type": "InMailRead", "event_id": "e", "occurred_at": "2026-01-05T09:00:00Z",'
            b' "command_id": "c", "inmail_id": "1 x", "sender_id": "a", "recipient_id": "b"}',
            f"InMailRead: inmail_id must be {ID_RULE}",
        ),
    ],
)
def test_an_unreadable_event_is_explained_in_words(body, message):
    from contracts.events import decode_event

    with pytest.raises(Exception) as raised:
        decode_event(body)
    assert explain_event(body, raised.value) == message


def _no_regex(message: str) -> None:
    for fragment in ("regex", "^[", "(?!", "\\n)$", "`$"):
        assert fragment not in message, message
