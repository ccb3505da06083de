"""How an application's events lie in JetStream: streams, subjects, tokens and headers.

One stream per application, subjects ``es.<stream>.>``. Each aggregate
(originator) has one subject, ``es.<stream>.<token>``: the token is the originator id
itself when it is a UUID or a plain ``[A-Za-z0-9_-]+`` string, otherwise ``=`` and its
UTF-8 in unpadded base64url. A stored event is one message: the state is the body, the
version, topic and id type are headers. The stream sequence of a message is its
notification id; an application's stream holds nothing but its events, so the ids are
contiguous and in commit order. A process application's positions are messages on
``es.<stream>.tracking.<application>`` (one token more than an aggregate's subject).
"""

from __future__ import annotations

import base64
import re
import uuid

ORIGINATOR_VERSION = "Es-Originator-Version"
TOPIC = "Es-Topic"
ORIGINATOR_ID_TYPE = "Es-Originator-Id-Type"
NOTIFICATION_ID = "Es-Notification-Id"
TRACKING_TOKEN = "tracking"

SUBJECT_ROOT = "es"

_PLAIN = re.compile(r"[A-Za-z0-9_-]+")
_STREAM_NAME = re.compile(r"[A-Za-z0-9_-]{1,200}")


def is_valid_stream_name(name: str) -> bool:
    """True when ``name`` is usable as a stream name and a subject token (and a KV bucket)."""
    return _STREAM_NAME.fullmatch(name) is not None


def subject_prefix(stream: str) -> str:
    """The subjects of ``stream`` are ``<prefix>.>``."""
    return f"{SUBJECT_ROOT}.{stream}"


def encode_token(value: str) -> str:
    """A subject token (and KV key) for any string; plain strings stay readable."""
    if _PLAIN.fullmatch(value):
        return value
    return "=" + base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_token(token: str) -> str:
    """The string that ``encode_token`` turned into ``token``."""
    if not token.startswith("="):
        return token
    body = token[1:]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


def originator_token(originator_id: uuid.UUID | str) -> str:
    """The subject token of an aggregate; a UUID and its string form are the same aggregate."""
    return str(originator_id) if isinstance(originator_id, uuid.UUID) else encode_token(originator_id)
