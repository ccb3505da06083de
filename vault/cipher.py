"""AES-256-GCM, as the tokens of ``contracts.personal`` and the wrapped data keys use it.

A random 96-bit nonce per encryption; with one key per member, a member would need
billions of sealed fields before nonce reuse became a concern.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from contracts.personal import Sealed, parse, token

KEY_BYTES = 32
_NONCE = 12


class CannotOpen(Exception):
    """Ciphertext that the key given does not open (another key, another member or field, tampering)."""


def new_key() -> bytes:
    """A fresh random 256-bit key."""
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def encrypt(key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """Nonce, ciphertext and tag."""
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)


def decrypt(key: bytes, sealed: bytes, associated_data: bytes) -> bytes:
    """The plaintext of ``encrypt``'s output; ``CannotOpen`` when it does not authenticate."""
    try:
        return AESGCM(key).decrypt(sealed[:_NONCE], sealed[_NONCE:], associated_data)
    except (InvalidTag, ValueError) as exc:
        raise CannotOpen("the ciphertext does not open with this key") from exc


def seal(key: bytes, member_id: str, field: str, text: str) -> str:
    """A token holding ``text``, bound to the member and the field."""
    parts = Sealed(member_id, field, "")
    payload = encrypt(key, text.encode(), parts.associated_data)
    return token(member_id, field, base64.urlsafe_b64encode(payload).decode().rstrip("="))


def open_token(key: bytes, value: str) -> str:
    """The text a token holds; ``CannotOpen`` when it is no token of this key."""
    parts = parse(value)
    if parts is None:
        raise CannotOpen("not a token")
    try:
        payload = base64.urlsafe_b64decode(parts.payload + "=" * (-len(parts.payload) % 4))
    except ValueError as exc:
        raise CannotOpen("the token's payload is not base64") from exc
    return decrypt(key, payload, parts.associated_data).decode()
