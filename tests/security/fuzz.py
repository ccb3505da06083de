"""Hostile payloads for every command and query subject, from a seeded generator.

Each payload starts from a well-formed request for its subject that the service must
refuse anyway (ids that name no member; a registration of ``EXISTING``, registered
beforehand) and is then spoiled one way: random bytes,
deeply nested JSON, huge numbers, wrong types, unicode edge cases, truncation, an
unknown field, bytes that are not UTF-8.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from typing import Any

from contracts import subjects
from contracts.commands import COMMANDS
from contracts.queries import QUERIES

Template = Callable[[str], dict[str, Any]]


def _command(fields: dict[str, Any]) -> Template:
    return lambda unique: {"command_id": f"fz-{unique}", **fields}


_GHOST = "fz_ghost"
EXISTING = "fz_existing"
TEMPLATES: dict[str, Template] = {
    subjects.command("RegisterMember"): _command(
        {"member_id": EXISTING, "display_name": "Fuzz", "email": "fuzz@example.com", "tier": "recruiter"}
    ),
    subjects.command("ChangeTier"): _command({"member_id": _GHOST, "tier": "recruiter"}),
    subjects.command("UpdatePreferences"): _command({"member_id": _GHOST, "open_profile": True}),
    subjects.command("ConnectMembers"): _command({"member_id": _GHOST, "other_member_id": "fz_other"}),
    subjects.command("BlockMember"): _command({"member_id": _GHOST, "blocked_member_id": "fz_other"}),
    subjects.command("RefreshCredits"): _command({"member_id": _GHOST, "month": "2026-01"}),
    subjects.command("SendInMail"): _command(
        {"sender_id": _GHOST, "recipient_id": "fz_other", "subject": "Hi", "body": "A role"}
    ),
    subjects.command("SendBulkInMail"): _command(
        {"sender_id": _GHOST, "recipient_ids": ["fz_a", "fz_b"], "subject": "Hi", "body": "A role"}
    ),
    subjects.command("MarkInMailRead"): _command({"inmail_id": "fz-none", "member_id": _GHOST}),
    subjects.command("AcknowledgeInMail"): _command({"inmail_id": "fz-none", "member_id": _GHOST}),
    subjects.command("RecordReply"): _command({"inmail_id": "fz-none", "member_id": _GHOST, "body": "Yes"}),
    subjects.command("DeclineInMail"): _command({"inmail_id": "fz-none", "member_id": _GHOST}),
    subjects.command("CancelScheduledInMail"): _command({"inmail_id": "fz-none", "member_id": _GHOST}),
    subjects.command("CancelFollowUp"): _command({"inmail_id": "fz-none", "member_id": _GHOST}),
    # Refused whatever it asks: the service under fuzz runs on its own clock.
    subjects.command("RunDue"): _command({"until": "2001-01-01T00:00:00Z"}),
    # An unknown member: refused, so the fuzz erases no one.
    subjects.command("EraseMember"): _command({"member_id": _GHOST}),
    subjects.query("Health"): lambda unique: {},
    subjects.query("Inbox"): lambda unique: {"member_id": _GHOST, "box": "received", "limit": 5},
    subjects.query("CreditBalance"): lambda unique: {"member_id": _GHOST},
    subjects.query("CreditLedger"): lambda unique: {"member_id": _GHOST, "limit": 5},
    subjects.query("ResponseStats"): lambda unique: {"sender_id": _GHOST},
    subjects.query("EnforcementStatus"): lambda unique: {"member_id": _GHOST},
}  # fmt: skip
assert set(TEMPLATES) == {subjects.command(c.__name__) for c in COMMANDS} | {
    subjects.query(q.__name__) for q in QUERIES
}, "a command or query without a fuzz template"

HUGE = [
    "1" + "0" * 400,
    "-" + "9" * 40,
    "1e999",
    "-1e999",
    "18446744073709551616",
    "-9223372036854775809",
    "1e-999",
]
WRONG = [None, True, False, 0, -1, 1.5, [], {}, ["x"], {"a": 1}, "", "x" * 5000]
UNICODE = [
    "", " ", "\u0000", "\ufeff", "\uffff", "\u202etxet", "a\u0301", "\u200b", "İı", "\U0001d518\U0001d52b",
    "👩\u200d💻" * 500, "é" * 3000, "\n\t\r", "<script>", "../../etc", "inmail.cmd.>", "*", "_INBOX.x",
]  # fmt: skip
LONE_SURROGATES = ['"\\ud800"', '"\\udfff"', '"a\\ud83d"']


def payloads(seed: int, per_subject: int) -> Iterator[tuple[str, bytes]]:
    """``per_subject`` spoiled payloads for every subject, the same for the same seed."""
    rng = random.Random(seed)
    spoilers = [
        _random_bytes,
        _deep,
        _huge,
        _wrong_type,
        _unicode,
        _surrogate,
        _truncated,
        _unknown,
        _not_utf8,
    ]
    for subject, template in TEMPLATES.items():
        for n in range(per_subject):
            unique = f"{seed}x{rng.getrandbits(48):x}"
            yield subject, spoilers[n % len(spoilers)](rng, template(unique))


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


def _field(rng: random.Random, body: dict[str, Any]) -> str:
    return rng.choice(sorted(body)) if body else "member_id"


def _random_bytes(rng: random.Random, body: dict[str, Any]) -> bytes:
    return rng.randbytes(rng.choice([0, 1, 2, 17, 256, 2000]))


def _deep(rng: random.Random, body: dict[str, Any]) -> bytes:
    depth = rng.choice([64, 1000, 20_000])
    opening, closing = ('{"a":', "}") if rng.random() < 0.5 else ("[", "]")
    nested = opening * depth + "1" + closing * depth
    return _encode(body)[:-1] + f', "{_field(rng, body)}": '.encode() + nested.encode() + b"}"


def _huge(rng: random.Random, body: dict[str, Any]) -> bytes:
    spoiled = {**body, _field(rng, body): "__HUGE__"}
    return _encode(spoiled).replace(b'"__HUGE__"', rng.choice(HUGE).encode())


def _wrong_type(rng: random.Random, body: dict[str, Any]) -> bytes:
    return _encode({**body, _field(rng, body): rng.choice(WRONG)})


def _unicode(rng: random.Random, body: dict[str, Any]) -> bytes:
    return _encode({**body, _field(rng, body): rng.choice(UNICODE)})


def _surrogate(rng: random.Random, body: dict[str, Any]) -> bytes:
    spoiled = {**body, _field(rng, body): "__LONE__"}
    return _encode(spoiled).replace(b'"__LONE__"', rng.choice(LONE_SURROGATES).encode())


def _truncated(rng: random.Random, body: dict[str, Any]) -> bytes:
    whole = _encode(body)
    return whole[: rng.randrange(len(whole))]


def _unknown(rng: random.Random, body: dict[str, Any]) -> bytes:
    return _encode({**body, rng.choice(["type", "seq", "__proto__", "event_id", "ok"]): "x"})


def _not_utf8(rng: random.Random, body: dict[str, Any]) -> bytes:
    spoiled = {**body, _field(rng, body): "__BYTES__"}
    return _encode(spoiled).replace(b"__BYTES__", rng.choice([b"\xff\xfe", b"\xc0\xaf", b"\xed\xa0\x80"]))
