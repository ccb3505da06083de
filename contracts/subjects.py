"""Every NATS subject and stream name of the service, in one place.

Layout:

- ``inmail.cmd.<Command>``: commands, core request/reply. Outside every stream,
  or a stream would answer the request with its PubAck.
- ``inmail.query.<Query>``: queries, core request/reply.
- ``inmail.admin.<Operation>``: operator requests (replay, opening sealed fields of events).
- ``inmail.alerts.<Operation>``: the mail service's requests (opening its alerts' sealed fields).
- ``inmail.evt.member.<member_id>``: stream ``INMAIL_EVENTS``; one subject per
  member aggregate, holding the member's profile, connections, blocks, credits
  and every InMail the member sent with its whole life (read, replies, refunds).
  The subject's last sequence is the aggregate's version.
- ``inmail.members.<member_id>``: stream ``INMAIL_MEMBERS``, the service's own
  members stream: contact details (email) that no other stream carries.
- KV bucket ``INMAIL_KEYS``: each member's data key, wrapped (``vault.keystore``).
- ``inmail.notify.email.<recipient_id>``: stream ``INMAIL_NOTIFICATIONS``, one email
  alert per delivered InMail, for the mail service (the ``notifier`` role).
"""

from __future__ import annotations

from typing import Final

EVENTS_STREAM: Final = "INMAIL_EVENTS"
EVENTS_ROOT: Final = "inmail.evt"
EVENTS_ALL: Final = f"{EVENTS_ROOT}.>"
MEMBER_EVENTS_PREFIX: Final = f"{EVENTS_ROOT}.member."

MEMBERS_STREAM: Final = "INMAIL_MEMBERS"
MEMBERS_ROOT: Final = "inmail.members"

NOTIFICATIONS_STREAM: Final = "INMAIL_NOTIFICATIONS"
NOTIFICATIONS_ROOT: Final = "inmail.notify"
EMAIL_NOTIFICATIONS_PREFIX: Final = f"{NOTIFICATIONS_ROOT}.email."

KEYS_BUCKET: Final = "INMAIL_KEYS"
"""KV bucket of the members' data keys, each wrapped by a key-encryption key kept outside NATS."""

COMMAND_ROOT: Final = "inmail.cmd"
QUERY_ROOT: Final = "inmail.query"
ADMIN_ROOT: Final = "inmail.admin"
ALERTS_ROOT: Final = "inmail.alerts"
"""The mail service's requests (opening the sealed fields of its alerts): its role's alone."""

COMMAND_QUEUE: Final = "inmail-commands"
QUERY_QUEUE: Final = "inmail-queries"


def member_events(member_id: str) -> str:
    """The subject of one member aggregate's events."""
    return f"{MEMBER_EVENTS_PREFIX}{member_id}"


def member_of_subject(subject: str) -> str:
    """The member id a member-events subject belongs to."""
    if not subject.startswith(MEMBER_EVENTS_PREFIX):
        raise ValueError(f"not a member events subject: {subject}")
    return subject[len(MEMBER_EVENTS_PREFIX) :]


def member_contact(member_id: str) -> str:
    """The subject of a member's contact record in the members stream."""
    return f"{MEMBERS_ROOT}.{member_id}"


def email_notification(recipient_id: str) -> str:
    """The subject of the email alerts for one recipient."""
    return f"{EMAIL_NOTIFICATIONS_PREFIX}{recipient_id}"


def command(name: str) -> str:
    """The request subject of a command, e.g. ``inmail.cmd.SendInMail``."""
    return f"{COMMAND_ROOT}.{name}"


def query(name: str) -> str:
    """The request subject of a query, e.g. ``inmail.query.Inbox``."""
    return f"{QUERY_ROOT}.{name}"


def alerts(name: str) -> str:
    """The request subject of a mail service's request, e.g. ``inmail.alerts.OpenAlert``."""
    return f"{ALERTS_ROOT}.{name}"


def admin(name: str) -> str:
    """The request subject of an operator request, e.g. ``inmail.admin.Replay``."""
    return f"{ADMIN_ROOT}.{name}"
