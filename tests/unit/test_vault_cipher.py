"""Tokens: AES-256-GCM bound to their member and field, opened only by that member's key."""

from __future__ import annotations

import pytest

from contracts.personal import parse, token
from vault.cipher import CannotOpen, new_key, open_token, seal


def test_a_token_opens_with_its_members_key_and_holds_no_clear_text():
    key = new_key()
    sealed = seal(key, "alice", "subject", "Senior role at Zyxwv")
    assert "Zyxwv" not in sealed and sealed.startswith("enc1:alice:subject:")
    assert open_token(key, sealed) == "Senior role at Zyxwv"


def test_the_same_text_seals_differently_each_time():
    key = new_key()
    assert seal(key, "alice", "body", "Hello") != seal(key, "alice", "body", "Hello")


def test_a_token_does_not_open_with_another_key():
    sealed = seal(new_key(), "alice", "subject", "Hello")
    with pytest.raises(CannotOpen):
        open_token(new_key(), sealed)


@pytest.mark.parametrize(("member_id", "field"), [("bob", "subject"), ("alice", "body")])
def test_a_token_moved_to_another_member_or_field_does_not_open(member_id: str, field: str):
    key = new_key()
    parts = parse(seal(key, "alice", "subject", "Hello"))
    assert parts is not None
    with pytest.raises(CannotOpen):
        open_token(key, token(member_id, field, parts.payload))


def test_a_tampered_token_does_not_open():
    key = new_key()
    sealed = seal(key, "alice", "subject", "Hello")
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(CannotOpen):
        open_token(key, flipped)
