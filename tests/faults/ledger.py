"""The clients' own record under faults: every command sent, every answer, and what follows.

Kept by the test's clients alone, never read back from the service: after a fault,
the stream and the read models are checked against it (``tests.faults.audit``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Answer:
    """One attempt: when it was sent, when it ended, and the reply (None: none in time)."""

    sent_at: datetime
    ended_at: datetime
    reply: dict[str, Any] | None

    @property
    def unavailable(self) -> bool:
        """No answer, or UNAVAILABLE: the client may not know whether it was recorded, and retries."""
        return self.reply is None or (not self.reply["ok"] and self.reply["error"]["code"] == "UNAVAILABLE")


@dataclass(slots=True)
class Command:
    """A command as its client sent it (retries and copies keep its command_id) and every answer."""

    name: str
    body: dict[str, Any]
    answers: list[Answer] = field(default_factory=list)

    @property
    def command_id(self) -> str:
        return str(self.body["command_id"])

    @property
    def ok(self) -> dict[str, Any] | None:
        """The first success answered, if any."""
        return next((a.reply for a in self.answers if a.reply is not None and a.reply["ok"]), None)

    @property
    def refusal(self) -> str | None:
        """The error code of a definitive refusal (anything but UNAVAILABLE), if any."""
        for answer in self.answers:
            if answer.reply is not None and not answer.reply["ok"] and not answer.unavailable:
                return str(answer.reply["error"]["code"])
        return None

    @property
    def nothing_recorded_until(self) -> datetime | None:
        """When the last attempt answered UNAVAILABLE ended, counting only those before any attempt
        went unanswered: until then, by the contract, nothing of this command was recorded."""
        until = None
        for answer in self.answers:
            if answer.reply is None:
                break
            if answer.unavailable:
                until = answer.ended_at
        return until


class Ledger:
    """Everything the clients sent and were told."""

    def __init__(self) -> None:
        self.commands: dict[str, Command] = {}

    def command(self, name: str, body: dict[str, Any]) -> Command:
        """Note a new command before its first attempt."""
        command = Command(name, body)
        self.commands[command.command_id] = command
        return command

    def acknowledged(self) -> list[Command]:
        return [c for c in self.commands.values() if c.ok is not None]

    def refused(self) -> list[Command]:
        return [c for c in self.commands.values() if c.ok is None and c.refusal is not None]

    def unanswered(self) -> list[Command]:
        return [c for c in self.commands.values() if c.ok is None and c.refusal is None]

    def attempts(self) -> int:
        return sum(len(c.answers) for c in self.commands.values())

    def unanswered_attempts(self) -> int:
        """Attempts that got no answer in time (or could not be sent)."""
        return sum(1 for c in self.commands.values() for a in c.answers if a.reply is None)

    def unavailable_answers(self) -> int:
        """Attempts answered UNAVAILABLE."""
        answers = [a for c in self.commands.values() for a in c.answers]
        return sum(1 for a in answers if a.reply is not None and a.unavailable)

    def sent_inmails(self) -> dict[str, Command]:
        """InMail id -> the acknowledged SendInMail that created it."""
        return {c.ok["data"]["inmail_id"]: c for c in self.acknowledged() if c.name == "SendInMail" and c.ok}

    def balances(self) -> dict[str, int]:
        """Each member's credits from the answers alone: allotment - charges + refunds."""
        senders = {inmail_id: c.body["sender_id"] for inmail_id, c in self.sent_inmails().items()}
        balance: dict[str, int] = defaultdict(int)
        for command in self.acknowledged():
            data = command.ok["data"] if command.ok else {}
            if command.name == "RegisterMember":
                balance[command.body["member_id"]] += data["credits_left"]
            elif command.name == "SendInMail" and data["charged"]:
                balance[command.body["sender_id"]] -= 1
            elif command.name in ("RecordReply", "DeclineInMail") and data["refunded"]:
                balance[senders[command.body["inmail_id"]]] += 1
        return dict(balance)
