"""The AsyncAPI document, generated from the code: a channel and an operation for every
request subject the service answers (``inmail.routes``) and for the events, with
payload schemas from the msgspec contracts.

FastStream's own generator cannot describe handlers typed with msgspec Structs
(it builds payload schemas through pydantic: upstream issue #2101), and the
command subjects are not FastStream subscribers at all, so the channels come from
the same table the subscriptions are made from and the schemas from
``msgspec.json.schema_components``. Regenerate with ``python -m inmail.asyncapi``;
a test fails when docs/asyncapi.json is stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from contracts import subjects
from contracts.events import EVENT_TYPES, AnyEvent
from contracts.notifications import EmailNotification
from contracts.replies import CommandOk, Failure, QueryOk
from inmail.generated import generate
from inmail.routes import ROUTES, Route

DOCUMENT = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.json"
REF = "#/components/schemas/{name}"

DESCRIPTION = """\
InMail Broker: paid direct messages between members, event-sourced on NATS JetStream.

Commands are core NATS requests on `inmail.cmd.<Command>`; the reply is
`{"ok": true, "data": {...}, "seq": N}` or `{"ok": false, "error": {"code", "message"}}`.
The same `command_id` sent again returns the original reply and writes nothing; sent
again asking for something else (another payload, `occurred_at` aside) it answers
`IDEMPOTENCY_CONFLICT` and writes nothing. Every event carries the `fingerprint` of
the command that caused it, which is how that is told.
Queries are requests on `inmail.query.<Query>`; answers carry `as_of_seq`.
Operator requests (`inmail replay`) are requests on `inmail.admin.<Operation>`.
Events are stored in JetStream stream `INMAIL_EVENTS`, one subject per member
aggregate: `inmail.evt.member.<member_id>` holds the member's profile, credit
events and every InMail the member sent with its whole life. Read them through a
JetStream consumer (core subscribers also see messages of rejected batches).
Emails live only in stream `INMAIL_MEMBERS` (`inmail.members.<member_id>`), and
the recipient's own in the email alerts of stream `INMAIL_NOTIFICATIONS`
(`inmail.notify.email.<recipient_id>`), which only the mail service reads.

Every connection authenticates with NATS credentials (a user JWT and its nkey):
`client.creds` may send commands and queries, `subscriber.creds` may read
`INMAIL_EVENTS` through consumers of its own, and only the service may write events
(docs/security.md). The service answers requests only: a message without a reply
subject, or with a JetStream one, is ignored.

