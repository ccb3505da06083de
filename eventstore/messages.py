"""What the store writes and reads: new and stored messages, writes, where an append landed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to append; ``msg_id`` becomes ``Nats-Msg-Id`` (the event id)."""

    msg_id: str
    data: bytes
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as the stream holds it."""

    seq: int
    subject: str
    data: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def msg_id(self) -> str | None:
        return self.headers.get("Nats-Msg-Id")


@dataclass(frozen=True, slots=True)
class Write:
    """Messages for one aggregate subject, at the version the writer decided on."""

    subject: str
    expected_version: int
    messages: Sequence[NewMessage]


@dataclass(frozen=True, slots=True)
class Appended:
    """Where an append landed. ``seqs`` are the stream sequences, in order."""

    seqs: tuple[int, ...]

    @property
    def last_seq(self) -> int:
        return self.seqs[-1]
