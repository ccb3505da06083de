"""InMail ids: minted by the decision, and routable to the sender without an index."""

from __future__ import annotations

from services.domain.rules import Context
from services.domain.state import Member


def new_inmail_id(sender: Member, ctx: Context) -> str:
    """A fresh id for an InMail of ``sender``: its routing prefix, a dash, a fresh id."""
    return f"{inmail_id_prefix(sender.registered_seq)}-{ctx.new_id()}"


def inmail_id_prefix(registered_seq: int) -> str:
    """The routing prefix of the InMail ids a member creates.

    An InMail lives in its sender's aggregate. Its id starts with the stream
    sequence of the sender's registration (base 36), so a command naming only the
    InMail finds the sender with one read, without an index that could lag.
    """
    return _base36(registered_seq)


def registered_seq_of(inmail_id: str) -> int | None:
    """The sender's registration sequence encoded in an InMail id, if it has one."""
    prefix, sep, _ = inmail_id.partition("-")
    if not sep or not prefix or len(prefix) > 13:
        return None
    try:
        return int(prefix, 36)
    except ValueError:
        return None


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    if number == 0:
        return "0"
    out = []
    while number:
        number, rest = divmod(number, 36)
        out.append(digits[rest])
    return "".join(reversed(out))
