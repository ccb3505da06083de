"""NATS keys and JWTs: operator, account and user claims, signed with nkeys (Ed25519).

A NATS JWT is an ordinary JWT whose algorithm is ``ed25519-nkey``: the signature is
the issuer's nkey signature over ``header.payload``. The cryptography is the nkeys
package's; this module only lays out the claims nats-server reads.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any, Literal

import nkeys

Kind = Literal["operator", "account", "user"]

_PREFIX: dict[Kind, int] = {
    "operator": nkeys.PREFIX_BYTE_OPERATOR,
    "account": nkeys.PREFIX_BYTE_ACCOUNT,
    "user": nkeys.PREFIX_BYTE_USER,
}
_HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
NO_LIMIT = -1


class ClaimsError(ValueError):
    """A token or seed that cannot be read."""


def new_seed(kind: Kind) -> str:
    """A fresh nkey seed for an operator, account or user (32 random bytes, nkey-encoded)."""
    return bytes(nkeys.encode_seed(secrets.token_bytes(32), _PREFIX[kind])).decode()


def public_key(seed: str) -> str:
    """The public key (``O…``, ``A…``, ``U…``) of a seed."""
    try:
        return bytes(nkeys.from_seed(seed.encode()).public_key).decode()
    except nkeys.NkeysError as exc:
        raise ClaimsError(f"not an nkey seed: {exc}") from exc


def sign(
    issuer_seed: str,
    subject: str,
    name: str,
    nats: dict[str, Any],
    *,
    issued_at: int | None = None,
    expires_at: int | None = None,
) -> str:
    """A JWT for ``subject`` (a public key) with claims ``nats``, signed by ``issuer_seed``."""
    issuer = nkeys.from_seed(issuer_seed.encode())
    claims: dict[str, Any] = {
        "jti": "",
        "iat": issued_at if issued_at is not None else int(time.time()),
        "iss": bytes(issuer.public_key).decode(),
        "name": name,
        "sub": subject,
        "nats": {**nats, "version": 2},
    }
    if expires_at is not None:
        claims["exp"] = expires_at
    # The JWT id is the hash of the claims without it, as the NATS tools compute it.
    claims["jti"] = _b32(hashlib.new("sha512_256", _json(claims)).digest())
    signing_input = f"{_b64(_json(_HEADER))}.{_b64(_json(claims))}"
    signature = issuer.sign(signing_input.encode())
    return f"{signing_input}.{_b64(signature)}"


def read(token: str) -> dict[str, Any]:
    """The claims of a JWT, without checking its signature (nats-server checks it)."""
    try:
        _, payload, _ = token.strip().split(".")
        claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, TypeError) as exc:
        raise ClaimsError(f"not a JWT: {exc}") from exc
    return claims


def operator_claims(system_account: str) -> dict[str, Any]:
    """An operator whose system account (for claim updates) is ``system_account``."""
    return {"type": "operator", "system_account": system_account}


def account_claims(*, jetstream: bool, revocations: dict[str, int] | None = None) -> dict[str, Any]:
    """An account without connection or subscription limits; with JetStream storage when asked."""
    storage = NO_LIMIT if jetstream else 0
    limits = {
        "subs": NO_LIMIT, "data": NO_LIMIT, "payload": NO_LIMIT, "imports": NO_LIMIT,
        "exports": NO_LIMIT, "wildcards": True, "conn": NO_LIMIT, "leaf": NO_LIMIT,
        "mem_storage": storage, "disk_storage": storage, "streams": NO_LIMIT if jetstream else 0,
        "consumer": NO_LIMIT if jetstream else 0, "max_ack_pending": NO_LIMIT,
    }  # fmt: skip
    claims: dict[str, Any] = {
        "type": "account",
        "limits": limits,
        "default_permissions": {"pub": {}, "sub": {}},
    }
    if revocations:
        claims["revocations"] = dict(revocations)
    return claims


def user_claims(
    publish: tuple[str, ...], subscribe: tuple[str, ...], *, responses: tuple[int, float] | None
) -> dict[str, Any]:
    """A user allowed to publish and subscribe to exactly these subjects.

    ``responses`` (max messages, seconds) lets the user answer requests it received
    without any publish right on the reply subjects (``allow_responses``).
    """
    claims: dict[str, Any] = {
        "type": "user",
        "pub": {"allow": list(publish)} if publish else {"deny": [">"]},
        "sub": {"allow": list(subscribe)} if subscribe else {"deny": [">"]},
        "subs": NO_LIMIT,
        "data": NO_LIMIT,
        "payload": NO_LIMIT,
    }
    if responses is not None:
        max_messages, seconds = responses
        claims["resp"] = {"max": max_messages, "ttl": int(seconds * 1e9)}
    return claims


def creds_file(user_jwt: str, user_seed: str) -> str:
    """A standard NATS credentials file: the user's JWT and nkey seed."""
    return (
        "-----BEGIN NATS USER JWT-----\n"
        f"{user_jwt}\n"
        "------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{user_seed}\n"
        "------END USER NKEY SEED------\n\n"
        "*************************************************************\n"
    )


def jwt_of_creds(text: str) -> str:
    """The user JWT inside a credentials file's text."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if "BEGIN NATS USER JWT" in line and index + 1 < len(lines):
            return lines[index + 1].strip()
    raise ClaimsError("no user JWT in this credentials file")


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode().rstrip("=")
