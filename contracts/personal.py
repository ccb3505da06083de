"""Personal data in events: which fields hold it, whose key seals them, and the sealed form.

Section 11: display names, emails, InMail subjects and bodies, reply bodies and
decline reasons are written to every stream already encrypted with a key per
member (the one who wrote them), so erasing the member destroys the key and the
data with it. A sealed field is a string token, so event schemas keep their
types and subscribers see only ciphertext:

    enc1:<member_id>:<field>:<base64url(nonce || ciphertext || tag)>

``<member_id>`` and ``<field>`` name the key and are the associated data of the
encryption: a token moved to another member or another field does not open. The
field is the logical one (``subject``, not ``InMailSent.subject``), so a token may
be copied from one event to another (a scheduled InMail to its delivery, a planned
follow-up to its sending, an InMail to its email alert) without opening it.

A string without the prefix is clear text: streams written before encryption
existed are read as they are, never rewritten.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Literal, NamedTuple

TOKEN_PREFIX: Final = "enc1:"
ERASED: Final = "[erased]"
"""What every read path shows for a field whose member's key was destroyed."""

PersonalField = Literal["display_name", "email", "subject", "body", "reason"]


class Sealed(NamedTuple):
    """The parts of a token: whose key, which field, and the encrypted bytes (base64url)."""

    member_id: str
    field: str
    payload: str

    @property
    def associated_data(self) -> bytes:
        """What the encryption binds the ciphertext to: the token's prefix."""
        return f"{TOKEN_PREFIX}{self.member_id}:{self.field}".encode()


def token(member_id: str, field: str, payload: str) -> str:
    """A token from its parts."""
    return f"{TOKEN_PREFIX}{member_id}:{field}:{payload}"


def parse(value: str) -> Sealed | None:
    """The parts of a token; None for clear text (anything that is not a well-formed token)."""
    if not value.startswith(TOKEN_PREFIX):
        return None
    parts = value[len(TOKEN_PREFIX) :].split(":", 2)
    if len(parts) != 3 or not all(parts):
        return None
    return Sealed(*parts)


def is_sealed(value: str) -> bool:
    """Whether a stored string is a token (and so not personal data in the clear)."""
    return parse(value) is not None


Owner = Literal["member_id", "sender_id", "recipient_id"]
"""The event field naming the member whose key seals a personal field."""

PERSONAL_FIELDS: Mapping[str, tuple[tuple[str, PersonalField, Owner], ...]] = MappingProxyType(
    {
        "MemberRegistered": (("display_name", "display_name", "member_id"),),
        "InMailSent": (("subject", "subject", "sender_id"), ("body", "body", "sender_id")),
        "InMailScheduled": (("subject", "subject", "sender_id"), ("body", "body", "sender_id")),
        "InMailReplied": (("body", "body", "recipient_id"),),
        "InMailDeclined": (("reason", "reason", "recipient_id"),),
    }
)
"""Event type -> (attribute, logical field, attribute naming the owner) of each personal field.

An event's ``automated_follow_up`` plan (``InMailSent``, ``InMailScheduled``) holds a
subject and a body too, sealed with the sender's key."""

PLAN_FIELDS: tuple[tuple[str, PersonalField], ...] = (("subject", "subject"), ("body", "body"))
"""The personal fields of a ``FollowUpPlan``, sealed with the sender's key."""