An event that cannot be read is quarantined (`Health.quarantined`); its member's
commands answer `UNAVAILABLE` until an operator skips it (`inmail.admin.SkipEvent`,
recorded as an `EventSkipped` event on the member's subject).
"""


REQUEST_REPLY = (
    "Core NATS request/reply: the reply goes to the request's reply subject (the requester's "
    "inbox). A message without a reply subject is ignored."
)


def document() -> dict[str, Any]:
    """The whole AsyncAPI 3.0 document as JSON-ready data."""
    payloads: list[Any] = [route.request for route in ROUTES] + [route.data for route in ROUTES]
    payloads += [CommandOk, QueryOk, Failure, AnyEvent, *EVENT_TYPES, EmailNotification]
    (_, *_), schemas = msgspec.json.schema_components(payloads, ref_template=REF)
    doc: dict[str, Any] = {
        "asyncapi": "3.0.0",
        "info": {"title": "InMail Broker", "version": "1.0.0", "description": DESCRIPTION},
        "defaultContentType": "application/json",
        "channels": {},
        "operations": {},
        "components": {"messages": {}, "schemas": schemas},
    }
    for route in ROUTES:
        _add_request_channel(doc, route)
    _add_events_channel(doc)
    _add_notifications_channel(doc)
    return doc


def _add_request_channel(doc: dict[str, Any], route: Route) -> None:
    name = route.name
    doc["channels"][name] = {
        "address": route.subject,
        "description": route.description,
        "messages": {"Request": {"$ref": f"#/components/messages/{name}:Request"}},
    }
    operation: dict[str, Any] = {
        "action": "receive",
        "channel": {"$ref": f"#/channels/{name}"},
        "messages": [{"$ref": f"#/channels/{name}/messages/Request"}],
        "description": REQUEST_REPLY,
        "reply": {"messages": [{"$ref": f"#/components/messages/{name}:Reply"}]},
    }
    if route.queue:
        operation["bindings"] = {"nats": {"queue": route.queue, "bindingVersion": "0.1.0"}}
    doc["operations"][name] = operation
    success = {
        "allOf": [
            {"$ref": REF.format(name=route.success.__name__)},
            {"properties": {"data": {"$ref": REF.format(name=route.data.__name__)}}},
        ]
    }
    doc["components"]["messages"].update(
        {
            f"{name}:Request": {"title": name, "payload": {"$ref": REF.format(name=name)}},
            f"{name}:Reply": {
                "title": f"{name} reply",
                "payload": {"oneOf": [success, {"$ref": REF.format(name="Failure")}]},
            },
        }
    )


def _add_events_channel(doc: dict[str, Any]) -> None:
    address = f"{subjects.MEMBER_EVENTS_PREFIX}{{member_id}}"
    doc["channels"]["MemberEvents"] = {
        "address": address,
        "description": (
            f"JetStream stream {subjects.EVENTS_STREAM}: one subject per member aggregate. "
            "Header Nats-Msg-Id equals the event's event_id. Events are never changed or deleted."
        ),
        "parameters": {"member_id": {"description": "The member whose aggregate records the event."}},
        "messages": {"Event": {"$ref": "#/components/messages/MemberEvents:Event"}},
    }
    doc["operations"]["MemberEvents"] = {
        "action": "send",
        "channel": {"$ref": "#/channels/MemberEvents"},
        "messages": [{"$ref": "#/channels/MemberEvents/messages/Event"}],
    }
    doc["components"]["messages"]["MemberEvents:Event"] = {
        "title": "MemberEvents:Event",
        "payload": {"oneOf": [{"$ref": REF.format(name=t.__name__)} for t in EVENT_TYPES]},
    }


def _add_notifications_channel(doc: dict[str, Any]) -> None:
    doc["channels"]["EmailNotifications"] = {
        "address": f"{subjects.EMAIL_NOTIFICATIONS_PREFIX}{{recipient_id}}",
        "description": (
            f"JetStream stream {subjects.NOTIFICATIONS_STREAM}, for the mail service (the notifier "
            "role): one email alert per InMail delivered to a recipient who wants them. Published "
            "once the delivery is recorded, a scheduled send or follow-up when it is delivered. "
            "Header Nats-Msg-Id equals notification_id, derived from the InMail: a retried publish "
            "is dropped as a duplicate."
        ),
        "parameters": {"recipient_id": {"description": "The member the alert is for."}},
        "messages": {"EmailNotification": {"$ref": "#/components/messages/EmailNotifications:Alert"}},
    }
    doc["operations"]["EmailNotifications"] = {
        "action": "send",
        "channel": {"$ref": "#/channels/EmailNotifications"},
        "messages": [{"$ref": "#/channels/EmailNotifications/messages/EmailNotification"}],
    }
    doc["components"]["messages"]["EmailNotifications:Alert"] = {
        "title": "EmailNotifications:Alert",
        "payload": {"$ref": REF.format(name=EmailNotification.__name__)},
    }


def render() -> str:
    """The document as committed: stable key order, two-space indent."""
    return json.dumps(document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write docs/asyncapi.json (or the path given); ``--check``: exit 1 when it is stale."""
    args = sys.argv[1:] if argv is None else argv
    return generate(args, DOCUMENT, lambda target: {target: render().encode()}, "python -m inmail.asyncapi")


if __name__ == "__main__":
    sys.exit(main())
